"""How much faster two torch threads train the tiny model than one: wall-clock per step.

The ``cpu`` run preset's training step (the tiny model, one task branch, a batch of 8
windows of 96 px, Adam, L1 loss) and a restore of one 256 x 320 frame, timed in fresh
processes that alternate one and two threads (``--rounds`` pairs); each process warms up,
then keeps the fastest of three blocks of ``--steps`` steps. Needs an otherwise idle
machine: two threads are only worth measuring on two free cores. Prints each run, the
load average beside it, and the median speed-up::

    .venv/bin/python -m benchmarks.train_threads --rounds 3

``docs/pipeline.md`` ("Planned: a longer cpu schedule") quotes it. The pipeline's stages
add data loading, evaluation and SEP to the steps timed here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CHILD = """
import json, sys, time, torch
threads, steps = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
from sepkit_torch import ECMRNet
from sepkit_torch.pipeline import PipelineConfig
cfg = PipelineConfig.from_preset("cpu")
model = ECMRNet.from_preset(cfg.model)
model.add_task("C")
opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 1e-3)
x = torch.rand(cfg.batch_size, 1, cfg.crop_size, cfg.crop_size)
y = torch.rand_like(x)

def step():
    opt.zero_grad()
    (model(x, "C") - y).abs().mean().backward()
    opt.step()

for _ in range(5):
    step()
blocks = []
for _ in range(3):
    t = time.perf_counter()
    for _ in range(steps):
        step()
    blocks.append((time.perf_counter() - t) / steps)
frame = torch.rand(1, 1, *cfg.frame_size)
with torch.no_grad():
    model(frame, "C")
    t = time.perf_counter()
    for _ in range(10):
        model(frame, "C")
restore = (time.perf_counter() - t) / 10
print(json.dumps({"step": min(blocks), "restore": restore, "batch": cfg.batch_size,
                  "crop": cfg.crop_size, "frame": list(cfg.frame_size)}))
"""


def run(threads: int, steps: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(threads), str(steps)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["load"] = os.getloadavg()[0]
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="pairs of one- and two-thread runs")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed block")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.steps < 1:
        parser.error(f"--rounds and --steps must be >= 1; got {args.rounds}, {args.steps}")
    train, restore = [], []
    for r in range(args.rounds):
        one, two = run(1, args.steps), run(2, args.steps)
        train.append(one["step"] / two["step"])
        restore.append(one["restore"] / two["restore"])
        for threads, res in ((1, one), (2, two)):
            print(
                f"round {r + 1}, {threads} thread(s): step {res['step'] * 1e3:.1f} ms "
                f"(batch {res['batch']} x {res['crop']} px), restore {res['restore'] * 1e3:.1f} "
                f"ms ({res['frame'][0]} x {res['frame'][1]}), load {res['load']:.2f}",
                flush=True,
            )
        time.sleep(1)
    print(
        f"two threads against one: training x{statistics.median(train):.2f} "
        f"(runs {', '.join(f'{s:.2f}' for s in train)}), restore x{statistics.median(restore):.2f}"
    )


if __name__ == "__main__":
    main()
