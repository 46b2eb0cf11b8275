"""The paper's Table 7 on a small CPU training run: SEP vs MP vs SRP, same groups kept.

Tiny preset ECMRNet, procedural thermal scenes. Pretrain the backbone clean -> clean,
then, for each single-degradation task (a fresh branch on the same pretrained
backbone), train the branch (Adam, L1, small crops) and, from deep copies of the
trained model, prune it without fine-tuning by

- SEP (:func:`~sepkit_torch.continual.pruning.select_groups`, Pearson, ``"game"`` and
  ``"multilevel"`` partitions, at each ``rho``),
- MP (group L1 weight norm) and SRP (L1-penalised group gates) keeping SEP's number of
  groups per stage,
- random groups with the same counts (averaged over a few seeds);

then fine-tune the SEP-pruned branch for a few steps. Prints Markdown tables: PSNR/SSIM
on a fixed procedural test set, params/MACs (1 x 1 x 512 x 640) before and after.
Seeded and deterministic on the CPU; a few minutes with one thread.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.sep_table7 [--tasks N,B] [--rhos 0.1,0.3]
"""

from __future__ import annotations

import argparse
import copy
import logging
import time

import numba
import numpy as np
import torch

from sepkit_torch import ECMRNet, complexity, make_optimizer, psnr, ssim, train_step
from sepkit_torch.continual.pruning import (
    gate_scores,
    magnitude_scores,
    prune,
    select_groups,
    top_groups,
)
from sepkit_torch.data import make_dataset, thermal_scenes
from sepkit_torch.models.backbone import STAGE_NAMES

log = logging.getLogger("sep_table7")

COUNT_SHAPE = (1, 1, 512, 640)


def batches(dataset, batch_size: int, n_batches: int, start: int = 0):
    """Consecutive ``(degraded, clean)`` batches of a deterministic dataset."""
    for b in range(n_batches):
        items = [dataset[(start + b) * batch_size + j] for j in range(batch_size)]
        yield torch.stack([d for d, _ in items]), torch.stack([c for _, c in items])


@torch.no_grad()
def evaluate(model, task, test) -> tuple[float, float]:
    """Mean PSNR (dB) and SSIM of `model` along `task` on the stacked test pairs."""
    degraded, clean = test
    model.eval()
    out = torch.cat([model(x, task=task) for x in degraded.split(16)]).clamp(0, 1)
    return float(psnr(out, clean).mean()), float(ssim(out, clean).mean())


def counts_of(keep) -> dict[str, int]:
    return {s: int(np.asarray(keep[s]).sum()) for s in STAGE_NAMES}


def pruned_copy(model, task, keep):
    m = copy.deepcopy(model)
    prune(m, task, keep)
    return m


def cost(model, task):
    c = complexity(model, COUNT_SHAPE, task=task)
    return c.activated_params, c.macs, c.total_params


def pretrain(args) -> ECMRNet:
    torch.manual_seed(args.seed)
    model = ECMRNet.from_preset("tiny")
    opt = make_optimizer(model, lr=args.lr)
    n = args.pretrain_steps * args.batch
    scenes = thermal_scenes(min(n, 1024), args.crop, seed=args.seed + 1000)
    g = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    for _ in range(args.pretrain_steps):
        x = scenes[torch.randint(len(scenes), (args.batch,), generator=g)]
        flip = torch.rand(1, generator=g).item() < 0.5
        x = x.flip(-1) if flip else x
        train_step(model, opt, x, x)
    log.info("pretrained %d steps in %.1f s", args.pretrain_steps, time.perf_counter() - start)
    return model


def run_task(pretrained: ECMRNet, task: str, args) -> list[str]:
    lines: list[str] = []
    out = lines.append
    torch.manual_seed(args.seed)
    model = copy.deepcopy(pretrained)
    model.add_task(task)
    opt = make_optimizer(model, lr=args.lr)
    train = make_dataset(
        None, task, split="train", length=10**6, crop_size=args.crop, seed=args.seed
    )
    start = time.perf_counter()
    for x, y in batches(train, args.batch, args.steps):
        train_step(model, opt, x, y, task=task)
    log.info("%s: trained %d steps in %.1f s", task, args.steps, time.perf_counter() - start)
    used = args.steps

    test_set = make_dataset(None, task, split="test", length=args.test, crop_size=64)
    items = [test_set[i] for i in range(len(test_set))]
    test = (torch.stack([d for d, _ in items]), torch.stack([c for _, c in items]))
    input_psnr = float(psnr(test[0], test[1]).mean())
    input_ssim = float(ssim(test[0], test[1]).mean())
    pre_psnr, pre_ssim = evaluate(model, task, test)
    pretrained_psnr, pretrained_ssim = evaluate(pretrained, None, test)
    full = cost(model, task)

    # The pool: degraded training images (disjoint from the training crops), 64 x 80.
    pool_set = make_dataset(
        None, task, split="train", length=args.pool, crop_size=(64, 80), seed=args.seed + 7
    )
    pool = torch.stack([pool_set[i][0] for i in range(args.pool)])

    mp = magnitude_scores(model.branches[task], model.config)
    pairs = list(batches(train, args.batch, args.srp_batches, start=used))
    used += args.srp_batches
    start = time.perf_counter()
    srp = gate_scores(
        copy.deepcopy(model), task, pairs, penalty=args.srp_penalty, lr=1e-2, epochs=args.srp_epochs
    )
    log.info("%s: SRP gates in %.1f s", task, time.perf_counter() - start)

    out(f"\n### Task {task}\n")
    out(
        f"Trained {args.steps} steps (batch {args.batch}, {args.crop}px crops, Adam lr "
        f"{args.lr:g}, L1) after {args.pretrain_steps} pretraining steps. Test set: "
        f"{args.test} procedural scenes 64x64. Degraded input {input_psnr:.2f} dB / "
        f"{input_ssim:.4f}; pretrained path (no branch training) {pretrained_psnr:.2f} / "
        f"{pretrained_ssim:.4f}; trained branch {pre_psnr:.2f} / {pre_ssim:.4f}. SEP pool: "
        f"{args.pool} degraded training images 64x80. Params/MACs at 1x1x512x640.\n"
    )
    table = [
        "| rho | method | groups kept e1..d3 | PSNR | SSIM | dPSNR | activated params "
        "| MACs (G) | total params |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
        f"| - | unpruned | {'/'.join(str(g) for g in model.config.groups)} | {pre_psnr:.2f} "
        f"| {pre_ssim:.4f} | 0.00 | {full[0]:,} | {full[1] / 1e9:.3f} | {full[2]:,} |",
    ]
    finetune_rows = []
    all_groups = dict(zip(STAGE_NAMES, model.config.groups, strict=True))

    def row(rho, name, counts, p, s, c, extra=""):
        kept = "/".join(str(counts[st]) for st in STAGE_NAMES)
        table.append(
            f"| {rho:g} | {name} | {kept} | {p:.2f}{extra} | {s:.4f} | {p - pre_psnr:+.2f} "
            f"| {c[0]:,} ({c[0] / full[0] - 1:+.1%}) | {c[1] / 1e9:.3f} "
            f"({c[1] / full[1] - 1:+.1%}) | {c[2]:,} ({c[2] / full[2] - 1:+.1%}) |"
        )

    for rho in args.rhos:
        done_counts = []
        for method in ("game", "multilevel"):
            start = time.perf_counter()
            sel = select_groups(
                model,
                task,
                pool,
                similarity_kind="pearson",
                method=method,
                rho=rho,
                batch_size=8,
                seed=args.seed,
            )
            log.info("%s rho=%g %s: %.1f s", task, rho, method, time.perf_counter() - start)
            counts = counts_of(sel.keep)
            log.info(
                "%s rho=%g %s frequencies: %s",
                task,
                rho,
                method,
                {s_: np.round(np.sort(f)[::-1], 2).tolist() for s_, f in sel.frequency.items()},
            )
            m = pruned_copy(model, task, sel.keep)
            p, s = evaluate(m, task, test)
            row(rho, f"SEP ({method})", counts, p, s, cost(m, task))
            if counts == all_groups:
                continue  # nothing pruned: the baselines would equal the unpruned model
            if method == "game":
                finetune_rows.append((rho, counts, m, p, s))
            if counts in done_counts:
                continue
            done_counts.append(counts)
            tag = "" if method == "game" else " @ multilevel counts"
            for name, scores in (("MP", mp), ("SRP", srp)):
                keep = top_groups(scores, counts)
                m = pruned_copy(model, task, keep)
                p, s = evaluate(m, task, test)
                row(rho, name + tag, counts, p, s, cost(m, task))
            results = []
            for k in range(args.random_seeds):
                rng = np.random.default_rng([args.seed, k])
                keep = {
                    st: np.isin(np.arange(g), rng.choice(g, counts[st], replace=False))
                    for st, g in zip(STAGE_NAMES, model.config.groups, strict=True)
                }
                results.append(evaluate(pruned_copy(model, task, keep), task, test))
            r = np.array(results)
            row(
                rho,
                f"random x{args.random_seeds}" + tag,
                counts,
                r[:, 0].mean(),
                r[:, 1].mean(),
                cost(m, task),
                extra=f" (sd {r[:, 0].std():.2f})",
            )
    lines.extend(table)

    # Fine-tuning the SEP (game) pruned branch: recovery of the PSNR lost.
    if finetune_rows:
        marks = sorted({0, *(m for m in args.finetune_marks if m <= args.finetune_steps)})
        out(
            "\nFine-tuning the SEP (game) pruned branch (same data stream, Adam, L1, lr "
            f"{args.finetune_lr:g}); recovery = share of the lost PSNR regained.\n"
        )
        out("| rho | " + " | ".join(f"{k} steps" for k in marks) + " | recovery |")
        out("|---|" + "---:|" * (len(marks) + 1))
        for rho, _counts, m, p0, s0 in finetune_rows:
            opt = make_optimizer(m, lr=args.finetune_lr)
            cells, step, last = [f"{p0:.2f} / {s0:.4f}"], 0, p0
            for x, y in batches(train, args.batch, args.finetune_steps, start=used):
                train_step(m, opt, x, y, task=task)
                step += 1
                if step in marks:
                    last, s = evaluate(m, task, test)
                    cells.append(f"{last:.2f} / {s:.4f}")
            lost = pre_psnr - p0
            recovery = f"{(last - p0) / lost:.0%}" if lost > 1e-6 else "-"
            out(f"| {rho:g} | " + " | ".join(cells) + f" | {recovery} |")
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="N,B", help="comma-separated single tasks")
    parser.add_argument("--rhos", default="0.1,0.3", help="comma-separated rho values")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--steps", type=int, default=500, help="training steps per task")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=48)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--test", type=int, default=48, help="test images (64 x 64)")
    parser.add_argument("--pool", type=int, default=96, help="SEP pool images (64 x 80)")
    parser.add_argument("--srp-batches", type=int, default=24)
    parser.add_argument("--srp-epochs", type=int, default=3)
    parser.add_argument("--srp-penalty", type=float, default=1e-3)
    parser.add_argument("--random-seeds", type=int, default=5)
    parser.add_argument("--finetune-steps", type=int, default=100)
    parser.add_argument("--finetune-lr", type=float, default=5e-4)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    args.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    args.rhos = [float(r) for r in args.rhos.split(",")]
    args.finetune_marks = (10, 25, 50, 100, 200)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    # numba's default OpenMP layer leaves its worker threads spinning after sepkit's
    # parallel kernels; on a loaded 2-core machine that slows every later torch op
    # about 15x. The workqueue layer parks them (must be set before the first call).
    numba.config.THREADING_LAYER = "workqueue"
    torch.use_deterministic_algorithms(True)

    start = time.perf_counter()
    pretrained = pretrain(args)
    print(f"## SEP vs MP vs SRP (Table 7), tiny preset, seed {args.seed}")
    for task in args.tasks:
        print("\n".join(run_task(pretrained, task, args)))
    log.info("total %.1f s", time.perf_counter() - start)


if __name__ == "__main__":
    main()
