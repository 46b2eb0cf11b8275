"""Which model size, and which recipe, for the built-in model: equal CPU time, validation frames.

Each candidate (a backbone size and a training recipe of ``training.fit``) gets the same
budget of CPU seconds on one thread: its per-step cost is measured first, then it is
pretrained (clean to clean) and trains one branch of `--task` with the ``cpu`` run
preset's data (detailed scenes, 96-px windows of 256 x 320 frames; ``--degradations``,
by default the preset's), its schedule sized to the budget. It is scored on the run
preset's validation frames (training-split scenes with their own seed, never the test
split and never real images): with a recipe that keeps a weight average, both the
average (what the public code reports) and the raw weights (what the pipeline keeps).
Writes one JSON per candidate into `--out` (resumable: a candidate with its JSON there
is read back) and prints the table.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.model_size --minutes 10 \\
        --candidates tiny:paper,tiny:code,w12:code,w16:code --degradations broad \\
        --out docs/results/model-size
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from sepkit_torch import ECMRNet
from sepkit_torch._files import atomic_write_text
from sepkit_torch.data import DEGRADATION_PRESETS
from sepkit_torch.distributed import ShardedBatchSampler
from sepkit_torch.metrics import psnr, ssim
from sepkit_torch.models.backbone import MODEL_PRESETS, BackboneConfig
from sepkit_torch.pipeline import PipelineConfig
from sepkit_torch.pipeline.data import train_set, validation_set
from sepkit_torch.training import RECIPES, fit

log = logging.getLogger("model_size")

#: Sizes between the tiny and the paper presets, with the paper's stage structure: the
#: stage interfaces are ``base_width * (1, 4, 16, 16, 4, 1)``, the tiny preset's groups
#: (group widths 3-8) and one GResBlock per stage.
CANDIDATE_SIZES = {
    **MODEL_PRESETS,
    **{
        f"w{base}": BackboneConfig(
            base_width=base,
            widths=tuple(base * k for k in (1, 4, 16, 16, 4, 1)),
            groups=MODEL_PRESETS["tiny"].groups,
            blocks=MODEL_PRESETS["tiny"].blocks,
        )
        for base in (12, 16)
    },
}
#: The share of the budget spent pretraining the backbone (the cpu preset: 3 of 3 + 7 x 7
#: epochs, about 8%; more here, since one task follows rather than seven).
PRETRAIN_SHARE = 0.15


def step_seconds(cfg: BackboneConfig, config: PipelineConfig, task: str, steps: int = 6) -> float:
    """CPU seconds of one training step of a fresh branch of `task` (after two warm-ups)."""
    model = ECMRNet(cfg)
    model.add_task(task)
    x = torch.rand(config.batch_size, 1, config.crop_size, config.crop_size)
    opt = torch.optim.Adam(model.trainable_parameters(), 1e-4)
    times = []
    for i in range(steps + 2):
        start = time.process_time()
        loss = (model(x, task=task) - x).abs().mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        if i >= 2:
            times.append(time.process_time() - start)
    return sorted(times)[len(times) // 2]


def loader(config: PipelineConfig, task: str | None, stage: str, seed: int):
    data = train_set(config, task or "C", stage)
    g = torch.Generator().manual_seed(seed)
    batches = ShardedBatchSampler(
        len(data), config.batch_size, generator=g, drop_last=True, frame_items=data.frame_items
    )
    return data, DataLoader(data, batch_sampler=batches, generator=g)


@torch.no_grad()
def score(model: ECMRNet, task: str, data) -> dict[str, float]:
    model.eval()
    values = []
    for i in range(len(data)):
        degraded, clean = (t.unsqueeze(0) for t in data[i])
        restored = model(degraded, task=task).clamp(0, 1)
        values.append((float(psnr(restored, clean)), float(ssim(restored, clean))))
    model.train()
    return {
        "psnr": sum(v[0] for v in values) / len(values),
        "ssim": sum(v[1] for v in values) / len(values),
    }


def run(size: str, recipe: str, args) -> dict:
    config = PipelineConfig.from_preset(
        "cpu", recipe=recipe, seed=args.seed, degradation_preset=args.degradations
    )
    cfg = CANDIDATE_SIZES[size]
    per_step = step_seconds(cfg, config, args.task)
    budget = args.minutes * 60
    total = max(2, int(budget / per_step))
    pre_steps = max(1, round(PRETRAIN_SHARE * total))
    steps = total - pre_steps
    log.info(
        "%s/%s: %.3f s per step -> %d pretraining + %d steps",
        size,
        recipe,
        per_step,
        pre_steps,
        steps,
    )
    torch.manual_seed(args.seed)
    model = ECMRNet(cfg)
    start = time.process_time()
    data, batches = loader(config, None, "pretrain", args.seed)
    fit(
        model,
        batches,
        lr=config.lr,
        steps=pre_steps,
        clean_to_clean=True,
        recipe=recipe,
        set_epoch=data.set_epoch,
    )
    model.add_task(args.task)
    data, batches = loader(config, args.task, f"{args.task}:train", args.seed + 1)
    val = validation_set(config, args.task)
    result = fit(
        model,
        batches,
        lr=config.lr,
        steps=steps,
        task=args.task,
        recipe=recipe,
        set_epoch=data.set_epoch,
    )
    seconds = time.process_time() - start
    if RECIPES[recipe].ema_decay is not None:
        raw = score(model, args.task, val)
        result.use_averaged()
    else:
        raw = None
    out = {
        "size": size,
        "recipe": recipe,
        "degradations": args.degradations,
        "task": args.task,
        "seed": args.seed,
        "budget_s": budget,
        "step_s": per_step,
        "pretrain_steps": pre_steps,
        "steps": steps,
        "cpu_s": seconds,
        "path_params": sum(p.numel() for p in model.parameters()),
        "validation": score(model, args.task, val),
        "validation_raw": raw,
        "load": os.getloadavg()[0],
    }
    log.info("%s/%s: %s", size, recipe, out["validation"])
    return out


def render(rows: list[dict]) -> str:
    lines = [
        "| size | recipe | params (one task) | s / step | steps | CPU s | val PSNR / SSIM "
        "| raw weights: val PSNR / SSIM |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        v, raw = r["validation"], r["validation_raw"]
        raw = "-" if raw is None else f"{raw['psnr']:.2f} / {raw['ssim']:.4f}"
        lines.append(
            f"| {r['size']} | {r['recipe']} | {r['path_params']:,} | {r['step_s']:.3f} | "
            f"{r['pretrain_steps']} + {r['steps']} | {r['cpu_s']:.0f} | "
            f"{v['psnr']:.2f} / {v['ssim']:.4f} | {raw} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--candidates",
        default="tiny:paper,tiny:code,w16:code",
        help=f"size:recipe pairs, sizes from {sorted(CANDIDATE_SIZES)}",
    )
    parser.add_argument("--task", default="CBN")
    parser.add_argument(
        "--degradations",
        default=PipelineConfig.from_preset("cpu").degradation_preset,
        choices=sorted(DEGRADATION_PRESETS),
        help="degradation preset of the data (default: the cpu preset's)",
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="CPU minutes per candidate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="a folder for the per-candidate JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for item in args.candidates.split(","):
        size, _, recipe = item.partition(":")
        if size not in CANDIDATE_SIZES or recipe not in RECIPES:
            parser.error(
                f"candidate {item!r}: size in {sorted(CANDIDATE_SIZES)}, recipe in "
                f"{sorted(RECIPES)}"
            )
        name = f"{size}-{recipe}-{args.degradations}-{args.task}-{args.minutes:g}min-s{args.seed}"
        path = out / f"{name}.json"
        if not path.is_file():
            atomic_write_text(path, json.dumps(run(size, recipe, args), indent=1))
        rows.append(json.loads(path.read_text()))
    print(render(rows))


if __name__ == "__main__":
    main()
