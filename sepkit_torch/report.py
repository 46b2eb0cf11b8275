"""The pipeline's report: ``report.json``, ``report.md`` and PNG plots.

The plots need matplotlib; without it the JSON and Markdown are still written and the
Markdown says the plots were skipped.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from sepkit_torch.continual.recognition import recognizer_markdown

__all__ = ["write_report"]

log = logging.getLogger("sepkit_torch.report")


def write_report(report, out: Path, strip: list[tuple[str, torch.Tensor, ...]] | None = None):
    """Write ``report.json``, ``report.md`` and the plots into `out`; returns the paths.

    `strip`: per task ``(task, degraded, restored, clean)`` single images (1, H, W) for
    the restored-image strip.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = report.to_dict()
    data["forgetting_psnr"] = report.forgetting() if report.metrics else {}
    _atomic_write(out / "report.json", json.dumps(data, indent=2) + "\n")
    plots = _plots(report, out, strip)
    _atomic_write(out / "report.md", _markdown(report, plots))
    return [out / "report.json", out / "report.md", *plots]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _markdown(report, plots: list[Path]) -> str:
    cfg = report.config
    tasks = report.tasks
    data = "procedural thermal scenes" if cfg["data"] is None else cfg["data"]
    if report.method == "ecmrnet":
        lines = [
            "# ECMRNet task-sequence report",
            "",
            f"Preset `{cfg['preset']}`, model `{cfg['model']}`, tasks {', '.join(tasks)}, "
            f"data {data}, seed {cfg['seed']}, SEP {'on' if cfg['prune'] else 'off'} "
            f"(rho {cfg['sep_rho']}, {cfg['sep_method']}, ties {cfg.get('sep_tie', 'index')}, "
            f"{cfg['sep_similarity']}), "
            f"SKMM `{cfg['skmm']}`.",
            "",
        ]
    else:
        lines = [
            f"# Baseline `{report.method}` task-sequence report",
            "",
            f"Preset `{cfg['preset']}`, NAFNet `{cfg['baseline']}`, tasks {', '.join(tasks)}, "
            f"data {data}, seed {cfg['seed']}.",
            "",
            *_strategy_lines(report.strategy),
        ]
    if report.metrics:
        final = report.metrics[-1]
        forgetting = report.forgetting()
        lines += [
            "## Final scores",
            "",
            "| task | degraded input PSNR / SSIM | restored PSNR / SSIM | forgetting (dB) |",
            "|---|---:|---:|---:|",
        ]
        for j, t in enumerate(tasks):
            d = report.degraded.get(t, {})
            lines.append(
                f"| {t} | {d.get('psnr', float('nan')):.2f} / {d.get('ssim', float('nan')):.4f} "
                f"| {final[j]['psnr']:.2f} / {final[j]['ssim']:.4f} "
                f"| {_signed(forgetting.get(t))} |"
            )
        mean_p = np.mean([m["psnr"] for m in final])
        mean_s = np.mean([m["ssim"] for m in final])
        lines += ["", f"Average over the tasks: PSNR {mean_p:.2f} dB, SSIM {mean_s:.4f}.", ""]
        lines += [
            "## Accuracy matrix (PSNR dB, row: after learning that task)",
            "",
            *matrix_table(report),
            "",
        ]
    if report.pruning:
        lines += [
            "## SEP pruning",
            "",
            "| task | groups before -> after | params (M) before -> after | MACs (G) before "
            "-> after | PSNR before / pruned / fine-tuned | SEP s (similarity + sepkit) |",
            "|---|---|---:|---:|---|---:|",
        ]
        for t, p in report.pruning.items():
            b, a = p["before"], p["after_pruning"]
            ft = p.get("after_finetuning", {}).get("psnr", float("nan"))
            lines.append(
                f"| {t} | {sum(p['groups_before'])} -> {sum(p['groups_after'])} "
                f"| {b['activated_params'] / 1e6:.3f} -> {a['activated_params'] / 1e6:.3f} "
                f"| {b['macs'] / 1e9:.2f} -> {a['macs'] / 1e9:.2f} "
                f"| {b['psnr']:.2f} / {a['psnr']:.2f} / {ft:.2f} "
                f"| {p['seconds']['similarity'] + p['seconds']['graph']:.3f} |"
            )
        lines += ["", "Params and MACs of one task path at 1 x 1 x 512 x 640.", ""]
    if report.examples:
        task = cfg["examples_task"]
        lines += [
            f"## Real thermal images ({cfg['examples']}, task {task})",
            "",
            "| image | degraded PSNR / SSIM | ours PSNR / SSIM | peer's restoration PSNR / SSIM |",
            "|---|---:|---:|---:|",
        ]
        for name, row in report.examples.items():
            cells = [
                f"{row[k]['psnr']:.2f} / {row[k]['ssim']:.4f}" if k in row else "-"
                for k in ("degraded", "ours", "peer")
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += recognizer_markdown(report.recognizer)
    if report.size:
        lines += ["## Model size over the sequence", "", "| after | total params |", "|---|---:|"]
        lines += [f"| {s['after']} | {s['total_params']:,} |" for s in report.size]
        lines.append("")
    if report.seconds:
        total = sum(report.seconds.values())
        lines += [f"Time: {total:.1f} s over {len(report.seconds)} stages.", ""]
    if plots:
        lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    else:
        lines += ["(Plots skipped: install matplotlib to get them.)", ""]
    return "\n".join(lines)


def matrix_table(report) -> list[str]:
    """The accuracy matrix as Markdown table lines (PSNR dB; a row per ``row_labels``)."""
    tasks = report.tasks
    lines = ["| after \\ task | " + " | ".join(tasks) + " |", "|---|" + "---:|" * len(tasks)]
    for label, row in zip(report.row_labels(), report.metrics, strict=True):
        cells = [f"{row[j]['psnr']:.2f}" if j < len(row) else "" for j in range(len(tasks))]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _signed(value) -> str:
    return "-" if value is None else f"{value:+.4f}"


def _strategy_lines(strategy: dict) -> list[str]:
    lines = []
    if "strength" in strategy:
        lines.append(f"Regulariser strength {strategy['strength']:g}.")
    tuning = strategy.get("tuning")
    if tuning:
        pairs = ", ".join(
            f"{s:g}: {v:.2f} dB"
            for s, v in zip(tuning["grid"], tuning["validation_psnr"], strict=True)
        )
        lines.append(
            f"Chosen on the validation split after {tuning['epochs']} epoch(s) on each of "
            f"{', '.join(tuning['tasks'])} (average validation PSNR per strength: {pairs})"
            + (" - at the edge of the grid." if tuning["at_edge"] else ".")
        )
    if "joint_batches" in strategy:
        counts = ", ".join(f"{t} {n}" for t, n in strategy["joint_batches"].items())
        lines.append(f"Joint training batches per task: {counts}.")
    return [*lines, ""] if lines else []


def _plots(report, out: Path, strip) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib is not installed: no plots")
        return []
    paths = []
    tasks = report.tasks
    if report.metrics:
        labels = report.row_labels()
        M = np.full((len(labels), len(tasks)), np.nan)
        for i, row in enumerate(report.metrics):
            for j, m in enumerate(row):
                M[i, j] = m["psnr"]
        fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(tasks), 1.0 + 0.7 * len(labels)))
        im = ax.imshow(M, cmap="viridis")
        ax.set_xticks(range(len(tasks)), tasks)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("evaluated task")
        ax.set_ylabel("after learning")
        for i, j in zip(*np.nonzero(np.isfinite(M)), strict=True):
            ax.text(j, i, f"{M[i, j]:.1f}", ha="center", va="center", color="w", fontsize=8)
        fig.colorbar(im, ax=ax, label="PSNR (dB)")
        ax.set_title("accuracy matrix")
        fig.tight_layout()
        paths.append(_save(fig, out / "metric_matrix.png", plt))
    if report.size:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(
            [s["after"] for s in report.size],
            [s["total_params"] / 1e6 for s in report.size],
            marker="o",
        )
        ax.set_xlabel("after learning")
        ax.set_ylabel("total params (M)")
        ax.set_title("model size over the task sequence")
        fig.tight_layout()
        paths.append(_save(fig, out / "model_size.png", plt))
    if strip:
        fig, axes = plt.subplots(len(strip), 3, figsize=(6, 2 * len(strip)), squeeze=False)
        for r, (task, degraded, restored, clean) in enumerate(strip):
            for c, (img, title) in enumerate(
                ((degraded, "degraded"), (restored, "restored"), (clean, "clean"))
            ):
                axes[r, c].imshow(img.squeeze().cpu().numpy(), cmap="gray", vmin=0, vmax=1)
                axes[r, c].set_title(f"{task}: {title}", fontsize=8)
                axes[r, c].axis("off")
        fig.tight_layout()
        paths.append(_save(fig, out / "restored_strip.png", plt))
    return paths


def _save(fig, path: Path, plt) -> Path:
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
