"""``python -m sepkit_torch COMMAND ...``: ``restore`` images, or run the ``pipeline``."""

from __future__ import annotations

import sys

USAGE = """usage: python -m sepkit_torch COMMAND [ARGS]

commands:
  restore   restore image files or folders with a trained run
            (python -m sepkit_torch restore --help)
  pipeline  train ECMRNet's task sequence (same as python -m sepkit_torch.pipeline)
"""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "restore":
        from sepkit_torch.restore_cli import main as restore

        return restore(rest)
    if command == "pipeline":
        from sepkit_torch.pipeline.cli import main as pipeline

        return pipeline(rest)
    print(f"error: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
