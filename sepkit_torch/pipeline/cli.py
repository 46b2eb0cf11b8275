"""Command line of the pipeline: ``python -m sepkit_torch.pipeline`` / ``sepkit-pipeline``.

Parses arguments into a :class:`~sepkit_torch.pipeline.PipelineConfig` and calls
:func:`~sepkit_torch.pipeline.run`, or, after the word ``compare``,
:func:`~sepkit_torch.pipeline.compare`, or, after the word ``export``,
:func:`~sepkit_torch.pipeline.weights.export_weights`, or, after the word ``recognizer``,
:func:`~sepkit_torch.pipeline.weights.retrain_weights`; no logic of its own. Every error a
user can cause is printed as ``error: ...`` with exit status 2.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import tomllib

from sepkit_torch._errors import ConfigError, SepkitTorchError
from sepkit_torch.continual.recognition import RECOGNIZER_MODES
from sepkit_torch.pipeline.comparison import compare
from sepkit_torch.pipeline.config import OPTIONAL_SETTINGS, RUN_PRESETS, PipelineConfig
from sepkit_torch.pipeline.runner import run
from sepkit_torch.pipeline.strategies import METHODS
from sepkit_torch.pipeline.weights import export_weights, retrain_weights


def _value(key: str, text: str):
    """A ``--set`` value read as TOML (numbers, booleans, lists), else a string; ``none``
    unsets a setting that may be None (TOML has no null: a config file cannot)."""
    if text == "none" and key in OPTIONAL_SETTINGS:
        return None
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _tasks(text: str) -> list[str]:
    """``--tasks C,B,N`` as a list; an empty name (``""``, ``C,,B``) is an error, never the
    default sequence."""
    tasks = [t.strip() for t in text.split(",")]
    if not all(tasks):
        raise ConfigError(f"`--tasks` must be task names separated by commas; got {text!r}")
    return tasks


def parser(compare: bool = False) -> argparse.ArgumentParser:
    if compare:
        p = argparse.ArgumentParser(
            prog="python -m sepkit_torch.pipeline compare",
            description="Run several strategies on the same task sequence (each into "
            "OUT/<method>) and write OUT/comparison.md.",
        )
        p.add_argument(
            "--methods",
            metavar="M1,M2,...",
            default=",".join(METHODS),
            help=f"strategies to compare (default: all of {','.join(METHODS)})",
        )
    else:
        p = argparse.ArgumentParser(
            prog="python -m sepkit_torch.pipeline",
            description="ECMRNet's continual task sequence: pretrain, then for each task "
            "expand, train, SEP-prune, fine-tune and evaluate every task learned so far "
            "(or a NAFNet baseline with --method). `python -m sepkit_torch.pipeline "
            "compare --help`: several methods side by side.",
        )
        p.add_argument(
            "--method",
            choices=METHODS,
            help="strategy (default: ecmrnet; the others are NAFNet baselines)",
        )
    p.add_argument("--preset", choices=sorted(RUN_PRESETS), help="base settings (default: demo)")
    p.add_argument("--config", metavar="FILE", help="a TOML file of settings")
    p.add_argument("--out", metavar="DIR", help="run folder (checkpoint, report)")
    p.add_argument("--tasks", metavar="T1,T2,...", help="task sequence, e.g. C,B,N,CB")
    p.add_argument(
        "--data", metavar="DIR", help="folder of clean thermal images (default: procedural scenes)"
    )
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="cpu or cuda")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other setting, e.g. --set epochs=10 (repeatable); KEY=none unsets "
        f"one of {', '.join(OPTIONAL_SETTINGS)}",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")
    return p


def export_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sepkit_torch.pipeline export",
        description="Write the weights of a finished run (model, recognizer, tasks and its "
        "settings; no training state) to one small, safe file that `sepkit_torch.load` and "
        "`python -m sepkit_torch restore --checkpoint` read.",
    )
    p.add_argument("run", metavar="RUN", help="a finished run folder (or its checkpoint)")
    p.add_argument("--out", required=True, metavar="FILE", help="the weights file to write")
    return p


def export(argv: list[str]) -> int:
    args = export_parser().parse_args(argv)
    try:
        path = export_weights(args.run, args.out)
    except (SepkitTorchError, FileNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"wrote {path} ({path.stat().st_size:,} bytes, sha256 {digest})")
    return 0


def recognizer_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sepkit_torch.pipeline recognizer",
        description="Retrain the degradation recognizer of a finished run (all its "
        "recognize stages, with the run's data and seeds; the restorer is left as it is) "
        "and write a weights file with both. RUN may also be a weights file.",
    )
    p.add_argument("run", metavar="RUN", help="a finished run folder, its checkpoint or weights")
    p.add_argument("--out", required=True, metavar="FILE", help="the weights file to write")
    p.add_argument(
        "--mode",
        choices=[m for m in RECOGNIZER_MODES if m != "none"],
        help="how the heads train (default: the run's recognizer setting)",
    )
    p.add_argument("--epochs", type=int, help="epochs per head (default: the run's)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def retrain(argv: list[str]) -> int:
    args = recognizer_parser().parse_args(argv)
    try:
        path, info = retrain_weights(
            args.run, args.out, mode=args.mode, epochs=args.epochs, progress=not args.quiet
        )
    except (SepkitTorchError, FileNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path} (recognizer {info['mode']}, heads {', '.join(info['loss'])})")
    for letter, c in info.get("calibration", {}).items():
        ba = c["balanced_accuracy"]
        print(
            f"  {letter}: threshold {c['threshold']:.4f} on {c['n']} validation images "
            f"(balanced accuracy {ba['before']:.3f} at 0.5, {ba['after']:.3f} calibrated)"
        )
    for result in info["after"].values():
        print(f"routing accuracy on the run's test sets: {result['accuracy']:.3f}")
        print("| true \\ routed | " + " | ".join(result["columns"]) + " |")
        print("|---|" + "---:|" * len(result["columns"]))
        for row, counts in zip(result["rows"], result["confusion"], strict=True):
            print(f"| {row} | " + " | ".join(str(c) for c in counts) + " |")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "export":
        return export(argv[1:])
    if argv and argv[0] == "recognizer":
        return retrain(argv[1:])
    comparing = bool(argv) and argv[0] == "compare"
    args = parser(comparing).parse_args(argv[1:] if comparing else argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if args.resume and args.overwrite:
        print(
            "error: --resume continues the run in --out and --overwrite replaces it; pass one",
            file=sys.stderr,
        )
        return 2
    overrides = {}
    for item in args.sets:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"error: --set needs KEY=VALUE; got {item!r}", file=sys.stderr)
            return 2
        overrides[key.strip()] = _value(key.strip(), value.strip())
    for key in ("preset", "out", "data", "seed", "device", "method"):
        if getattr(args, key, None) is not None:
            overrides[key] = getattr(args, key)
    try:
        if args.tasks is not None:
            overrides["tasks"] = _tasks(args.tasks)
        if args.config:
            config = PipelineConfig.from_toml(args.config, **overrides)
        else:
            config = PipelineConfig.from_preset(overrides.pop("preset", "demo"), **overrides)
        options = dict(resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
        if comparing:
            methods = [m.strip() for m in args.methods.split(",") if m.strip()]
            summary = compare(config, methods, **options)
        else:
            report = run(config, **options)
    except (SepkitTorchError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if comparing:
        print(f"done: {len(summary['methods'])} methods; report in {config.out}/comparison.md")
        for method, r in summary["methods"].items():
            print(f"  {method:9s} PSNR {r['psnr']:.2f} dB  SSIM {r['ssim']:.4f}")
        return 0
    final = report.metrics[-1] if report.metrics else []
    print(f"done: {len(report.tasks)} tasks; report in {config.out}/report.md")
    for task, m in zip(report.tasks, final, strict=True):
        print(f"  {task:6s} PSNR {m['psnr']:.2f} dB  SSIM {m['ssim']:.4f}")
    return 0
