"""One cell of the pruning curves: trained branches, then PSNR/SSIM against size for every
allocation x selection x exits, and the equal-steps fine-tuning at one size.

A cell is one model preset, recipe, training length and seed (the SEP study's protocol,
``benchmarks/sep_table7.py``: its data, pretraining and branch training). For each task:

1. the groups' scores: SE's representation frequencies (the published rule, and the
   contribution criterion), MP's weight norms, SRP as the paper describes it (Network
   Slimming: gates trained with the weights, :func:`slim_branch`, its penalty chosen on
   validation frames), SRP's gates-only variant, the exit energy;
2. the sizes: shares of the path's parameters removed (:data:`SIZES`) and the published
   SEP's own cuts at ``rho`` in :data:`RHOS`;
3. at each size, the counts of every allocation (``allocations.py``), then every
   selection inside them (random groups: ``--random-seeds`` draws), each scored with the
   exits as pruned and, at the preset's :data:`REFIT_SIZES`, refitted
   (:func:`compensate_exits`);
4. at :data:`FINETUNE_SIZE`, the rows of :data:`FINETUNED` fine-tuned for exactly
   ``--finetune-steps`` steps, and the unpruned branch trained on for as many steps at
   the same learning rate ("unpruned, trained on").

Every finished row is saved in ``--out`` (atomically; rerun the same command to resume)
and, with ``--results``, the cell's results file is copied there after each task.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.sep_curves.run --model tiny \\
        --steps 8000 --recipe code --seed 0 --out runs/sep-curves/tiny-code-8000-s0 \\
        --results docs/results/sep-curves
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from pathlib import Path

import numba
import numpy as np
import torch

from benchmarks import sep_table7 as study_cell
from benchmarks.sep_curves.allocations import (
    ALLOCATIONS,
    allocate,
    counts_at_rho,
    removed_parameters,
)
from sepkit_torch import psnr, ssim
from sepkit_torch._files import atomic_write_text
from sepkit_torch.continual.pruning import (
    gate_scores,
    group_parameters,
    magnitude_scores,
    select_groups,
    top_groups,
)
from sepkit_torch.continual.pruning.slimming import slim_branch
from sepkit_torch.data.sampling import mix_seed
from sepkit_torch.models.backbone import STAGE_NAMES

log = logging.getLogger("sep_curves")

#: Shares of the path's parameters removed.
SIZES = (0.25, 0.40, 0.55)
#: The published SEP's own cuts: its counts at these thresholds.
RHOS = (0.05, 0.1, 0.15, 0.2)
#: Per preset, the sizes whose rows are also scored with refitted exits (a refit costs
#: seven forward passes over its frames, so the published points are scored as pruned
#: only, and the paper architecture, about 5x slower a row, refits at one size).
REFIT_SIZES = {"tiny": SIZES, "paper": (0.40,), "smoke": SIZES}
#: The size whose rows are fine-tuned.
FINETUNE_SIZE = 0.40
#: Selections inside a stage (``random``: draws, mean and spread).
SELECTIONS = ("SE", "SE (contribution)", "MP", "SRP", "SRP (gates only)", "exit energy", "random")
#: The fine-tuned rows at FINETUNE_SIZE, all with refitted exits: the paper's SEP, the
#: common baseline, the study's winner and its MP twin, Network Slimming as published
#: (global ranking) and in the budget.
FINETUNED = (
    ("SE", "SE"),
    ("uniform", "MP"),
    ("budget", "SE (contribution)"),
    ("budget", "MP"),
    ("global", "SRP"),
    ("budget", "SRP"),
)
#: Pool frames the exits are refitted on: the first of SEP's pool (a refit's forward
#: passes dominate the study's time; the SEP study refitted on the whole pool).
REFIT_FRAMES = {"tiny": 32, "paper": 24, "smoke": 2}
#: Network Slimming penalties tried on validation frames.
SLIMMING_PENALTIES = (1e-4, 1e-3, 1e-2)
#: Fine-tuning and slimming steps per preset (the study's tiny branches train 8,000
#: steps, the paper's 1,200: about 6% and 20%).
DEFAULT_STEPS = {"tiny": 480, "paper": 240, "smoke": 4}


def size_label(size) -> str:
    return f"rho {size[1]:g}" if isinstance(size, tuple) else f"{round(100 * size)}%"


def row_name(size, allocation: str, selection: str, refit: bool, tuned: bool = False) -> str:
    name = f"{size_label(size)} | {allocation} | {selection}"
    return name + " | refit" * refit + " | fine-tuned" * tuned


def run_task(study, pretrained, task: str, args) -> None:
    seed = mix_seed(args.seed, ord(task[0]))
    model, reported = study_cell.trained_branch(study, pretrained, task, args)
    test = study_cell.held_out_test(task, args)
    val = study_cell.validation_frames(task, args, seed)
    pool = study_cell.pool_frames(task, args, seed)
    refit_pool = pool[: args.refit_frames]
    evaluate = study_cell.evaluate
    study.row(
        task,
        "degraded input",
        lambda: {"psnr": float(psnr(*test).mean()), "ssim": float(ssim(*test).mean())},
    )
    study.row(
        task, "unpruned", lambda: {**evaluate(reported, task, test), **study_cell.size(model, task)}
    )
    if reported is not model:
        study.row(task, "unpruned, raw weights", lambda: evaluate(model, task, test))
    scores = study.row(task, "scores", lambda: group_scores(model, task, pool, args, seed))
    slimmed = study.model(
        f"slimmed-{task}", lambda: slimmed_branch(study, model, task, args, seed, val)
    )
    slim = study.results["tasks"][task]["slimming"]
    study.row(task, "slimmed, unpruned", lambda: evaluate(slimmed, task, test))
    as_arrays = {
        k: {s: np.asarray(v[s]) for s in STAGE_NAMES} for k, v in scores.items() if k != "seconds"
    }
    as_arrays["SRP"] = {s: np.asarray(slim["gates"][s]) for s in STAGE_NAMES}
    parameters = group_parameters(model.branches[task])
    # the budget ranks a stage's groups by (contribution frequency, contribution), the
    # order "SE (contribution)" holds as ranks: as fractions, the same order
    leaving_order = {s: r / max(len(r) - 1, 1) for s, r in as_arrays["SE (contribution)"].items()}
    total = study_cell.size(model, task)["activated_params"]
    sizes = [*SIZES, *(("rho", r) for r in RHOS)]
    for size_ in sizes:
        if isinstance(size_, tuple):
            counts = counts_at_rho(as_arrays["SE"], size_[1])
            target = removed_parameters(stage_groups(model, task), parameters, counts)
        else:
            target = size_ * total
        for allocation in ALLOCATIONS:
            counts = study.row(
                task,
                f"{size_label(size_)} | {allocation}",
                lambda allocation=allocation, target=target: {
                    "target": target,
                    "counts": allocate(
                        allocation,
                        target,
                        parameters,
                        frequency=as_arrays["SE"],
                        contribution=as_arrays["exit energy"],
                        gates=as_arrays["SRP"],
                        budget_frequency=leaving_order,
                    ),
                },
            )["counts"]
            for selection in SELECTIONS:
                source = slimmed if selection == "SRP" else model
                for refit in (False, True) if size_ in REFIT_SIZES[args.model] else (False,):
                    study.row(
                        task,
                        row_name(size_, allocation, selection, refit),
                        lambda selection=selection, source=source, refit=refit, counts=counts: (
                            scored_selection(
                                source,
                                task,
                                selection,
                                as_arrays,
                                counts,
                                test,
                                refit_pool,
                                refit,
                                args,
                            )
                        ),
                    )
    finetune_rows(study, model, slimmed, task, as_arrays, test, refit_pool, args, seed)


def stage_groups(model, task) -> dict[str, int]:
    """Groups per stage of `task`'s branch, as trained (before any pruning)."""
    return {s: getattr(model.branches[task], s).groups for s in STAGE_NAMES}


def group_scores(model, task, pool, args, seed) -> dict:
    """Every selection's per-group scores but SRP's (larger: keep first)."""
    published = select_groups(model, task, pool, tie="published")
    contribution = select_groups(model, task, pool, criterion="contribution", seed=args.seed)
    energy = contribution.contribution
    gates = gate_scores(
        copy.deepcopy(model),
        task,
        study_cell.gate_pairs(task, args, seed),
        penalty=1e-3,
        lr=1e-2,
        epochs=args.srp_epochs,
    )
    return {
        "SE": _lists(published.frequency),
        # frequency first, the larger contribution on equal frequencies
        "SE (contribution)": _lists(
            {s: _lexicographic(contribution.frequency[s], energy[s]) for s in STAGE_NAMES}
        ),
        "MP": _lists(magnitude_scores(model.branches[task], model.config)),
        "SRP (gates only)": _lists(gates),
        "exit energy": _lists(energy),
    }


def slimmed_branch(study, model, task, args, seed, val):
    """Network Slimming of the trained branch, its penalty the best on validation frames
    (PSNR at FINETUNE_SIZE, global allocation, exits as pruned)."""
    data = study_cell.training_frames(task, args, mix_seed(seed, 4))
    parameters = group_parameters(model.branches[task])
    target = FINETUNE_SIZE * study_cell.size(model, task)["activated_params"]
    tried = {}
    for penalty in SLIMMING_PENALTIES:
        candidate = copy.deepcopy(model)
        torch.manual_seed(mix_seed(seed, 5))
        gates = slim_branch(
            candidate,
            task,
            study_cell.loader(data, args, mix_seed(seed, 5)),
            set_epoch=data.set_epoch,
            penalty=penalty,
            lr=args.finetune_lr,
            steps=args.finetune_steps,
            recipe=args.recipe,
        )
        counts = allocate(
            "global",
            target,
            parameters,
            frequency=gates,
            contribution=gates,
            gates=gates,
            budget_frequency=gates,
        )
        keep = top_groups(gates, counts)
        score = study_cell.evaluate(study_cell.pruned(candidate, task, keep), task, val)
        tried[penalty] = (score["psnr"], gates, candidate)
        log.info("%s: slimming penalty %g, validation PSNR %.3f", task, penalty, score["psnr"])
    best = max(tried, key=lambda p: tried[p][0])
    study.results["tasks"][task]["slimming"] = {
        "penalty": best,
        "steps": args.finetune_steps,
        "validation_psnr": {str(p): round(v[0], 4) for p, v in tried.items()},
        "gates": _lists(tried[best][1]),
    }
    study.save()
    return tried[best][2]


def scored_selection(model, task, selection, scores, counts, test, pool, refit, args) -> dict:
    if selection != "random":
        keep = top_groups(scores[selection], counts)
        return {
            **study_cell.scored(model, task, keep, test, pool if refit else None),
            "keep": {s: np.flatnonzero(keep[s]).tolist() for s in STAGE_NAMES},
        }
    runs = []
    groups = stage_groups(model, task)
    for k in range(args.random_seeds):
        rng = np.random.default_rng([args.seed, k])
        keep = {
            s: np.isin(np.arange(groups[s]), rng.choice(groups[s], counts[s], replace=False))
            for s in STAGE_NAMES
        }
        runs.append(study_cell.scored(model, task, keep, test, pool if refit else None))
    out = {k: float(np.mean([r[k] for r in runs])) for k in ("psnr", "ssim")}
    return {
        **runs[0],
        **out,
        "psnr_sd": float(np.std([r["psnr"] for r in runs])),
        "runs": [r["psnr"] for r in runs],
    }


def finetune_rows(study, model, slimmed, task, scores, test, pool, args, seed) -> None:
    """FINETUNED at FINETUNE_SIZE (exits refitted), and the unpruned branch trained on, all
    for exactly ``args.finetune_steps`` steps of the cell's recipe at ``finetune_lr``
    (no early stopping; the last raw weights are scored)."""
    data = study_cell.training_frames(task, args, mix_seed(seed, 2))

    def tuned(m) -> dict:
        torch.manual_seed(mix_seed(seed, 3))
        result = study_cell.fit(
            m, task, data, args.finetune_steps, args.finetune_lr, args, mix_seed(seed, 3), epochs=20
        )
        return {
            **study_cell.evaluate(m, task, test),
            **study_cell.size(m, task),
            "steps": result.steps,
        }

    study.row(task, "unpruned, trained on", lambda: tuned(copy.deepcopy(model)))
    rows = study.results["tasks"][task]
    for allocation, selection in FINETUNED:
        source = slimmed if selection == "SRP" else model
        counts = rows[f"{size_label(FINETUNE_SIZE)} | {allocation}"]["counts"]
        keep = top_groups(scores[selection], counts)
        study.row(
            task,
            row_name(FINETUNE_SIZE, allocation, selection, refit=True, tuned=True),
            lambda source=source, keep=keep: tuned(study_cell.pruned(source, task, keep, pool)),
        )


def _lists(scores) -> dict[str, list[float]]:
    return {s: np.asarray(scores[s], dtype=np.float64).tolist() for s in STAGE_NAMES}


def _lexicographic(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Scores whose order is `primary`'s, `secondary` deciding equal values (ranks 0..G-1)."""
    order = np.lexsort((np.asarray(secondary), np.asarray(primary)))
    ranks = np.empty(len(order))
    ranks[order] = np.arange(len(order))
    return ranks


DEFAULT_TASKS = "C,B,N"


def run_cell(args) -> study_cell.Study:
    for key, value in study_cell.STUDIES[args.model].items():
        if key != "steps":
            setattr(args, key, value)
    args.steps = args.steps or study_cell.STUDIES[args.model]["steps"]
    args.finetune_steps = args.finetune_steps or DEFAULT_STEPS[args.model]
    args.refit_frames = REFIT_FRAMES[args.model]
    args.tasks = [t for t in args.tasks.split(",") if t]
    skip = ("out", "threads", "results", "pretrained")
    config = {k: v for k, v in vars(args).items() if k not in skip}
    config["frame"] = list(config["frame"])
    config["study"] = "sep-curves"
    study = study_cell.Study(Path(args.out), config)
    shared = Path(args.pretrained) if args.pretrained else None
    pretrained = study_cell.pretrained_backbone(study, args, config, shared)
    for task in args.tasks:
        start = time.perf_counter()
        run_task(study, pretrained, task, args)
        log.info("%s: done in %.0f s", task, time.perf_counter() - start)
        if args.results:  # each finished task's rows, to commit
            results = Path(args.results)
            results.mkdir(parents=True, exist_ok=True)
            text = json.dumps(study.results, indent=1) + "\n"
            atomic_write_text(results / f"{cell_name(args)}.json", text)
    return study


def cell_name(args) -> str:
    """The results file's name; a run of some tasks only (tasks of one seed may run in
    parallel processes sharing ``--pretrained``) names them, so runs do not overwrite
    each other and the report reads each file as that seed's rows for its tasks."""
    name = f"{args.model}-{args.recipe}-{args.steps}-s{args.seed}"
    if list(args.tasks) != DEFAULT_TASKS.split(","):
        name += "-" + "".join(args.tasks)
    return name


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(study_cell.STUDIES), default="tiny")
    parser.add_argument("--out", required=True, help="the cell's folder (resumable)")
    parser.add_argument("--tasks", default=DEFAULT_TASKS)
    parser.add_argument("--steps", type=int, default=None, help="training steps per task")
    parser.add_argument("--recipe", choices=sorted(study_cell.RECIPES), default="code")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-seed", type=int, default=0, help="seed of the test frames")
    parser.add_argument("--random-seeds", type=int, default=5)
    parser.add_argument(
        "--finetune-steps",
        type=int,
        default=None,
        help=f"fine-tuning and slimming steps (default per preset: {DEFAULT_STEPS})",
    )
    parser.add_argument("--pretrained", metavar="PT", help="a shared pretrained backbone")
    parser.add_argument(
        "--results", metavar="DIR", help="copy the cell's results here after each task"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    numba.config.THREADING_LAYER = "workqueue"  # see benchmarks/sep_table7.py
    run_cell(args)


if __name__ == "__main__":
    main()
