"""``python -m sepkit_torch restore``: restore image files with a trained pipeline run, a
weights file, or the built-in default model (no ``--checkpoint``).

Reads 8- and 16-bit grey (or colour, made grey) PNG, TIFF and JPEG files, or every such
file of a folder; writes each restored image under ``--out`` with the same name, format
and bit depth. Without ``--task`` each image's degradation is recognized first and
printed. A file that cannot be read or written (oversized ones included) or whose
restoration is not finite is reported by name and skipped, and the others are restored;
the command then exits with status 1 (2 for a bad checkpoint or option, or an ``--out``
that is a file or would write over an input: inputs are never replaced).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from sepkit_torch._errors import ImageFileError, SepkitTorchError
from sepkit_torch._progress import progress_bar
from sepkit_torch.data import IMAGE_EXTENSIONS, list_images
from sepkit_torch.data.image_io import GREY_FORMATS, read_grey, write_grey

#: File endings the command restores (BMP is read by the data sets, but not written here).
RESTORE_EXTENSIONS = tuple(e for e in IMAGE_EXTENSIONS if e in GREY_FORMATS)


def _inputs(items: list[str]) -> tuple[list[tuple[Path, Path]], list[str], bool]:
    """``(file, name under --out)`` pairs, errors for inputs that give none, any folder."""
    found, errors, folder = [], [], False
    for item in items:
        path = Path(item)
        if path.is_dir():
            folder = True
            try:
                files = [p for p in list_images(path) if p.suffix.lower() in RESTORE_EXTENSIONS]
            except SepkitTorchError as exc:
                errors.append(f"{item}: {exc}")
                continue
            found += [(p, Path(p.name)) for p in files]
        elif path.is_file() and path.suffix.lower() not in RESTORE_EXTENSIONS:
            errors.append(
                f"{item}: restore reads and writes {', '.join(RESTORE_EXTENSIONS)} files; got "
                f"the ending {path.suffix!r}"
            )
        elif path.is_file():
            found.append((path, Path(path.name)))
        else:
            errors.append(f"{item}: no such file or folder")
    return found, errors, folder


def _check_out(out: Path, files: list[tuple[Path, Path]]) -> str | None:
    """Why `out` cannot take the restored `files`, or None: it must be a folder (or not
    exist yet), and no restored image may land on an input (never write over inputs)."""
    if not str(out).strip():
        return "`--out` must name a folder; got ''"
    if out.exists() and not out.is_dir():
        return f"`--out` must be a folder; {str(out)!r} is a file"
    identities = {_identity(path) for path, _ in files} - {None}
    inputs = [out / name for _, name in files if _identity(out / name) in identities]
    if inputs:
        shown = ", ".join(repr(str(p)) for p in inputs[:3]) + (" ..." if len(inputs) > 3 else "")
        return (
            f"`--out` {str(out)!r} would write over {len(inputs)} input image(s) ({shown}); "
            "restore never replaces its inputs: choose another folder"
        )
    return None


def _identity(path: Path) -> tuple[int, int] | None:
    """The file behind `path` (device, inode: links and other spellings of one file are
    one), or None if there is none."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sepkit_torch restore",
        description="Restore thermal images with the built-in model or a trained pipeline "
        "run. Without --task, each image's degradation is recognized first.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of them")
    p.add_argument(
        "--checkpoint",
        metavar="RUN",
        help="a pipeline run folder, its checkpoint or a weights file (default: the built-in "
        "model)",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="where restored images go")
    p.add_argument("--task", help="the degradation, e.g. CB (default: recognize it)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument(
        "--tile", type=int, default=1024, help="tile side for large images (default 1024)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-image lines")
    return p


def main(argv: list[str] | None = None) -> int:
    from sepkit_torch.inference import load

    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    try:
        restorer = load(args.checkpoint, device=args.device, tile=args.tile)
        if args.task is not None:
            restorer.check_task(args.task)
    except (SepkitTorchError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.task is None and restorer.recognizer is None:
        print(
            f"error: {restorer.source} has no recognizer; pass --task (one of "
            f"{', '.join(restorer.tasks)})",
            file=sys.stderr,
        )
        return 2
    if not args.quiet:
        print(f"model: {restorer.source}")
    out = Path(args.out)
    files, failed, any_folder = _inputs(args.inputs)
    problem = _check_out(out, files)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    for message in failed:
        print(f"failed: {message}", file=sys.stderr)
    bar = progress_bar(
        len(files), "restore", any_folder and not args.quiet, unit="image", leave=True
    )
    say = bar.write
    written: set[Path] = set()
    ok = 0
    for path, name in files:
        target = out / name
        try:
            if target in written:
                raise ImageFileError(f"{str(path)!r}: another input was also written to {target}")
            if target.exists() and not args.overwrite:
                raise ImageFileError(f"{str(target)!r} exists; pass --overwrite to replace it")
            image = read_grey(path)
            if args.task is None:
                (verdict,) = restorer.recognize(image)
                task = verdict.task
                seen = "".join(verdict.letters) or "none"
                p = ", ".join(f"{k} {v:.2f}" for k, v in verdict.probabilities.items())
                line = f"{path}: recognized {seen} ({p}) -> " + (task or "left as is")
            else:
                task = args.task
                line = f"{path}: task {task}"
            restored = image if task is None else restorer(image, task=task)
            write_grey(target, restored)
            written.add(target)
            ok += 1
            if not args.quiet:
                say(f"{line}; wrote {target} ({image.dtype.itemsize * 8}-bit)")
        except (OSError, SepkitTorchError, ValueError, MemoryError) as exc:
            failed.append(str(path))
            text = str(exc) or type(exc).__name__
            say(f"failed: {text if str(path) in text else f'{path}: {text}'}", file=sys.stderr)
        bar.update()
    bar.close()
    if failed:
        print(f"{ok} restored, {len(failed)} failed", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"{ok} restored into {out}")
    return 0
