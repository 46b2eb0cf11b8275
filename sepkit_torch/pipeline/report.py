"""What a run measured (:class:`Report`) and every rendering of it: a run's
``report.json``, ``report.md`` and PNG plots, and the comparison of several methods.

The plots need matplotlib; without it the JSON and Markdown are still written and the
Markdown says the plots were skipped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sepkit_torch._errors import InvalidInputError
from sepkit_torch._files import atomic_write, atomic_write_text
from sepkit_torch.data import SCENE_STYLES, read_image
from sepkit_torch.data.registry import DEFAULT_PRESET
from sepkit_torch.metrics import psnr, ssim
from sepkit_torch.pipeline.data import example_pairs


@dataclass
class PruneReport:
    """What pruning one task's branch did (the pipeline fills it at the prune and fine-tune steps).

    Attributes
    ----------
    task : str
    groups_before, groups_after : list of int
        Groups per stage ``e1 .. d3``.
    pool : int
        Images the selection used.
    frequency : dict of str -> list of float
        Selection frequency of every group, per stage.
    seconds : dict of str -> float
        Forward, similarity and sepkit time of the selection.
    before, after_pruning : dict
        ``activated_params`` and ``macs`` of the task's path (at 1 x 1 x 512 x 640) and
        ``psnr``/``ssim`` on the task's test set.
    after_finetuning : dict
        ``psnr``/``ssim`` after fine-tuning (empty until then).

    With ``sep_compensate`` the pipeline adds ``exit_refit_error`` to the dict: per
    stage, the relative squared error of the refitted exit convolution on the pool.
    """

    task: str
    groups_before: list[int]
    groups_after: list[int]
    pool: int
    frequency: dict[str, list[float]]
    seconds: dict[str, float]
    before: dict[str, float]
    after_pruning: dict[str, float]
    after_finetuning: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


__all__ = ["Report", "matrix_table", "write_comparison", "write_report"]

log = logging.getLogger("sepkit_torch.pipeline")


@dataclass
class Report:
    """What a run measured; ``report.json`` holds the same as plain data."""

    config: dict[str, Any]
    tasks: list[str] = field(default_factory=list)
    # metrics[i][j]: task j evaluated after learning task i (j <= i), {"psnr", "ssim"}
    metrics: list[list[dict[str, float]]] = field(default_factory=list)
    degraded: dict[str, dict[str, float]] = field(default_factory=dict)
    pruning: dict[str, dict[str, Any]] = field(default_factory=dict)
    size: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    pretrain: dict[str, float] = field(default_factory=dict)
    # real degraded/clean pairs (config.examples): per image, degraded input, our
    # restoration and, where present, the peer's restoration (PSNR/SSIM)
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the baselines: the strength used and its tuning, joint training's batches per task
    strategy: dict[str, Any] = field(default_factory=dict)
    # the degradation recognizer: letters, size, and its scores after each task
    recognizer: dict[str, Any] = field(default_factory=dict)
    # the run's network, and False when its method learns every task at once (one row
    # of scores, no forgetting); both from the method's strategy
    network: str = "ECMRNet"
    sequential: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        return cls(**data)

    @property
    def method(self) -> str:
        return self.config.get("method", "ecmrnet")

    def row_labels(self) -> list[str]:
        """What each row of ``metrics`` comes after (joint training has one row)."""
        if not self.sequential:
            return ["all tasks"]
        return list(self.tasks[: len(self.metrics)])

    def forgetting(self) -> dict[str, float]:
        """Per task: PSNR right after learning it minus PSNR at the end (0 = no forgetting).

        Empty for a method that learns every task at once (joint training).
        """
        if not self.sequential:
            return {}
        out = {}
        for j, name in enumerate(self.tasks):
            out[name] = self.metrics[j][j]["psnr"] - self.metrics[-1][j]["psnr"]
        return out


def restored_strip(tasks, test_images, restore) -> list[tuple]:
    """The first test image of every task: ``(task, degraded, restored, clean)``.

    `test_images(task)` is the task's fixed test set; ``restore(x, task)`` a model's
    restoration of a CPU batch ``x`` (in evaluation mode, without gradients).
    """
    rows = []
    for task in tasks:
        degraded, clean = test_images(task)[0]
        restored = restore(degraded.unsqueeze(0), task).clamp(0, 1)[0]
        rows.append((task, degraded, restored.cpu(), clean))
    return rows


def real_examples(folder: Path, task: str, tasks, restore) -> dict[str, dict[str, Any]]:
    """Score `task`'s restoration on real pairs: ``folder/hard`` against ``folder/imgs``
    (same file names), beside the peer's ``folder/enh_hard`` if any.

    ``restore(x, task)`` is a model's restoration of a CPU batch ``x``; `tasks` are the
    run's.
    """
    if task not in tasks:
        raise InvalidInputError(f"`examples_task` {task!r} is not one of the run's tasks {tasks}")
    clean_dir, peer_dir = folder / "imgs", folder / "enh_hard"
    out: dict[str, dict[str, Any]] = {}
    for path in example_pairs(folder):
        clean = read_image(clean_dir / path.name).unsqueeze(0)
        hard = read_image(path).unsqueeze(0)
        ours = restore(hard, task).clamp(0, 1)
        row = {"degraded": _scores(hard, clean), "ours": _scores(ours.cpu(), clean)}
        if (peer_dir / path.name).is_file():
            row["peer"] = _scores(read_image(peer_dir / path.name).unsqueeze(0), clean)
        out[path.stem] = row
    return out


def _scores(restored: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    return {
        "psnr": round(float(psnr(restored, clean)), 4),
        "ssim": round(float(ssim(restored, clean)), 4),
    }


def write_report(report, out: Path, strip: list[tuple[str, torch.Tensor, ...]] | None = None):
    """Write ``report.json``, ``report.md`` and the plots into `out`; returns the paths.

    `strip`: per task ``(task, degraded, restored, clean)`` single images (1, H, W) for
    the restored-image strip.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = report.to_dict()
    data["forgetting_psnr"] = report.forgetting() if report.metrics else {}
    atomic_write_text(out / "report.json", json.dumps(data, indent=2) + "\n")
    plots = _plots(report, out, strip)
    atomic_write_text(out / "report.md", _markdown(report, plots))
    return [out / "report.json", out / "report.md", *plots]


def _data(cfg) -> str:
    """The run's data in words: a folder, or the procedural scenes' style, and the
    degradation preset when it is not the default."""
    data = "procedural thermal scenes" if cfg["data"] is None else cfg["data"]
    style = cfg.get("scene_style", SCENE_STYLES[0])
    if cfg["data"] is None and style != SCENE_STYLES[0]:
        data += f" (`{style}`)"
    preset = cfg.get("degradation_preset", DEFAULT_PRESET)
    return data if preset == DEFAULT_PRESET else f"{data}, degradations `{preset}`"


def _ecmrnet_heading(report) -> list[str]:
    cfg = report.config
    return [
        "# ECMRNet task-sequence report",
        "",
        f"Preset `{cfg['preset']}`, model `{cfg['model']}`, tasks {', '.join(report.tasks)}, "
        f"data {_data(cfg)}, seed {cfg['seed']}, SEP {'on' if cfg['prune'] else 'off'} "
        f"({_sep_rule(cfg)}, {cfg['sep_method']}, ties {cfg.get('sep_tie', 'index')}, "
        f"criterion {cfg.get('sep_criterion', 'published')}, "
        f"{cfg['sep_similarity']}), "
        f"SKMM `{cfg['skmm']}`.",
        "",
    ]


def _sep_rule(cfg: dict) -> str:
    """How many groups SEP keeps: the paper's rho, or this project's budget (and refit)."""
    if cfg.get("sep_budget") is None:
        rule = f"rho {cfg['sep_rho']}"
    else:
        rule = f"budget {cfg['sep_budget']} of the stage parameters"
    return rule + (", exits refitted" if cfg.get("sep_compensate") else "")


def _baseline_heading(report) -> list[str]:
    cfg = report.config
    return [
        f"# Baseline `{report.method}` task-sequence report",
        "",
        f"Preset `{cfg['preset']}`, NAFNet `{cfg['baseline']}`, tasks "
        f"{', '.join(report.tasks)}, data {_data(cfg)}, seed {cfg['seed']}.",
        "",
        *_strategy_lines(report.strategy),
    ]


# The report's first lines, by the network of its run (a strategy's ``network``).
_HEADINGS = {"ECMRNet": _ecmrnet_heading, "NAFNet": _baseline_heading}


def _markdown(report, plots: list[Path]) -> str:
    cfg = report.config
    tasks = report.tasks
    lines = _HEADINGS[report.network](report)
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
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    return path


def recognizer_markdown(info: Mapping[str, Any]) -> list[str]:
    """The report's section on the recognizer (Markdown lines); ``[]`` without one."""
    if not info or not info.get("after"):
        return []
    tasks = list(info["after"])
    final = info["after"][tasks[-1]]
    letters = final["letters"]
    trained = {
        "pairs": "each task's pairs only",
        "mixtures": "each task's pairs, around every other letter of the tasks, its own "
        "strength mild beside them; thresholds calibrated on validation frames",
    }.get(info["mode"], "each task's pairs, around the letters learned before it")
    lines = [
        "## Degradation recognizer",
        "",
        f"Heads {', '.join(letters)} (trained on "
        + trained
        + f"); {info['params']:,} params, {info['macs'] / 1e9:.3f} GMACs at 1 x 1 x 512 x 640. "
        "Routed: share of the task's test images sent to that task; exact: share whose "
        "recognized letters are exactly the task's; then per letter, the share on which "
        "that head is right.",
        "",
        "| test images | routed | exact | " + " | ".join(letters) + " |",
        "|---|---:|---:|" + "---:|" * len(letters),
    ]
    for row in final["rows"]:
        r = final["per_task"][row]
        cells = " | ".join(f"{r['letter'][letter]:.2f}" for letter in letters)
        lines.append(f"| {row} | {r['routed']:.2f} | {r['exact']:.2f} | {cells} |")
    calibration = info.get("calibration") or {}
    if calibration:
        lines += [
            "",
            "Thresholds: "
            + ", ".join(
                f"{letter} {c['threshold']:.3f} (balanced accuracy on {c['n']} validation "
                f"images {c['balanced_accuracy']['before']:.3f} at 0.5, "
                f"{c['balanced_accuracy']['after']:.3f} calibrated)"
                for letter, c in calibration.items()
            )
            + ".",
        ]
    lines += [
        "",
        f"Mean routing accuracy over the degraded test sets: {final['accuracy']:.3f}.",
        "",
        "Confusion (row: true task, column: routed to; clean = left as is):",
        "",
        "| true \\ routed | " + " | ".join(final["columns"]) + " |",
        "|---|" + "---:|" * len(final["columns"]),
    ]
    for row, counts in zip(final["rows"], final["confusion"], strict=True):
        lines.append(f"| {row} | " + " | ".join(str(c) for c in counts) + " |")
    lines += [
        "",
        "Routing accuracy over the sequence (row: after learning that task):",
        "",
        "| after \\ task | " + " | ".join(tasks) + " |",
        "|---|" + "---:|" * len(tasks),
    ]
    for after in tasks:
        per = info["after"][after]["per_task"]
        cells = [f"{per[t]['routed']:.2f}" if t in per else "" for t in tasks]
        lines.append(f"| {after} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


# ----------------------------------------------------------------------------- comparison


def write_comparison(summary: dict[str, Any], reports: dict[str, Report], out: Path) -> None:
    """``comparison.json``, ``comparison.md`` and the plots, into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "comparison.json", json.dumps(summary, indent=2) + "\n")
    plots = _comparison_plots(summary, out)
    atomic_write_text(out / "comparison.md", _comparison_markdown(summary, reports, plots))


def _comparison_markdown(summary, reports, plots) -> str:
    tasks, rows = summary["tasks"], summary["methods"]
    cfg = next(iter(reports.values())).config
    lines = [
        "# Strategy comparison",
        "",
        f"Preset `{cfg['preset']}`, tasks {', '.join(tasks)}, "
        f"data {_data(cfg)}, "
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


def _comparison_plots(summary, out: Path) -> list[Path]:
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
