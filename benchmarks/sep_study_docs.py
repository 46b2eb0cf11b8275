"""The SEP study's tables of ``docs/pruning.md``, from the cells in ``docs/results/sep-study``.

    .venv/bin/python -m benchmarks.sep_study_docs [--results docs/results/sep-study]

Prints two Markdown tables (mean ± sd over the seeds of each training length and recipe,
PSNR dB on the test frames, no fine-tuning): the published SEP against MP and SRP at its
counts, and the budgeted SEP with and without refitted exits against the baselines at its
counts. "unpruned" is the raw weights that pruning reads.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.sep_table7 import mean_sd

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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="docs/results/sep-study")
    parser.add_argument("--model", default="tiny")
    args = parser.parse_args(argv)
    print(tables(cells_by_length(Path(args.results), args.model)), end="")


if __name__ == "__main__":
    main()
