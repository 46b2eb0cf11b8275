"""Choosing the budgeted SEP on validation frames (never the test frames).

Reads the trained branches of finished ``benchmarks/sep_table7.py`` cells and scores,
on each task's validation frames (whole training-stream frames of an epoch training
never reaches), the selections that remove the same share of the branch's stage
parameters: the budgeted SEP with each criterion, the groups' exit-convolution energy
alone (no structural entropy), MP, SRP and random groups, all at the budgeted SEP's
counts, without fine-tuning. Prints one table per cell and the mean over cells.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.sep_budget_tuning \\
        runs/sep-study-tiny/tiny-paper-500-s0 runs/sep-study-tiny/tiny-paper-2000-s0
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numba
import numpy as np
import torch

from benchmarks import sep_table7 as study
from sepkit_torch import ECMRNet
from sepkit_torch.continual.pruning import (
    compensate_exits,
    gate_scores,
    magnitude_scores,
    prune,
    select_groups,
    top_groups,
)
from sepkit_torch.data.sampling import mix_seed
from sepkit_torch.models.backbone import STAGE_NAMES


def cell_rows(folder: Path, budgets, tasks) -> dict:
    results = json.loads((folder / "results.json").read_text())
    args = argparse.Namespace(**results["config"])
    args.frame = tuple(args.frame)
    rows: dict = {}
    for task in tasks:
        path = folder / f"trained-{task}.pt"
        if not path.is_file():
            continue
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = ECMRNet.from_state_dict(state["model"])
        seed = mix_seed(args.seed, ord(task[0]))
        pool = study.pool_frames(task, args, seed)
        val = study.validation_frames(task, args, seed)

        def score(keep, compensate=False, model=model, task=task, val=val, pool=pool):
            m = copy.deepcopy(model)
            prune(m, task, keep)
            if compensate:
                compensate_exits(m, task, model, pool)
            return study.evaluate(m, task, val)["psnr"]

        full = study.evaluate(model, task, val)["psnr"]
        gates = None
        for budget in budgets:
            sel = {
                c: select_groups(model, task, pool, criterion=c, budget=budget, seed=0)
                for c in ("contribution", "published")
            }
            ref = sel["contribution"]
            counts = dict(zip(STAGE_NAMES, ref.kept_counts, strict=True))
            if gates is None:
                data = study.training_frames(task, args, mix_seed(seed, 1))
                pairs = [study.batch_of(data, range(i, i + args.batch)) for i in range(0, 192, 8)]
                gates = gate_scores(
                    copy.deepcopy(model), task, pairs, penalty=1e-3, lr=1e-2, epochs=args.srp_epochs
                )
            rng = np.random.default_rng(0)
            randoms = [
                score(
                    {
                        s: np.isin(
                            np.arange(len(ref.keep[s])), rng.choice(len(ref.keep[s]), k, False)
                        )
                        for s, k in counts.items()
                    }
                )
                for _ in range(5)
            ]
            keeps = {
                "SEP budget (contribution)": ref.keep,
                "SEP budget (published)": top_groups_like(sel["published"], counts),
                "energy only": top_groups(ref.contribution, counts),
                "MP": top_groups(magnitude_scores(model.branches[task], model.config), counts),
                "SRP": top_groups(gates, counts),
            }
            row = {"counts": ref.kept_counts, "unpruned": full}
            for name, keep in keeps.items():
                row[name] = score(keep)
                row[name + " +comp"] = score(keep, compensate=True)
            row["random x5"] = float(np.mean(randoms))
            row["random sd"] = float(np.std(randoms))
            rows[(task, budget)] = row
            print(
                task,
                budget,
                {
                    k: v if isinstance(v, tuple) else round(v, 2)
                    for k, v in rows[(task, budget)].items()
                },
                flush=True,
            )
    return rows


def top_groups_like(selection, counts):
    """The published-criterion budget selection, at the contribution one's counts."""
    score = {
        s: selection.frequency[s]
        + 1e-9 * selection.contribution[s] / max(selection.contribution[s].max(), 1e-300)
        for s in STAGE_NAMES
    }
    return top_groups(score, counts)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cells", nargs="+", type=Path)
    parser.add_argument("--budgets", default="0.3")
    parser.add_argument("--tasks", default="C,B,N")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    numba.config.THREADING_LAYER = "workqueue"
    budgets = [float(b) for b in args.budgets.split(",")]
    for cell in args.cells:
        print(f"## {cell.name}", flush=True)
        cell_rows(cell, budgets, args.tasks.split(","))


if __name__ == "__main__":
    main()
