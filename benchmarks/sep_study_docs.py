"""The SEP study's tables of ``docs/pruning.md``, from the cells in ``docs/results/sep-study``.

    .venv/bin/python -m benchmarks.sep_study_docs [--results docs/results/sep-study]

Prints three Markdown tables (mean ± sd over the seeds of each training length and
recipe, PSNR dB on the test frames, no fine-tuning): the published SEP against MP and SRP
at its counts; the budgeted SEP with and without refitted exits against the baselines at
its counts ("unpruned" is the raw weights that pruning reads); and, from the
``sensitivity-*.json`` files of ``benchmarks/sep_sensitivity.py``, the published SEP's
path cut and its lead over MP at each ``rho`` and pool size N (the paper's Tables 6 and 5),
beside the paper's path cuts; and the seed-paired differences the verdict quotes
(``paired_table``: each difference taken within a seed, then mean ± sd over seeds).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.sep_study_tables import mean_sd

AT_BUDGET = " @ SEP (budget) counts"
PUBLISHED = ("SEP", "SEP (published ties)", "MP", "SRP")
BUDGET = (
    "SEP (budget)",
    "MP" + AT_BUDGET,
    "SRP" + AT_BUDGET,
    "exit energy" + AT_BUDGET,
    "SEP (budget), compensated",
    "MP, compensated" + AT_BUDGET,
    "SRP, compensated" + AT_BUDGET,
)


#: The paper's Table 6: params (M) of a task path (4.07 M unpruned) at each rho, N = 300.
PAPER_TABLE6 = {
    "C": (3.59, 2.95, 2.42, 1.93),
    "B": (3.38, 3.11, 2.59, 2.27),
    "N": (3.81, 3.22, 2.66, 2.10),
}
PAPER_RHOS = (0.05, 0.1, 0.15, 0.2)
PAPER_PATH = 4.07


def cells_by_length(results: Path, model: str) -> dict[tuple[int, str], list[dict]]:
    groups: dict[tuple[int, str], list[dict]] = {}
    for path in sorted(results.glob(f"{model}-*.json")):
        cell = json.loads(path.read_text())
        cfg = cell["config"]
        groups.setdefault((cfg["steps"], cfg["recipe"]), []).append(cell)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] != "paper")))


def _label(steps: int, recipe: str, n: int) -> str:
    return f"{steps}, {recipe}, {n} seed{'s' if n > 1 else ''}"


def tables(groups: dict) -> str:
    head_a = "| steps, recipe, seeds | task | path cut by SEP | unpruned | " + " | ".join(PUBLISHED)
    head_b = "| steps, recipe, seeds | task | unpruned | " + " | ".join(
        n.replace(AT_BUDGET, "") for n in BUDGET
    )
    a = [head_a + " |", "|---|---|" + "---:|" * (len(PUBLISHED) + 2)]
    b = [head_b + " |", "|---|---|" + "---:|" * (len(BUDGET) + 1)]
    for (steps, recipe), cells in groups.items():
        for task in cells[0]["tasks"]:
            rows = [c["tasks"][task] for c in cells if "SEP" in c["tasks"].get(task, {})]
            label = _label(steps, recipe, len(rows))
            raw = mean_sd([r.get("unpruned, raw weights", r["unpruned"])["psnr"] for r in rows])
            cut = mean_sd(
                [
                    100 * (r["SEP"]["activated_params"] / r["unpruned"]["activated_params"] - 1)
                    for r in rows
                ]
            )
            a.append(
                f"| {label} | {task} | {cut}% | {raw} | "
                + " | ".join(mean_sd([r[n]["psnr"] for r in rows if n in r]) for n in PUBLISHED)
                + " |"
            )
            b.append(
                f"| {label} | {task} | {raw} | "
                + " | ".join(mean_sd([r[n]["psnr"] for r in rows if n in r]) for n in BUDGET)
                + " |"
            )
    return "\n".join(a) + "\n\n" + "\n".join(b) + "\n"


#: The verdict's paired differences: (column, minuend, subtrahends); "max" of several.
FINETUNED = "SEP (budget), compensated fine-tuned"
PAIRED = (
    ("SEP - max(MP, SRP)", "SEP", ("MP", "SRP")),
    ("SEP - random x5", "SEP", ("random x5",)),
    ("budget, compensated - max(MP, SRP)", BUDGET[4], BUDGET[1:3]),
    ("budget, compensated - max(compensated MP, SRP)", BUDGET[4], BUDGET[5:7]),
    ("budget, compensated - unpruned", BUDGET[4], ("unpruned, raw weights",)),
    ("fine-tuned - unpruned", FINETUNED, ("unpruned, raw weights",)),
)


def _paired(row: dict, name: str, others: tuple[str, ...]) -> float | None:
    """``row[name] - max(row[o])`` in dB; None where the row lacks one of them."""
    if "unpruned, raw weights" in others and "unpruned, raw weights" not in row:
        others = ("unpruned",)  # the paper recipe: the raw weights are what it reports
    if name not in row or any(o not in row for o in others):
        return None
    return row[name]["psnr"] - max(row[o]["psnr"] for o in others)


def paired_table(groups: dict) -> str:
    """Seed-paired differences (dB, test frames) per cell and task, mean ± sd over seeds."""
    head = "| steps, recipe, seeds | task | " + " | ".join(c for c, _, _ in PAIRED)
    lines = [head + " |", "|---|---|" + "---:|" * len(PAIRED)]
    for (steps, recipe), cells in groups.items():
        for task in cells[0]["tasks"]:
            rows = [c["tasks"][task] for c in cells if "SEP" in c["tasks"].get(task, {})]
            cols = [mean_sd([_paired(r, n, o) for r in rows]) for _, n, o in PAIRED]
            label = _label(steps, recipe, len(rows))
            lines.append(f"| {label} | {task} | " + " | ".join(cols) + " |")
    return "\n".join(lines) + "\n"


def sensitivity_table(results: Path, model: str) -> str:
    """Path cut and SEP - MP (dB, no fine-tuning) per rho / N setting and task."""
    groups: dict[tuple[int, str], list[dict]] = {}
    for path in sorted(results.glob(f"sensitivity-{model}-*.json")):
        cell = json.loads(path.read_text())
        groups.setdefault((cell["cell"]["steps"], cell["cell"]["recipe"]), []).append(cell)
    tasks = ("C", "B", "N")
    head = "| steps, recipe, seeds | setting | " + " | ".join(
        f"{t} path cut | {t} SEP - MP" for t in tasks
    )
    lines = [head + " |", "|---|---|" + "---:|" * (2 * len(tasks))]
    for i, rho in enumerate(PAPER_RHOS):
        cuts = [f"-{100 * (1 - PAPER_TABLE6[t][i] / PAPER_PATH):.1f}% | -" for t in tasks]
        lines.append(f"| the paper (Table 6) | rho {rho:g}, N 300 | " + " | ".join(cuts) + " |")
    for (steps, recipe), cells in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1] != "paper")
    ):
        # every setting of any task (a cell run task by task may still lack some)
        settings = list(
            dict.fromkeys(n for c in cells for rows in c["tasks"].values() for n in rows)
        )
        for name in [n for n in settings if n != "unpruned"]:
            cols = []
            for t in tasks:
                rows = [c["tasks"][t] for c in cells if name in c["tasks"].get(t, {})]
                cut = [
                    100
                    * (r[name]["SEP"]["activated_params"] / r["unpruned"]["activated_params"] - 1)
                    for r in rows
                ]
                lead = [r[name]["SEP"]["psnr"] - r[name]["MP"]["psnr"] for r in rows]
                cut_text = mean_sd(cut)
                cols.append(f"{cut_text}{'%' if cut else ''} | {mean_sd(lead)}")
            # the parts of a cell run task by task are files of one seed
            label = _label(steps, recipe, len({c["cell"]["seed"] for c in cells}))
            lines.append(f"| {label} | {name} | " + " | ".join(cols) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="docs/results/sep-study")
    parser.add_argument("--model", default="tiny")
    args = parser.parse_args(argv)
    groups = cells_by_length(Path(args.results), args.model)
    print(tables(groups))
    print(paired_table(groups))
    print(sensitivity_table(Path(args.results), args.model), end="")


if __name__ == "__main__":
    main()
