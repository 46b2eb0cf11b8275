"""The one progress bar: tqdm when it is installed and wanted, else a silent stand-in."""

from __future__ import annotations

__all__ = ["progress_bar"]


def progress_bar(total: int, desc: str, enabled: bool = True, **options):
    """A tqdm bar of `total` steps named `desc`, or an object with the same methods
    (``update``, ``set_postfix``, ``write``, ``close``) that shows nothing.

    `options` go to tqdm (default: the bar disappears when closed).
    """
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:  # progress bars are optional
            enabled = False
    if not enabled:
        return _Silent()
    options.setdefault("leave", False)
    return tqdm(total=total, desc=desc, dynamic_ncols=True, **options)


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **values) -> None:
        pass

    def write(self, text: str, **kwargs) -> None:
        import sys

        print(text, file=kwargs.get("file") or sys.stdout)

    def close(self) -> None:
        pass
