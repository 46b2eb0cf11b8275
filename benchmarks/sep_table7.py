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
import os
import time
from pathlib import Path

import numba
import numpy as np
import torch
from torch.utils.data import DataLoader

from sepkit_torch import ECMRNet, complexity, psnr, ssim, training
from sepkit_torch.complexity import COUNT_SHAPE
from sepkit_torch.continual.pruning import (
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

log = logging.getLogger("sep_table7")


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
        srp_batches=24,
        srp_epochs=3,
        finetune_steps=300,
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
        srp_batches=24,
        srp_epochs=3,
        finetune_steps=100,
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
        steps=3,
        lr=1e-3,
        pool=3,
        test=2,
        srp_batches=2,
        srp_epochs=1,
        finetune_steps=2,
        finetune_lr=5e-4,
    ),
}

# The SEP variants: (method, tie, criterion) of select_groups. The first is the published
# rule; the last, this project's criterion beyond the paper.
SEP_VARIANTS = {
    "SEP": ("sweep", "random", "published"),
    "SEP, ties by index": ("sweep", "index", "published"),
    "SEP, ties by contribution": ("sweep", "contribution", "published"),
    "SEP, CoDeSEG game": ("game", "random", "published"),
    "SEP, multilevel": ("multilevel", "random", "published"),
    "SEP (contribution)": ("sweep", "random", "contribution"),
}
# The selections MP, SRP and random groups are compared with, at the same counts, and the
# suffix of those rows.
REFERENCES = {"SEP": "", "SEP (contribution)": " @ SEP (contribution) counts"}


# ----------------------------------------------------------------------------- state


class Study:
    """The study's folder: trained models and results.json, every write atomic."""

    def __init__(self, out: Path, config: dict):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        path = out / "results.json"
        self.results = json.loads(path.read_text()) if path.is_file() else {"config": config}
        if self.results["config"] != config:
            raise SystemExit(
                f"error: {out} holds a study with other settings ({self.results['config']}); "
                "use another --out"
            )

    def save(self) -> None:
        tmp = self.out / ".results.json.tmp"
        tmp.write_text(json.dumps(self.results, indent=1) + "\n")
        os.replace(tmp, self.out / "results.json")

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


def batch_of(data, index) -> tuple[torch.Tensor, torch.Tensor]:
    items = [data[i] for i in index]
    return torch.stack([d for d, _ in items]), torch.stack([c for _, c in items])


def fit(
    model, task: str | None, data, steps: int, lr: float, args, seed: int, on_step=None
) -> float:
    """`steps` Adam steps (cosine to lr/100, L1) over the frame-grouped shuffled windows;
    ``on_step(step)`` after each."""
    g = torch.Generator().manual_seed(seed)
    order = ShardedBatchSampler(len(data), args.batch, generator=g, frame_items=data.frame_items)
    result = training.fit(
        model,
        DataLoader(data, batch_sampler=order),
        lr=lr,
        steps=steps,
        task=task,
        clean_to_clean=task is None,
        set_epoch=data.set_epoch,
        on_step=None if on_step is None else lambda step, loss: on_step(step),
    )
    return result.loss


@torch.no_grad()
def evaluate(model, task, test) -> dict:
    degraded, clean = test
    model.eval()
    out = torch.cat([model(x, task=task) for x in degraded.split(4)]).clamp(0, 1)
    return {"psnr": float(psnr(out, clean).mean()), "ssim": float(ssim(out, clean).mean())}


def size(model, task) -> dict:
    c = complexity(model, COUNT_SHAPE, task=task)
    return {"activated_params": c.activated_params, "macs": c.macs, "total_params": c.total_params}


def pruned(model, task, keep):
    m = copy.deepcopy(model)
    prune(m, task, keep)
    return m


def counts_of(keep) -> dict[str, int]:
    """Groups kept per stage, from bool masks or index arrays."""
    out = {}
    for s in STAGE_NAMES:
        k = np.asarray(keep[s])
        out[s] = int(k.sum()) if k.dtype == bool else int(k.size)
    return out


def scored(model, task, keep, test) -> dict:
    m = pruned(model, task, keep)
    return {"kept": list(counts_of(keep).values()), **evaluate(m, task, test), **size(m, task)}


# ----------------------------------------------------------------------------- the study


def run_task(study: Study, pretrained: ECMRNet, task: str, args) -> None:
    seed = mix_seed(args.seed, ord(task[0]))

    def train_branch():
        torch.manual_seed(seed)
        model = copy.deepcopy(pretrained)
        model.add_task(task)
        data = training_frames(task, args, seed)
        start = time.perf_counter()
        loss = fit(model, task, data, args.steps, args.lr, args, seed)
        log.info(
            "%s: %d steps in %.0f s, last loss %.4f",
            task,
            args.steps,
            time.perf_counter() - start,
            loss,
        )
        return model

    model = study.model(f"trained-{task}", train_branch)
    test_data = SyntheticThermalDataset(
        task, length=args.test, size=args.frame, split="test", seed=args.seed
    )
    items = [test_data[i] for i in range(len(test_data))]
    test = (torch.stack([d for d, _ in items]), torch.stack([c for _, c in items]))
    # the pool: whole degraded training frames, as the paper's N full-size images
    frames = training_frames(task, args, seed, length=args.pool)
    pool = torch.stack([frames.frame(f)[0] for f in range(args.pool)])
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
            **evaluate(model, task, test),
            **size(model, task),
        },
    )
    selections = {}
    for name, (method, tie, criterion) in SEP_VARIANTS.items():

        def select(method=method, tie=tie, criterion=criterion):
            sel = select_groups(
                model,
                task,
                pool,
                method=method,
                tie=tie,
                criterion=criterion,
                rho=args.rho,
                seed=args.seed,
            )
            return {
                **scored(model, task, sel.keep, test),
                "keep": {s: np.flatnonzero(sel.keep[s]).tolist() for s in STAGE_NAMES},
                "frequency": {s: sel.frequency[s].round(4).tolist() for s in STAGE_NAMES},
            }

        selections[name] = study.row(task, name, select)
    gates: dict = {}

    def srp_scores():
        if not gates:  # learned once per task, used at every count
            data = training_frames(task, args, mix_seed(seed, 1))
            g = torch.Generator().manual_seed(seed)
            order = ShardedBatchSampler(
                len(data), args.batch, generator=g, frame_items=data.frame_items
            )
            pairs = []
            for index in order:
                pairs.append(batch_of(data, index))
                if len(pairs) == args.srp_batches:
                    break
            gates.update(
                gate_scores(
                    copy.deepcopy(model),
                    task,
                    pairs,
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
    seed = mix_seed(args.seed, ord(task[0]))

    def finetune():
        model = study.model(f"trained-{task}", lambda: None)
        rows = study.results["tasks"][task]
        keep = {s: np.asarray(rows[name]["keep"][s]) for s in STAGE_NAMES}
        m = pruned(model, task, keep)
        test_data = SyntheticThermalDataset(
            task, length=args.test, size=args.frame, split="test", seed=args.seed
        )
        items = [test_data[i] for i in range(len(test_data))]
        test = (torch.stack([d for d, _ in items]), torch.stack([c for _, c in items]))
        torch.manual_seed(seed)
        curve = {0: evaluate(m, task, test)}

        def on_step(step):
            if step in args.marks:
                curve[step] = evaluate(m, task, test)

        data = training_frames(task, args, mix_seed(seed, 2))
        fit(m, task, data, args.finetune_steps, args.finetune_lr, args, mix_seed(seed, 3), on_step)
        return {"curve": {str(k): v for k, v in curve.items()}, **curve[args.finetune_steps]}

    study.row(task, f"{name} fine-tuned", finetune)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(STUDIES), default="paper")
    parser.add_argument("--out", required=True, help="the study's folder (resumable)")
    parser.add_argument("--tasks", default="C,B,N")
    parser.add_argument("--rho", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--random-seeds", type=int, default=5)
    parser.add_argument(
        "--finetune",
        default="SEP,MP,SRP,SEP (contribution)",
        help="selections to fine-tune (comma-separated row names)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--record-graphs", metavar="NPZ", help="save each task's SEP graphs here (test data)"
    )
    parser.add_argument("--record-frames", type=int, default=16, help="pool images recorded")
    args = parser.parse_args(argv)
    for key, value in STUDIES[args.model].items():
        setattr(args, key, value)
    args.tasks = [t for t in args.tasks.split(",") if t]
    # fine-tuning curve: a few points, then the budget
    args.marks = sorted(
        {m for m in (25, 50, 100, 200) if m < args.finetune_steps} | {args.finetune_steps}
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    # numba's default OpenMP layer leaves its workers spinning after sepkit's parallel
    # kernels, which slows every later torch op on a busy CPU; workqueue parks them.
    numba.config.THREADING_LAYER = "workqueue"
    config = {
        k: v
        for k, v in vars(args).items()
        if k not in ("out", "threads", "finetune", "marks", "record_graphs", "record_frames")
    }
    config["frame"] = list(config["frame"])
    study = Study(Path(args.out), config)

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

    pretrained = study.model("pretrained", pretrain)
    for task in args.tasks:
        run_task(study, pretrained, task, args)
    for name in [n for n in args.finetune.split(",") if n]:
        for task in args.tasks:
            finetune_task(study, task, name, args)
    (study.out / "results.md").write_text(render(study.results))
    print(render(study.results))


# ----------------------------------------------------------------------------- tables


def render(results: dict) -> str:
    cfg = results["config"]
    lines = [
        f"## Table 7, {cfg['model']} preset (rho {cfg['rho']}, seed {cfg['seed']})",
        "",
        f"Procedural frames {cfg['frame'][0]}x{cfg['frame'][1]} cut into {cfg['crop']}-px windows "
        f"at stride {cfg['stride']}; {cfg['pretrain_steps']} pretraining and {cfg['steps']} "
        f"training steps per task (batch {cfg['batch']}, Adam lr {cfg['lr']:g} cosine, L1); "
        f"SEP pool: {cfg['pool']} whole degraded training frames; test: {cfg['test']} whole "
        f"frames. Params/MACs of the task's path at 1x1x512x640.",
    ]
    for task, rows in results.get("tasks", {}).items():
        full = rows.get("unpruned")
        if full is None:
            continue
        lines += [
            "",
            f"### Task {task}",
            "",
            "Degraded input {psnr:.2f} dB / {ssim:.4f}.".format(**rows["degraded input"]),
            "",
            "| method | groups kept e1..d3 | PSNR | SSIM | dPSNR | activated params | MACs (G) |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for name in _table_order(rows):
            r = rows[name]
            sd = f" (sd {r['psnr_sd']:.2f})" if "psnr_sd" in r else ""
            lines.append(
                f"| {name} | {'/'.join(map(str, r['kept']))} | {r['psnr']:.2f}{sd} "
                f"| {r['ssim']:.4f} "
                f"| {r['psnr'] - full['psnr']:+.2f} | {r['activated_params']:,} "
                f"({r['activated_params'] / full['activated_params'] - 1:+.1%}) | "
                f"{r['macs'] / 1e9:.2f} ({r['macs'] / full['macs'] - 1:+.1%}) |"
            )
        tuned = {n: r for n, r in rows.items() if n.endswith("fine-tuned")}
        if tuned:
            marks = list(next(iter(tuned.values()))["curve"])
            lines += [
                "",
                "| fine-tuned | " + " | ".join(f"{m} steps" for m in marks) + " | vs unpruned |",
                "|---|" + "---:|" * (len(marks) + 1),
            ]
            for n, r in tuned.items():
                cells = [f"{r['curve'][m]['psnr']:.2f}" for m in marks]
                lines.append(
                    f"| {n[: -len(' fine-tuned')]} | "
                    + " | ".join(cells)
                    + f" | {r['psnr'] - full['psnr']:+.2f} |"
                )
    return "\n".join(lines) + "\n"


def _table_order(rows: dict) -> list[str]:
    """Each reference selection followed by the baselines at its counts, then the other
    SEP variants."""
    order = ["unpruned"]
    for reference, suffix in REFERENCES.items():
        order += [reference] + [n + suffix for n in ("MP", "SRP")]
        order += [
            n
            for n in rows
            if n.startswith("random x") and (n.endswith(suffix) if suffix else " @ " not in n)
        ]
    order += [n for n in SEP_VARIANTS if n not in order]
    extra = [n for n, r in rows.items() if "kept" in r and not n.endswith("fine-tuned")]
    return [n for n in order if n in rows] + [n for n in extra if n not in order]


if __name__ == "__main__":
    main()
