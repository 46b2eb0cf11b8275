"""Several strategies on the same task sequence, and one report comparing them.

``compare(config, methods)`` runs the pipeline once per method into ``config.out/<method>``
(each its own resumable run) and writes ``comparison.json``, ``comparison.md`` and plots
into ``config.out``. ``python -m sepkit_torch.pipeline compare`` is its command line.

The NAFNet baselines share one pretraining: the first baseline stops after its
``pretrain`` stage, that checkpoint is kept as ``config.out/pretrained-nafnet.pt``, and
every other baseline starts from a copy of it. This is exact, not an approximation: the
pretrain stage depends only on the seed, the NAFNet preset and the data settings, which
all baselines share (tested against a standalone run).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from sepkit_torch._errors import InvalidInputError, TaskStateError
from sepkit_torch.checkpoint import load_checkpoint, save_checkpoint
from sepkit_torch.continual.baselines import METHODS
from sepkit_torch.pipeline import CHECKPOINT, CONFIG_FILE, PipelineConfig, Report, run
from sepkit_torch.report import _atomic_write, _save, matrix_table

__all__ = ["compare", "summarize"]

log = logging.getLogger("sepkit_torch.comparison")

PRETRAINED = "pretrained-nafnet.pt"
# stages outside the training budget: evaluation, and the recognizer (blind restoration
# is an addition to ECMRNet, not part of restoring a known task)
_NOT_TRAINING = (":evaluate", ":recognize")


def compare(
    config: PipelineConfig,
    methods: tuple[str, ...] | list[str] = METHODS,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every method of `methods` on `config`'s sequence; returns the comparison.

    Each method runs with ``config`` (its ``method`` and ``out`` replaced) into
    ``config.out/<method>``. With `resume`, finished methods are read back and a method
    stopped midway continues; methods not started yet start.
    """
    if isinstance(methods, str) or not methods:
        raise InvalidInputError(f"`methods` must be a non-empty list of {list(METHODS)}")
    bad = [m for m in methods if m not in METHODS]
    if bad or len(set(methods)) != len(methods):
        raise InvalidInputError(
            f"`methods` must name distinct methods of {list(METHODS)}; got {list(methods)}"
        )
    if config.strength is not None or config.strength_grid:
        raise InvalidInputError(
            "`strength`/`strength_grid` differ per method: run that method alone with them "
            f"(--method); got strength={config.strength!r}, strength_grid={config.strength_grid}"
        )
    out = Path(config.out)
    shared = out / PRETRAINED
    if overwrite:
        shared.unlink(missing_ok=True)
    reports = {}
    for method in methods:
        cfg = dataclasses.replace(config, method=method, out=str(out / method))
        started = resume and (Path(cfg.out) / CHECKPOINT).is_file()
        log.info("method %s -> %s", method, cfg.out)
        if method != "ecmrnet" and not started:
            if shared.is_file():
                _start_from_pretrained(shared, cfg, overwrite=overwrite)
            else:
                run(cfg, overwrite=overwrite, progress=progress, stop_after="pretrain")
                shutil.copyfile(Path(cfg.out) / CHECKPOINT, shared)
            started = True
        reports[method] = run(cfg, resume=started, overwrite=overwrite, progress=progress)
    summary = summarize(reports)
    write_comparison(summary, reports, out)
    return summary


def _start_from_pretrained(shared: Path, config: PipelineConfig, *, overwrite: bool) -> None:
    """Make `config`'s run folder hold a run stopped after the shared pretraining."""
    out = Path(config.out)
    if ((out / CHECKPOINT).exists() or (out / CONFIG_FILE).exists()) and not overwrite:
        raise TaskStateError(
            f"{out} already holds a run; continue it with resume=True (--resume) or "
            "replace it with overwrite=True (--overwrite)"
        )
    data = load_checkpoint(shared)
    if data["done"] != ["pretrain"]:
        raise TaskStateError(f"{shared} must hold a run stopped after pretraining")
    report = Report.from_dict(data["report"])
    report.config = config.to_dict()
    out.mkdir(parents=True, exist_ok=True)
    data.pop("version")
    save_checkpoint(
        out / CHECKPOINT, {**data, "config": config.to_dict(), "report": report.to_dict()}
    )


def summarize(reports: dict[str, Report]) -> dict[str, Any]:
    """Per method: average final PSNR/SSIM, forgetting, size, MACs and training time."""
    rows = {}
    for method, report in reports.items():
        final = report.metrics[-1]
        forgetting = report.forgetting()
        earlier = [forgetting[t] for t in report.tasks[:-1]] if forgetting else []
        paths = report.size[-1]["paths"]
        rows[method] = {
            "model": f"ECMRNet {report.config['model']}"
            if method == "ecmrnet"
            else f"NAFNet {report.config['baseline']}",
            "psnr": round(float(np.mean([m["psnr"] for m in final])), 4),
            "ssim": round(float(np.mean([m["ssim"] for m in final])), 4),
            # a task's forgetting: PSNR right after learning it minus at the end; the
            # last task cannot have forgotten, so it is left out of the mean
            "forgetting": round(float(np.mean(earlier)), 4) if earlier else None,
            "total_params": report.size[-1]["total_params"],
            "macs_per_path": round(float(np.mean([p["macs"] for p in paths.values()]))),
            "params_per_path": round(
                float(np.mean([p["activated_params"] for p in paths.values()]))
            ),
            "train_seconds": round(
                sum(s for k, s in report.seconds.items() if not k.endswith(_NOT_TRAINING)), 1
            ),
            "strength": report.strategy.get("strength"),
            "final": {t: m for t, m in zip(report.tasks, final, strict=True)},
        }
    return {"tasks": next(iter(reports.values())).tasks, "methods": rows}


def write_comparison(summary: dict[str, Any], reports: dict[str, Report], out: Path) -> None:
    """``comparison.json``, ``comparison.md`` and the plots, into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "comparison.json", json.dumps(summary, indent=2) + "\n")
    plots = _plots(summary, out)
    _atomic_write(out / "comparison.md", _markdown(summary, reports, plots))


def _markdown(summary, reports, plots) -> str:
    tasks, rows = summary["tasks"], summary["methods"]
    cfg = next(iter(reports.values())).config
    lines = [
        "# Strategy comparison",
        "",
        f"Preset `{cfg['preset']}`, tasks {', '.join(tasks)}, "
        f"data {'procedural thermal scenes' if cfg['data'] is None else cfg['data']}, "
        f"seed {cfg['seed']}; ECMRNet `{cfg['model']}`, baselines NAFNet `{cfg['baseline']}`. "
        "Every method: the same training data, epochs, optimizer and test sets.",
        "",
        "| method | model | avg PSNR | avg SSIM | forgetting (dB) | total params "
        "| params per path | MACs per path (G) | training time (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, r in rows.items():
        forgetting = "-" if r["forgetting"] is None else f"{r['forgetting']:+.2f}"
        strength = "" if r["strength"] is None else f" (strength {r['strength']:g})"
        lines.append(
            f"| {method}{strength} | {r['model']} | {r['psnr']:.2f} | {r['ssim']:.4f} "
            f"| {forgetting} | {r['total_params']:,} | {r['params_per_path']:,} "
            f"| {r['macs_per_path'] / 1e9:.2f} | {r['train_seconds']:.0f} |"
        )
    lines += [
        "",
        "Averages over every task after the last one is learnt. Forgetting: PSNR right "
        "after learning a task minus at the end, averaged over all but the last task "
        "(joint training learns everything at once: none). Params and MACs of one task's "
        "path at 1 x 1 x 512 x 640, averaged over the tasks. Training time: every stage "
        "but evaluation and the recognizer (pretraining, tuning, training, pruning, "
        "fine-tuning).",
        "",
        "## Final PSNR per task (dB)",
        "",
        "| method | " + " | ".join(tasks) + " |",
        "|---|" + "---:|" * len(tasks),
    ]
    for method, r in rows.items():
        cells = [f"{r['final'][t]['psnr']:.2f}" for t in tasks]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines.append("")
    for method, report in reports.items():
        lines += [
            f"## `{method}`: accuracy matrix (PSNR dB, row: after learning)",
            "",
            *matrix_table(report),
        ]
        lines += ["", f"Full report: [{method}/report.md]({method}/report.md).", ""]
    if plots:
        lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    return "\n".join(lines)


def _plots(summary, out: Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    tasks, rows = summary["tasks"], summary["methods"]
    methods = list(rows)
    paths = []
    fig, ax = plt.subplots(figsize=(1.5 + 1.1 * len(tasks), 3.6))
    width = 0.8 / len(methods)
    x = np.arange(len(tasks))
    for k, method in enumerate(methods):
        values = [rows[method]["final"][t]["psnr"] for t in tasks]
        ax.bar(x + (k - (len(methods) - 1) / 2) * width, values, width, label=method)
    ax.set_xticks(x, tasks)
    ax.set_ylabel("final PSNR (dB)")
    lows = [rows[m]["final"][t]["psnr"] for m in methods for t in tasks]
    ax.set_ylim(min(lows) - 2, max(lows) + 1)
    ax.legend(fontsize=7, ncols=min(4, len(methods)))
    ax.set_title("every task after the last is learnt")
    fig.tight_layout()
    paths.append(_save(fig, out / "comparison_psnr.png", plt))

    fig, ax = plt.subplots(figsize=(6, 0.6 + 0.45 * len(methods)))
    y = np.arange(len(methods))[::-1]
    ax.barh(y, [rows[m]["psnr"] for m in methods], color="tab:blue")
    for k, method in zip(y, methods, strict=True):
        r = rows[method]
        forgetting = "none" if r["forgetting"] is None else f"{r['forgetting']:+.2f} dB"
        ax.text(
            r["psnr"],
            k,
            f" {r['psnr']:.2f} dB, forgetting {forgetting}, {r['total_params'] / 1e6:.2f} M params",
            va="center",
            fontsize=7,
        )
    ax.set_yticks(y, methods)
    ax.set_xlim(
        min(r["psnr"] for r in rows.values()) - 3, max(r["psnr"] for r in rows.values()) + 6
    )
    ax.set_xlabel("average PSNR over the tasks (dB)")
    ax.set_title("average quality, forgetting and size per method")
    fig.tight_layout()
    paths.append(_save(fig, out / "comparison_summary.png", plt))
    return paths
