"""The pruning curves' tables and figure, from the cells in ``docs/results/sep-curves``.

    .venv/bin/python -m benchmarks.sep_curves.report --model tiny \\
        --figure docs/images/sep_curves_tiny.png

Prints Markdown tables (mean ± sd over the seeds, PSNR dB on the test frames; every
difference is taken within a seed, then averaged):

- the curves: per task and exits, every allocation x selection at every size;
- allocations: structural entropy's own counts against the uniform, the cost-aware and
  the global allocation, with the same selection;
- selections: SE's selections against the better of MP and SRP, in the same allocation;
- separation: at each size, the range of the rows' means against their seeds' spread;
- fine-tuning: the fine-tuned rows against the unpruned branch trained on for as many
  steps.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.sep_curves.allocations import ALLOCATIONS
from benchmarks.sep_curves.run import FINETUNE_SIZE, FINETUNED, SELECTIONS, row_name
from benchmarks.sep_study_tables import mean_sd

TASKS = ("C", "B", "N")
#: The comparisons of the selection table: SE's selections against these baselines.
SE_SELECTIONS = ("SE", "SE (contribution)")
BASELINES = ("MP", "SRP")


def load_cells(results: Path, model: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(results.glob(f"{model}-*.json"))]


def sizes(cells: list[dict], task: str) -> list[str]:
    """The size labels of `task`'s rows, in the order the cells hold them."""
    labels: list[str] = []
    for cell in cells:
        for name in cell["tasks"].get(task, {}):
            parts = name.split(" | ")
            if len(parts) == 2 and parts[0] not in labels:
                labels.append(parts[0])
    return labels


def _rows(cells, task):
    return [c["tasks"][task] for c in cells if task in c["tasks"]]


def _values(cells, task, name, key="psnr"):
    return [r[name][key] for r in _rows(cells, task) if name in r]


def _cut(cells, task, name) -> float | None:
    cuts = [
        1 - r[name]["activated_params"] / r["unpruned"]["activated_params"]
        for r in _rows(cells, task)
        if name in r
    ]
    return float(np.mean(cuts)) if cuts else None


def _paired(cells, task, a: str, b) -> str:
    """`a` minus `b` within each seed (`b` a row name or a list of names: their best)."""
    out = []
    for rows in _rows(cells, task):
        names = [b] if isinstance(b, str) else list(b)
        if a in rows and all(n in rows for n in names):
            out.append(rows[a]["psnr"] - max(rows[n]["psnr"] for n in names))
    return mean_sd(out)


def _name(label: str, allocation: str, selection: str, refit: bool) -> str:
    return f"{label} | {allocation} | {selection}" + " | refit" * refit


def curve_tables(cells: list[dict]) -> str:
    out = []
    for task in TASKS:
        labels = sizes(cells, task)
        if not labels:
            continue
        for refit in (False, True):
            shown = [lb for lb in labels if _values(cells, task, _name(lb, "SE", "MP", refit))]
            if not shown:
                continue
            cuts = [_cut(cells, task, _name(lb, "SE", "MP", refit)) for lb in shown]
            head = " | ".join(f"{lb} ({100 * c:.0f}%)" for lb, c in zip(shown, cuts, strict=True))
            exits = "refitted" if refit else "as pruned"
            out.append(f"\n#### Task {task}, exits {exits} ({len(_rows(cells, task))} seeds)\n")
            out.append(f"| allocation | selection | {head} |")
            out.append("|---|---|" + "---:|" * len(shown))
            unpruned = mean_sd(
                _values(cells, task, "unpruned, raw weights") or _values(cells, task, "unpruned")
            )
            out.append(f"| unpruned | | {' | '.join([unpruned] * len(shown))} |")
            for allocation in ALLOCATIONS:
                for selection in SELECTIONS:
                    values = [
                        mean_sd(_values(cells, task, _name(lb, allocation, selection, refit)))
                        for lb in shown
                    ]
                    out.append(f"| {allocation} | {selection} | {' | '.join(values)} |")
    return "\n".join(out)


def allocation_table(cells: list[dict], selections=("SE", "MP", "SRP")) -> str:
    """SE's allocation minus each other allocation, with the same selection."""
    pairs = [
        (f"{s}: SE − {a}", lambda lb, r, s=s, a=a: (_name(lb, "SE", s, r), _name(lb, a, s, r)))
        for s in selections
        for a in ALLOCATIONS
        if a != "SE"
    ]
    return _paired_table(cells, pairs)


def selection_table(cells: list[dict]) -> str:
    """SE's selections minus the better of MP and SRP, in every allocation."""
    pairs = [
        (
            f"{s} @ {a}",
            lambda lb, r, s=s, a=a: (_name(lb, a, s, r), [_name(lb, a, b, r) for b in BASELINES]),
        )
        for s in SE_SELECTIONS
        for a in ALLOCATIONS
    ]
    return _paired_table(cells, pairs)


def _paired_table(cells: list[dict], pairs) -> str:
    """A row per task, size and exits; a column per ``(title, rows(label, refit))``, the
    seed-paired difference of the two rows ``rows`` names."""
    head = " | ".join(title for title, _ in pairs)
    out = [f"| task | size | exits | {head} |", "|---|---|---|" + "---:|" * len(pairs)]
    for task in TASKS:
        for label in sizes(cells, task):
            for refit in (False, True):
                if not _values(cells, task, _name(label, "SE", "MP", refit)):
                    continue
                diffs = [_paired(cells, task, *rows(label, refit)) for _, rows in pairs]
                exits = "refit" if refit else "pruned"
                out.append(f"| {task} | {label} | {exits} | {' | '.join(diffs)} |")
    return "\n".join(out)


def separation_table(cells: list[dict]) -> str:
    """Per size: the best row, the range of the rows' means, the median seed sd, and the
    rows whose seed-paired difference from the best is within one sd of zero."""
    head = "| task | size | exits | best row | its PSNR | range of means | median sd | tied |"
    out = [head, "|---|---|---|---|---:|---:|---:|---:|"]
    for task in TASKS:
        for label in sizes(cells, task):
            for refit in (False, True):
                names = [
                    _name(label, a, s, refit)
                    for a in ALLOCATIONS
                    for s in SELECTIONS
                    if _values(cells, task, _name(label, a, s, refit))
                ]
                if not names:
                    continue
                means = {n: float(np.mean(_values(cells, task, n))) for n in names}
                seeds = len(_rows(cells, task))
                sds = [np.std(_values(cells, task, n), ddof=1) for n in names] if seeds > 1 else []
                spread = f"{np.median(sds):.2f}" if sds else "-"
                best = max(means, key=means.get)
                tied = sum(_tied(cells, task, n, best) for n in names)
                exits = "refit" if refit else "pruned"
                short = " / ".join(best.split(" | ")[1:3])
                out.append(
                    f"| {task} | {label} | {exits} | {short} | {means[best]:.2f} | "
                    f"{max(means.values()) - min(means.values()):.2f} | "
                    f"{spread} | "
                    f"{tied} of {len(names)} |"
                )
    return "\n".join(out)


def _tied(cells, task, name, best) -> bool:
    diffs = [
        r[best]["psnr"] - r[name]["psnr"] for r in _rows(cells, task) if name in r and best in r
    ]
    if len(diffs) < 2:
        return name == best
    return float(np.mean(diffs)) <= float(np.std(diffs, ddof=1))


def finetune_table(cells: list[dict]) -> str:
    tuned = {row_name(FINETUNE_SIZE, a, s, True, True): f"{a} / {s}" for a, s in FINETUNED}
    out = [
        "| row | " + " | ".join(f"{t} | {t} − trained on" for t in TASKS) + " |",
        "|---|" + "---:|---:|" * len(TASKS),
    ]
    for name in ["unpruned, raw weights", "unpruned, trained on", *tuned]:
        cols = []
        for task in TASKS:
            cols.append(mean_sd(_values(cells, task, name)))
            cols.append(_paired(cells, task, name, "unpruned, trained on"))
        label = f"{tuned[name]}, refit, fine-tuned" if name in tuned else name
        out.append(f"| {label} | {' | '.join(cols)} |")
    return "\n".join(out)


def figure(cells: list[dict], path: Path) -> None:
    """PSNR against the path parameters kept: a column per task, a row per exits."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in TASKS if sizes(cells, t)]
    fig, axes = plt.subplots(2, len(tasks), figsize=(max(10, 5 * len(tasks)), 9), squeeze=False)
    colors = dict(zip(SELECTIONS, plt.get_cmap("tab10").colors, strict=False))
    styles = dict(zip(ALLOCATIONS, ("-", "--", ":", "-."), strict=True))
    for col, task in enumerate(tasks):
        labels = sizes(cells, task)
        unpruned = np.mean(
            _values(cells, task, "unpruned, raw weights") or _values(cells, task, "unpruned")
        )
        for row, refit in enumerate((False, True)):
            ax = axes[row][col]
            for allocation in ALLOCATIONS:
                for selection in SELECTIONS:
                    points = []
                    for label in labels:
                        name = _name(label, allocation, selection, refit)
                        values = _values(cells, task, name)
                        if values:
                            points.append((1 - _cut(cells, task, name), np.mean(values)))
                    if points:
                        x, y = zip(*sorted(points), strict=True)
                        ax.plot(
                            x, y, styles[allocation], color=colors[selection], marker=".", lw=1.2
                        )
            ax.axhline(unpruned, color="black", lw=0.8, ls=(0, (1, 3)))
            ax.set_title(f"{task}, exits {'refitted' if refit else 'as pruned'}")
            ax.set_xlabel("path parameters kept (share of unpruned)")
            ax.set_ylabel("PSNR dB (test frames)")
            ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=colors[s], label=s) for s in SELECTIONS] + [
        plt.Line2D([], [], color="gray", ls=styles[a], label=f"{a} allocation") for a in ALLOCATIONS
    ]
    handles.append(plt.Line2D([], [], color="black", ls=(0, (1, 3)), label="unpruned"))
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False)
    seeds = ", ".join(f"{t}: {len(_rows(cells, t))}" for t in tasks)
    fig.suptitle(f"Pruning curves, {cells[0]['config']['model']} preset, mean of seeds ({seeds})")
    fig.tight_layout(rect=(0, 0.1, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="docs/results/sep-curves")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--figure", metavar="PNG", help="also draw the curves there")
    args = parser.parse_args(argv)
    cells = load_cells(Path(args.results), args.model)
    if not cells:
        raise SystemExit(f"error: no {args.model}-*.json cell in {args.results}")
    print("### Curves (PSNR dB, mean ± sd over seeds; the size's mean path cut in brackets)")
    print(curve_tables(cells))
    print("\n### Allocations: SE's counts minus another allocation's, same selection (dB)\n")
    print(allocation_table(cells))
    print("\n### Selections: SE's selections minus the better of MP and SRP (dB)\n")
    print(selection_table(cells))
    print("\n### Where the methods separate\n")
    print(separation_table(cells))
    print("\n### Fine-tuned at 40% (exits refitted), equal steps\n")
    print(finetune_table(cells))
    if args.figure:
        figure(cells, Path(args.figure))


if __name__ == "__main__":
    main()
