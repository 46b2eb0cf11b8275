"""The paper's Table 7 on its own architecture: SEP against MP, SRP and random groups.

ECMRNet's `paper` preset (4,067,937 parameters per path; 8-32 groups per stage;
[2, 4, 8, 8, 4, 2] blocks) on procedural thermal scenes, with the public code's data
protocol scaled to a CPU: frames degraded whole, then cut into every window of a sliding
window (128 x 160 frames, 64-px windows at stride 32: 12 per frame, the paper's 512 x
640 / 256 / 128 geometry at a quarter of the size). The backbone is pretrained clean to
clean; then one branch per task (C, B, N) trains on it. From copies of each trained
branch, without fine-tuning:

- SEP (:func:`~sepkit_torch.continual.pruning.select_groups`) as published (the greedy
  sweep, random ties), with each other tie rule, with the CoDeSEG game and with
  sepkit's multilevel partition, on a pool of whole degraded training frames;
- MP (group L1 weight norm), SRP (L1-penalised group gates) and random groups (5 seeds),
  keeping the published SEP's number of groups per stage;

then the SEP-, MP- and SRP-pruned branches are fine-tuned. ``--model tiny`` runs the same
study on the tiny preset (the demo's network). Every finished step is saved in ``--out``
(trained branches, results.json): rerun the same command to resume. ``results.md`` holds
the tables.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.sep_table7 --out runs/table7-paper
    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.sep_table7 --model tiny --out runs/table7-tiny
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
from filelock import FileLock, Timeout
from torch.utils.data import DataLoader

from benchmarks.sep_study_tables import (
    COMPENSATED,
    REFERENCES,
    SEP_VARIANTS,
    TUNED_SUFFIXES,
    VALIDATED,
    compensated_name,
    render,
    render_summary,
)
from sepkit_torch import ECMRNet, complexity, psnr, ssim, training
from sepkit_torch._files import atomic_write_text
from sepkit_torch.checkpoint import load_checkpoint
from sepkit_torch.complexity import COUNT_SHAPE
from sepkit_torch.continual.pruning import (
    DEFAULT_RHO,
    compensate_exits,
    gate_scores,
    group_graphs,
    magnitude_scores,
    prune,
    select_groups,
    top_groups,
)
from sepkit_torch.data import SyntheticThermalDataset
from sepkit_torch.data.sampling import mix_seed
from sepkit_torch.distributed import ShardedBatchSampler
from sepkit_torch.models.backbone import STAGE_NAMES
from sepkit_torch.pipeline.state import save_checkpoint
from sepkit_torch.training import RECIPES

log = logging.getLogger("sep_table7")

#: The training stream's epoch that validation frames come from (training stays far below).
VALIDATION_EPOCH = 10**6
#: Fine-tuning after pruning: this share of the task's training steps (the paper: 20 of
#: 100 epochs), at the study's fine-tuning learning rate.
FINETUNE_SHARE = 0.2
#: Trainings of this many steps or more show a progress bar (the paper preset's take hours).
PROGRESS_FROM = 200


#: The two studies: budgets chosen so that the paper preset takes about two hours of one
#: CPU thread, the tiny one minutes.
STUDIES = {
    "paper": dict(
        frame=(128, 160),
        crop=64,
        stride=32,
        batch=8,
        frames=100,  # per epoch: 1,200 windows
        pretrain_steps=600,
        steps=1200,
        lr=5e-4,
        pool=64,
        test=24,
        val=12,
        srp_batches=24,
        srp_epochs=3,
        finetune_lr=2e-4,
    ),
    "tiny": dict(
        frame=(96, 120),
        crop=48,
        stride=24,
        batch=8,
        frames=100,
        pretrain_steps=300,
        steps=500,
        lr=1e-3,
        pool=96,
        test=48,
        val=24,
        srp_batches=24,
        srp_epochs=3,
        finetune_lr=5e-4,
    ),
    # seconds, for the test suite
    "smoke": dict(
        frame=(32, 40),
        crop=16,
        stride=8,
        batch=4,
        frames=2,
        pretrain_steps=2,
        steps=10,
        lr=1e-3,
        pool=3,
        test=2,
        val=2,
        srp_batches=2,
        srp_epochs=1,
        finetune_lr=5e-4,
    ),
}


# ----------------------------------------------------------------------------- state


class Study:
    """The study's folder: trained models and results.json, every write atomic."""

    def __init__(self, out: Path, config: dict):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        # one process per folder: two would overwrite each other's models and results
        self._lock = FileLock(out / ".study.lock")
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise SystemExit(
                f"error: another process is running the study in {out}; use another --out"
            ) from None
        path = out / "results.json"
        self.results = json.loads(path.read_text()) if path.is_file() else {"config": config}
        if self.results["config"] != config:
            raise SystemExit(
                f"error: {out} holds a study with other settings ({self.results['config']}); "
                "use another --out"
            )

    def save(self) -> None:
        atomic_write_text(self.out / "results.json", json.dumps(self.results, indent=1) + "\n")

    def model(self, name: str, make):
        """The model saved as `name`, or `make()` (then saved)."""
        path = self.out / f"{name}.pt"
        if path.is_file():
            state = torch.load(path, map_location="cpu", weights_only=True)
            return ECMRNet.from_state_dict(state["model"])
        model = make()
        save_checkpoint(path, {"model": model.state_dict()})
        return model

    def row(self, task: str, name: str, make) -> dict:
        """The result `name` of `task`, or `make()` (then saved)."""
        rows = self.results.setdefault("tasks", {}).setdefault(task, {})
        if name not in rows:
            start = time.perf_counter()
            rows[name] = make()
            rows[name]["seconds"] = round(time.perf_counter() - start, 1)
            self.save()
            log.info(
                "%s / %s: %s", task, name, {k: rows[name][k] for k in ("psnr",) if k in rows[name]}
            )
        return rows[name]


# ----------------------------------------------------------------------------- pieces


def training_frames(task: str | None, args, seed: int, length=None) -> SyntheticThermalDataset:
    """The training stream: frame ``f`` of epoch ``e`` does not depend on `length`."""
    return SyntheticThermalDataset(
        task or "C",
        length=length or args.frames,
        size=args.crop,
        frame_size=args.frame,
        stride=args.stride,
        seed=seed,
    )


def pool_frames(task: str, args, seed: int) -> torch.Tensor:
    """SEP's pool: whole degraded training frames, as the paper's N full-size images."""
    frames = training_frames(task, args, seed, length=args.pool)
    return torch.stack([frames.frame(f)[0] for f in range(args.pool)])


def batch_of(data, index) -> tuple[torch.Tensor, torch.Tensor]:
    items = [data[i] for i in index]
    return torch.stack([d for d, _ in items]), torch.stack([c for _, c in items])


def loader(data, args, seed: int) -> DataLoader:
    """`data`'s windows in batches of ``args.batch``, shuffled frame by frame by `seed`."""
    g = torch.Generator().manual_seed(seed)
    order = ShardedBatchSampler(len(data), args.batch, generator=g, frame_items=data.frame_items)
    return DataLoader(data, batch_sampler=order)


def fit(
    model,
    task: str | None,
    data,
    steps: int,
    lr: float,
    args,
    seed: int,
    on_step=None,
    val=None,
    epochs: int = 100,
    saved: Path | None = None,
):
    """`steps` steps of the study's recipe over the frame-grouped shuffled windows;
    ``on_step(step)`` after each. The recipe's epoch is ``steps / epochs`` steps (the
    public code trains 100 epochs per task and fine-tunes 20): its warm-up and, with
    `val` (degraded, clean) frames, its validation (the public code's score) and early
    stopping. With `saved`, the training's state is written there after every pass over
    the data and a training stopped part-way goes on from it (to the same weights)."""
    epoch = max(1, steps // epochs)
    batches = loader(data, args, seed)
    g = batches.batch_sampler.generator
    resume = on_epoch = None
    if saved is not None:
        if saved.is_file():
            state = load_checkpoint(saved)
            g.set_state(state["sampler"])
            torch.set_rng_state(state["torch_rng"])  # the data loader draws its seeds there
            resume = state["fit"]
            log.info("%s: resuming at step %d of %d", saved.name, resume["step"], steps)

        def on_epoch(state):
            payload = {"fit": state, "sampler": g.get_state(), "torch_rng": torch.get_rng_state()}
            save_checkpoint(saved, payload)

    validate = None
    if val is not None:

        def validate():
            score = validation_score(model, task, val)
            model.train()
            return score

    return training.fit(
        model,
        batches,
        lr=lr,
        steps=steps,
        task=task,
        clean_to_clean=task is None,
        recipe=args.recipe,
        set_epoch=data.set_epoch,
        validate=validate,
        validate_every=epoch,
        warmup_steps=epoch * RECIPES[args.recipe].warmup_epochs,
        on_step=None if on_step is None else lambda step, loss: on_step(step),
        progress=steps >= PROGRESS_FROM,
        desc=f"{task or 'pretrain'}: {args.recipe} recipe",
        on_epoch=on_epoch,
        resume=resume,
    )


@torch.no_grad()
def evaluate(model, task, test) -> dict:
    degraded, clean = test
    model.eval()
    out = torch.cat([model(x, task=task) for x in degraded.split(4)]).clamp(0, 1)
    return {"psnr": float(psnr(out, clean).mean()), "ssim": float(ssim(out, clean).mean())}


def size(model, task) -> dict:
    c = complexity(model, COUNT_SHAPE, task=task)
    return {"activated_params": c.activated_params, "macs": c.macs, "total_params": c.total_params}


def pruned(model, task, keep, pool=None):
    """A pruned copy; with a `pool`, its exit convolutions refitted on it."""
    m = copy.deepcopy(model)
    prune(m, task, keep)
    if pool is not None:
        compensate_exits(m, task, model, pool)
    return m


def counts_of(keep) -> dict[str, int]:
    """Groups kept per stage, from bool masks or index arrays."""
    out = {}
    for s in STAGE_NAMES:
        k = np.asarray(keep[s])
        out[s] = int(k.sum()) if k.dtype == bool else int(k.size)
    return out


def scored(model, task, keep, test, pool=None) -> dict:
    m = pruned(model, task, keep, pool)
    return {"kept": list(counts_of(keep).values()), **evaluate(m, task, test), **size(m, task)}


# ----------------------------------------------------------------------------- the study


def trained_branch(study: Study, pretrained: ECMRNet, task: str, args):
    """`task`'s branch trained on `pretrained` (saved in the study, resumable part-way):
    ``(raw, reported)``, the raw weights (what pruning reads) and those the recipe
    reports (its weight average, or the raw weights)."""
    seed = mix_seed(args.seed, ord(task[0]))
    val = validation_frames(task, args, seed)
    averaged = RECIPES[args.recipe].ema_decay is not None

    def train_branch():
        torch.manual_seed(seed)
        model = copy.deepcopy(pretrained)
        model.add_task(task)
        data = training_frames(task, args, seed)
        start = time.perf_counter()
        result = fit(
            model,
            task,
            data,
            args.steps,
            args.lr,
            args,
            seed,
            val=val if averaged else None,
            saved=in_progress,
        )
        log.info(
            "%s: %d steps in %.0f s, last loss %.4f",
            task,
            result.steps,
            time.perf_counter() - start,
            result.loss,
        )
        if averaged:  # the reporting weights; pruning reads the raw ones
            raw = copy.deepcopy(model)
            result.use_averaged()
            save_checkpoint(study.out / f"trained-{task}-avg.pt", {"model": model.state_dict()})
            model = raw
        study.results.setdefault("training", {})[task] = {
            "steps": result.steps,
            "best_step": result.best_step,
            "stopped_early": result.stopped_early,
        }
        study.save()
        return model

    in_progress = study.out / f"training-{task}.pt"  # the branch's training, part-way
    model = study.model(f"trained-{task}", train_branch)
    in_progress.unlink(missing_ok=True)
    reported = study.model(f"trained-{task}-avg", lambda: None) if averaged else model
    return model, reported


def held_out_test(task: str, args) -> tuple[torch.Tensor, torch.Tensor]:
    """The study's test frames of `task`: (degraded, clean)."""
    data = SyntheticThermalDataset(
        task, length=args.test, size=args.frame, split="test", seed=args.test_seed
    )
    items = [data[i] for i in range(len(data))]
    return torch.stack([d for d, _ in items]), torch.stack([c for _, c in items])


def run_task(study: Study, pretrained: ECMRNet, task: str, args) -> None:
    seed = mix_seed(args.seed, ord(task[0]))
    averaged = RECIPES[args.recipe].ema_decay is not None
    model, reported = trained_branch(study, pretrained, task, args)
    test = held_out_test(task, args)
    pool = pool_frames(task, args, seed)
    if args.record_graphs:
        record_graphs(Path(args.record_graphs), model, task, pool[: args.record_frames])

    study.row(
        task,
        "degraded input",
        lambda: {"psnr": float(psnr(*test).mean()), "ssim": float(ssim(*test).mean())},
    )
    study.row(
        task,
        "unpruned",
        lambda: {
            "kept": list(model.config.groups),
            **evaluate(reported, task, test),
            **size(model, task),
        },
    )
    if averaged:
        study.row(task, "unpruned, raw weights", lambda: evaluate(model, task, test))
    selections = {}
    rows = study.results.setdefault("tasks", {}).setdefault(task, {})
    for name in COMPENSATED:  # rows made before they recorded the contributions
        if name in rows and "contribution" not in rows[name]:
            del rows[name]
    for name, options in SEP_VARIANTS.items():

        def select(options=options):
            rho = DEFAULT_RHO if options.get("budget") is not None else args.rho  # unused then
            sel = select_groups(model, task, pool, rho=rho, seed=args.seed, **options)
            row = {
                **scored(model, task, sel.keep, test),
                "keep": {s: np.flatnonzero(sel.keep[s]).tolist() for s in STAGE_NAMES},
                "frequency": {s: sel.frequency[s].round(4).tolist() for s in STAGE_NAMES},
            }
            if sel.contribution is not None:
                row["contribution"] = {s: sel.contribution[s].tolist() for s in STAGE_NAMES}
            return row

        selections[name] = study.row(task, name, select)
    gates: dict = {}

    def srp_scores():
        if not gates:  # learned once per task, used at every count
            gates.update(
                gate_scores(
                    copy.deepcopy(model),
                    task,
                    gate_pairs(task, args, seed),
                    penalty=1e-3,
                    lr=1e-2,
                    epochs=args.srp_epochs,
                )
            )
        return gates

    for reference, suffix in REFERENCES.items():
        counts = dict(zip(STAGE_NAMES, selections[reference]["kept"], strict=True))
        baselines = {
            "MP": lambda counts=counts: top_groups(
                magnitude_scores(model.branches[task], model.config), counts
            ),
            "SRP": lambda counts=counts: top_groups(srp_scores(), counts),
        }
        if reference in COMPENSATED:  # the ablation: the exit energy alone, no entropy
            energy = selections[reference]["contribution"]
            baselines["exit energy"] = lambda counts=counts, energy=energy: top_groups(
                {s: np.asarray(energy[s]) for s in STAGE_NAMES}, counts
            )
        for name, make_keep in baselines.items():

            def baseline(make_keep=make_keep):
                keep = make_keep()
                return {
                    **scored(model, task, keep, test),
                    "keep": {s: np.flatnonzero(keep[s]).tolist() for s in STAGE_NAMES},
                }

            study.row(task, name + suffix, baseline)

        def random_groups(counts=counts):
            runs = []
            for k in range(args.random_seeds):
                rng = np.random.default_rng([args.seed, k])
                keep = {
                    s: np.isin(np.arange(g), rng.choice(g, counts[s], replace=False))
                    for s, g in zip(STAGE_NAMES, model.config.groups, strict=True)
                }
                runs.append(scored(model, task, keep, test))
            out = {k: float(np.mean([r[k] for r in runs])) for k in ("psnr", "ssim")}
            return {
                **runs[0],
                **out,
                "psnr_sd": float(np.std([r["psnr"] for r in runs])),
                "runs": [r["psnr"] for r in runs],
            }

        study.row(task, f"random x{args.random_seeds}{suffix}", random_groups)

    for reference in COMPENSATED:
        suffix = REFERENCES[reference]
        rows = study.results["tasks"][task]
        for name in (reference, "MP" + suffix, "SRP" + suffix):
            source = rows[name]

            def compensated(source=source):
                keep = {s: np.asarray(source["keep"][s]) for s in STAGE_NAMES}
                return {
                    **scored(model, task, keep, test, pool),
                    "keep": source["keep"],
                    "compensated": True,
                }

            study.row(task, compensated_name(name), compensated)


def gate_pairs(task: str, args, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (degraded, clean) batches the SRP gates learn on: ``args.srp_batches`` of a
    training stream of their own."""
    data = training_frames(task, args, mix_seed(seed, 1))
    g = torch.Generator().manual_seed(seed)
    order = ShardedBatchSampler(len(data), args.batch, generator=g, frame_items=data.frame_items)
    pairs = []
    for index in order:
        pairs.append(batch_of(data, index))
        if len(pairs) == args.srp_batches:
            break
    return pairs


@torch.no_grad()
def record_graphs(path: Path, model, task: str, pool) -> None:
    """Add `task`'s inter-group graphs of the `pool` images (``(N, G, G)`` per stage,
    float32) to the ``.npz`` file at `path`: test data for the partitioners."""
    branch = model.branches[task]
    features: dict[str, torch.Tensor] = {}
    hooks = [
        getattr(branch, s).blocks.register_forward_hook(
            lambda mod, args, out, s=s: features.__setitem__(s, out)
        )
        for s in STAGE_NAMES
    ]
    model.eval()
    model(pool, task=task)
    for h in hooks:
        h.remove()
    old = dict(np.load(path)) if path.is_file() else {}
    for s in STAGE_NAMES:
        graphs = group_graphs(features[s], getattr(branch, s).groups)
        old[f"{task}_{s}"] = graphs.numpy().astype(np.float32)
    np.savez_compressed(path, **old)
    log.info("%s: graphs of %d images recorded in %s", task, len(pool), path)


def finetune_task(study: Study, task: str, name: str, args) -> None:
    """Fine-tune `name`'s pruned branch of `task`: the row ``"<name> fine-tuned"`` (the
    last weights, or the code recipe's best average) and ``"<name> fine-tuned,
    validated"`` (of the starting weights and those at the curve's marks, or the best
    average, the one best on validation frames: a fine-tuning that keeps its start unless
    validation improves). Fine-tuning is deterministic, so a cell that has the first row
    only gets the second by running it again."""
    tuned, validated = f"{name} fine-tuned", f"{name}{VALIDATED}"
    rows = study.results["tasks"][task]
    if tuned in rows and validated in rows:
        return
    outcome = _finetune(study, task, name, args)
    study.row(task, tuned, lambda: outcome["last"])
    study.row(task, validated, lambda: outcome["validated"])


def _finetune(study: Study, task: str, name: str, args) -> dict:
    seed = mix_seed(args.seed, ord(task[0]))
    averaged = RECIPES[args.recipe].ema_decay is not None
    start = time.perf_counter()
    model = study.model(f"trained-{task}", lambda: None)
    rows = study.results["tasks"][task]
    keep = {s: np.asarray(rows[name]["keep"][s]) for s in STAGE_NAMES}
    pool = None
    if rows[name].get("compensated"):
        pool = pool_frames(task, args, seed)
    m = pruned(model, task, keep, pool)
    test = held_out_test(task, args)
    val = validation_frames(task, args, seed)
    torch.manual_seed(seed)
    curve = {0: evaluate(m, task, test)}
    # the candidates of the validated row: the start, then the weights at each mark
    best = {"score": validation_score(m, task, val), "step": 0, "model": copy.deepcopy(m)}

    def consider(step: int) -> None:
        score = validation_score(m, task, val)
        m.train()
        if score < best["score"]:
            best.update(score=score, step=step, model=copy.deepcopy(m))

    def on_step(step):
        if step in args.marks:
            curve[step] = evaluate(m, task, test)
            if not averaged:
                consider(step)

    data = training_frames(task, args, mix_seed(seed, 2))
    result = fit(
        m,
        task,
        data,
        args.finetune_steps,
        args.finetune_lr,
        args,
        mix_seed(seed, 3),
        on_step,
        val=val if averaged else None,
        epochs=20,
    )
    final = curve.get(result.steps) or evaluate(m, task, test)
    if averaged:  # the public code reports (and keeps) the best weight average
        result.use_averaged()
        final = evaluate(m, task, test)
        consider(result.best_step or result.steps)
    last = {"curve": {str(k): v for k, v in curve.items()}, "steps": result.steps, **final}
    chosen = {
        "step": best["step"],
        "validation_score": round(best["score"], 6),
        **evaluate(best["model"], task, test),
    }
    seconds = round(time.perf_counter() - start, 1)
    return {"last": {**last, "run_seconds": seconds}, "validated": chosen}


def validation_score(model, task, val) -> float:
    """The public training code's validation score (lower is better)."""
    score = evaluate(model, task, val)
    return (1 - score["ssim"]) + (50 - score["psnr"]) / 50


def validation_frames(task: str, args, seed: int):
    """Whole frames of the training stream from an epoch training never reaches: the
    recipe's validation and any tuning (never the test frames)."""
    frames = training_frames(task, args, seed, length=args.val)
    pairs = [frames.frame(f, epoch=VALIDATION_EPOCH) for f in range(args.val)]
    return torch.stack([d for d, _ in pairs]), torch.stack([c for _, c in pairs])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(STUDIES), default="paper")
    parser.add_argument("--out", required=True, help="the study's folder (resumable)")
    parser.add_argument("--tasks", default="C,B,N")
    parser.add_argument("--rho", type=float, default=0.1)
    parser.add_argument(
        "--steps", default=None, help="training steps per task, comma-separated (a grid)"
    )
    parser.add_argument(
        "--recipes", default="paper", help=f"training recipes, comma-separated ({sorted(RECIPES)})"
    )
    parser.add_argument("--seeds", default="0", help="training seeds, comma-separated")
    parser.add_argument("--test-seed", type=int, default=0, help="seed of the test frames")
    parser.add_argument("--random-seeds", type=int, default=5)
    parser.add_argument(
        "--finetune",
        default="SEP;SEP (published ties);MP;SRP;SEP (contribution);SEP (budget);"
        "SEP (budget), compensated",
        help="selections to fine-tune (row names separated by ';')",
    )
    parser.add_argument(
        "--results",
        metavar="DIR",
        help="copy each finished cell's results.json here (small files to keep) and skip "
        "the cells already complete there",
    )
    parser.add_argument(
        "--summary-only",
        action="store_true",
        help="only write the summary of the cells in --results",
    )
    parser.add_argument(
        "--pretrained",
        metavar="PT",
        help="the pretrained backbone to start from, trained and saved there when missing: "
        "the parts of a cell run task by task share it (one recipe and seed)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--record-graphs", metavar="NPZ", help="save each task's SEP graphs here (test data)"
    )
    parser.add_argument("--record-frames", type=int, default=16, help="pool images recorded")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    # numba's default OpenMP layer leaves its workers spinning after sepkit's parallel
    # kernels, which slows every later torch op on a busy CPU; workqueue parks them.
    numba.config.THREADING_LAYER = "workqueue"
    study_steps = STUDIES[args.model]["steps"]
    grid = [
        (int(steps), recipe, int(seed))
        for steps in (args.steps or str(study_steps)).split(",")
        for seed in args.seeds.split(",")
        for recipe in args.recipes.split(",")
    ]
    for _, recipe, _ in grid:
        if recipe not in RECIPES:
            parser.error(f"--recipes: {recipe!r} is not one of {sorted(RECIPES)}")
    if args.pretrained and len({(recipe, seed) for _, recipe, seed in grid}) > 1:
        parser.error("--pretrained: one file serves one recipe and seed; got a grid of several")
    out = Path(args.out)
    results = Path(args.results) if args.results else None
    if args.summary_only:
        if results is None:
            parser.error("--summary-only needs --results")
        grid = []
    for steps, recipe, seed in grid:
        name = cell_name({"model": args.model, "recipe": recipe, "steps": steps, "seed": seed})
        if results is not None and _complete(results / f"{name}.json", args):
            log.info("%s: complete in %s, skipped", name, results)
            continue
        cell = argparse.Namespace(**vars(args))
        cell.steps, cell.recipe, cell.seed = steps, recipe, seed
        folder = out if len(grid) == 1 else out / name
        shared = out / f"pretrained-{args.model}-{recipe}-s{seed}.pt" if len(grid) > 1 else None
        if args.pretrained:
            shared = Path(args.pretrained)
        study = run_cell(cell, folder, shared)
        if results is not None:
            results.mkdir(parents=True, exist_ok=True)
            path = results / f"{name}.json"
            kept = json.loads(path.read_text()) if path.is_file() else None
            atomic_write_text(path, json.dumps(merged_cell(kept, study.results), indent=1) + "\n")
            write_summary(results, args.model)
    if results is not None:
        write_summary(results, args.model)


def merged_cell(kept: dict | None, new: dict) -> dict:
    """`new` results of a cell with the tasks `kept` holds and `new` does not: a long
    cell runs task by task (``--tasks C``, then ``--tasks B``, in parallel folders) into
    one results file. Refuses results of other settings."""
    if kept is None:
        return new
    settings = [cell_settings(r["config"]) for r in (kept, new)]
    if settings[0] != settings[1]:
        raise SystemExit(
            f"error: the results file of cell {cell_name(new['config'])} holds other settings "
            f"({settings[0]}); got {settings[1]} (this run's rows stay in its --out)"
        )
    cell = copy.deepcopy(kept)
    cell["config"]["tasks"] = union(kept["config"]["tasks"], new["config"]["tasks"])
    for part in ("tasks", "training"):
        cell.setdefault(part, {}).update(new.get(part, {}))
    return cell


def cell_settings(config: dict) -> dict:
    """What makes two runs parts of one cell: every setting but the tasks."""
    return {k: v for k, v in config.items() if k != "tasks"}


def union(first: list, second: list) -> list:
    return [*first, *(x for x in second if x not in first)]


def cell_name(config: dict) -> str:
    return f"{config['model']}-{config['recipe']}-{config['steps']}-s{config['seed']}"


def write_summary(results: Path, model: str) -> None:
    cells = [json.loads(p.read_text()) for p in sorted(results.glob(f"{model}-*.json"))]
    (results / f"summary-{model}.md").write_text(render_summary(cells))


def _complete(path: Path, args) -> bool:
    """The cell's results at `path` hold every row this command computes."""
    if not path.is_file():
        return False
    tasks = json.loads(path.read_text()).get("tasks", {})
    wanted = {*SEP_VARIANTS, "MP", "SRP"} | {
        f"{n}{suffix}" for n in args.finetune.split(";") if n for suffix in TUNED_SUFFIXES
    }
    return all(t in tasks and wanted <= set(tasks[t]) for t in args.tasks.split(","))


# what the pretrained backbone depends on: a shared file must match them all
PRETRAINING_SETTINGS = ("model", "recipe", "seed", "frame", "crop", "stride", "batch", "frames")
PRETRAINING_SETTINGS += ("pretrain_steps", "lr")


def check_pretrained(path: Path, state: dict, settings: dict) -> None:
    """Refuse a shared pretrained backbone made with other settings than this cell's."""
    saved = state.get("settings")
    if saved is None:  # written before files named their settings
        log.warning("%s names no pretraining settings; using it as given", path)
        return
    differ = [
        f"{k}: {saved.get(k)!r} there, {v!r} here" for k, v in settings.items() if saved.get(k) != v
    ]
    if differ:
        raise SystemExit(
            f"--pretrained {path} was pretrained with other settings ({'; '.join(differ)})"
        )


def pretrained_backbone(study: Study, args, config: dict, shared: Path | None) -> ECMRNet:
    """The backbone pretrained clean to clean: from the `shared` file (checked against
    this cell's settings), or trained and saved in the study (and in `shared`)."""

    def pretrain():
        torch.manual_seed(args.seed)
        model = ECMRNet.from_preset("tiny" if args.model == "smoke" else args.model)
        start = time.perf_counter()
        fit(
            model,
            None,
            training_frames(None, args, mix_seed(args.seed, 99)),
            args.pretrain_steps,
            args.lr,
            args,
            args.seed,
        )
        log.info("pretrained %d steps in %.0f s", args.pretrain_steps, time.perf_counter() - start)
        return model

    settings = {k: config[k] for k in PRETRAINING_SETTINGS}
    if shared is not None and shared.is_file():
        state = torch.load(shared, map_location="cpu", weights_only=True)
        check_pretrained(shared, state, settings)
        return ECMRNet.from_state_dict(state["model"])
    pretrained = study.model("pretrained", pretrain)
    if shared is not None:
        save_checkpoint(shared, {"model": pretrained.state_dict(), "settings": settings})
    return pretrained


def run_cell(args, out: Path, shared_pretrained: Path | None) -> Study:
    """One study: pretraining, then every task's rows and fine-tuning, in `out`."""
    for key, value in STUDIES[args.model].items():
        if key != "steps":
            setattr(args, key, value)
    args.tasks = [t for t in args.tasks.split(",") if t]
    args.finetune_steps = max(1, round(FINETUNE_SHARE * args.steps))
    # fine-tuning curve: a few points, then the budget
    args.marks = sorted(
        {m for m in (25, 50, 100, 200, 400, 800) if m < args.finetune_steps} | {args.finetune_steps}
    )
    skip = ("out", "threads", "finetune", "marks", "record_graphs", "record_frames", "results")
    skip += ("seeds", "recipes", "summary_only", "pretrained")
    config = {k: v for k, v in vars(args).items() if k not in skip}
    config["frame"] = list(config["frame"])
    study = Study(out, config)

    pretrained = pretrained_backbone(study, args, config, shared_pretrained)
    for task in args.tasks:
        run_task(study, pretrained, task, args)
    for name in [n for n in args.finetune.split(";") if n]:
        for task in args.tasks:
            finetune_task(study, task, name, args)
    (study.out / "results.md").write_text(render(study.results))
    print(render(study.results))
    return study


if __name__ == "__main__":
    main()
