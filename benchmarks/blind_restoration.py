"""Blind restoration of a pipeline run: the recognizer picks the task, then the branch restores.

Reads a run folder written by ``python -m sepkit_torch.pipeline`` (its checkpoint and
configuration) and prints Markdown tables:

1. per task, on the run's fixed test sets: PSNR/SSIM of the degraded input, of the
   restoration with the task known, and of blind restoration (recognize, route, restore);
2. the recognizer's routing accuracy per task and its confusion matrix;
3. what the continual constraint costs: the run's recognizer ("context": each head
   trained around the letters learned before it) beside two recognizers retrained here
   with the run's data, seeds and steps: "pairs" (each head on its task's pairs only)
   and "joint" (each head around all the other letters: not continual, an upper bound),
   and with ``--epochs N ...`` the run's recognizer retrained for N epochs;
4. the recognizer's verdict on real images (``hard/`` and ``normal/`` of the HM-TIR
   examples, both compound CBN), with PSNR of blind and CBN restorations;
5. tiled against untiled restoration of a real 640 x 512 image;
6. params and MACs (1 x 1 x 512 x 640) of the recognizer next to the restorer's paths.

With ``--figure PATH`` it also draws one real example: degraded, blind restoration,
clean. Seeded and deterministic on the CPU; about ten minutes with one thread for the
demo run with `--test-length 60 --epochs 8` (mostly retraining recognizers).

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.blind_restoration --run runs/demo \\
        [--test-length 60] [--epochs 8] [--examples ../shared/data/hm-tir-examples] \\
        [--figure docs/images/restore_real_example.png]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

import sepkit_torch
from sepkit_torch import complexity, psnr, ssim
from sepkit_torch.complexity import COUNT_SHAPE
from sepkit_torch.continual.recognition import CLEAN, evaluate_recognition, train_letter
from sepkit_torch.data import parse_task, read_image
from sepkit_torch.inference import Restorer
from sepkit_torch.models import DegradationRecognizer
from sepkit_torch.pipeline import PipelineConfig, stage_seed, test_set, train_set
from sepkit_torch.pipeline.recognition_stage import retrain_recognizer as retrain_run_recognizer
from sepkit_torch.pipeline.recognition_stage import window_batches

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO.parent / "shared" / "data" / "hm-tir-examples"


def test_sets(config: PipelineConfig, length: int | None = None) -> dict:
    """The run's fixed test set of every task, as the pipeline builds them.

    For procedural data, `length` extends them: item ``i`` depends on ``(seed, i)`` only,
    so the run's test images are the first ``config.test_length`` of the longer set.
    """
    return {t: test_set(config, t, length=length) for t in config.tasks}


def retrain_recognizer(config: PipelineConfig, mode: str) -> DegradationRecognizer:
    """The pipeline's recognizer stages again, with ``mode`` "context", "pairs",
    "mixtures" (the pipeline's own retraining) or "joint" (not a pipeline mode)."""
    if mode != "joint":
        changed = dataclasses.replace(config, recognizer=mode)
        return retrain_run_recognizer(changed, evaluate=False)[0]
    torch.manual_seed(0)
    recognizer = DegradationRecognizer()
    singles = [t for t in config.tasks if len(parse_task(t)) == 1]
    for task in singles:
        stage = f"{task}:recognize"
        data = train_set(config, task, stage)
        train_letter(
            recognizer,
            task,
            data,
            epochs=config.recognizer_epochs,
            contexts=tuple(singles),  # every letter, those learned later included
            preset=config.degradation_preset,
            batch_size=config.batch_size,
            seed=stage_seed(config, stage, "recognizer"),
            batch_sampler=window_batches(data, config.batch_size),
        )
    return recognizer.eval()


def scores(restored: torch.Tensor, clean: torch.Tensor) -> tuple[float, float]:
    return float(psnr(restored, clean)), float(ssim(restored, clean))


def known_and_blind(restorer: Restorer, sets: dict) -> dict:
    """Per task: mean PSNR/SSIM of the input, of the known-task and of blind restoration."""
    rows = {}
    for task, data in sets.items():
        acc = {"degraded": [], "known": [], "blind": []}
        routed = []
        for i in range(len(data)):
            degraded, clean = data[i]
            acc["degraded"].append(scores(degraded[None], clean[None]))
            acc["known"].append(scores(restorer(degraded[None], task=task), clean[None]))
            blind, route = restorer.restore(degraded[None])
            acc["blind"].append(scores(blind, clean[None]))
            routed.append(route[0])
        rows[task] = {k: np.mean(v, axis=0).tolist() for k, v in acc.items()}
        rows[task]["routed"] = float(np.mean([r == task for r in routed]))
    return rows


def print_known_blind(rows: dict, title: str) -> None:
    print(f"### {title}\n")
    print("| task | degraded PSNR / SSIM | known task PSNR / SSIM | blind PSNR / SSIM | routed |")
    print("|---|---:|---:|---:|---:|")
    for task, r in rows.items():
        print(
            f"| {task} | {r['degraded'][0]:.2f} / {r['degraded'][1]:.4f} "
            f"| {r['known'][0]:.2f} / {r['known'][1]:.4f} "
            f"| {r['blind'][0]:.2f} / {r['blind'][1]:.4f} | {r['routed']:.2f} |"
        )
    mean = {k: np.mean([r[k][0] for r in rows.values()]) for k in ("degraded", "known", "blind")}
    print(
        f"| mean | {mean['degraded']:.2f} | {mean['known']:.2f} | {mean['blind']:.2f} "
        f"| {np.mean([r['routed'] for r in rows.values()]):.2f} |\n"
    )


def print_confusion(result: dict) -> None:
    print("| true \\ routed | " + " | ".join(result["columns"]) + " |")
    print("|---|" + "---:|" * len(result["columns"]))
    for row, counts in zip(result["rows"], result["confusion"], strict=True):
        print(f"| {row} | " + " | ".join(str(c) for c in counts) + " |")
    print()


def real_examples(restorer: Restorer, folder: Path) -> list[dict]:
    rows = []
    for severity in ("hard", "normal"):
        for path in sorted((folder / severity).glob("*.png")):
            degraded = read_image(path)[None]
            clean = read_image(folder / "imgs" / path.name)[None]
            (verdict,) = restorer.recognize(degraded)
            blind, _ = restorer.restore(degraded)
            cbn = restorer(degraded, task="CBN") if "CBN" in restorer.tasks else None
            rows.append(
                {
                    "image": f"{severity}/{path.stem}",
                    "probabilities": verdict.probabilities,
                    "letters": "".join(verdict.letters) or "none",
                    "task": verdict.task or CLEAN,
                    "degraded": scores(degraded, clean)[0],
                    "blind": scores(blind, clean)[0],
                    "cbn": None if cbn is None else scores(cbn, clean)[0],
                }
            )
    return rows


def print_real(rows: list[dict]) -> None:
    letters = list(rows[0]["probabilities"])
    print(
        "| image | "
        + " | ".join(f"p({x})" for x in letters)
        + " | recognized | routed to | degraded PSNR | blind PSNR | as CBN PSNR |"
    )
    print("|---|" + "---:|" * len(letters) + "---|---|---:|---:|---:|")
    for r in rows:
        p = " | ".join(f"{r['probabilities'][x]:.2f}" for x in letters)
        cbn = "-" if r["cbn"] is None else f"{r['cbn']:.2f}"
        print(
            f"| {r['image']} | {p} | {r['letters']} | {r['task']} | {r['degraded']:.2f} "
            f"| {r['blind']:.2f} | {cbn} |"
        )
    print()


def tiling(restorer: Restorer, image: torch.Tensor, task: str) -> None:
    whole = Restorer(restorer.model, restorer.recognizer, tasks=restorer.tasks, tile=1024)
    start = time.perf_counter()
    reference = whole(image, task=task)
    t_whole = time.perf_counter() - start
    print("| tiles (side, overlap) | PSNR against untiled (dB) | max abs difference | seconds |")
    print("|---|---:|---:|---:|")
    print(f"| none (untiled) | - | - | {t_whole:.2f} |")
    for tile, overlap in ((512, 32), (256, 32), (128, 32)):
        tiled = Restorer(
            restorer.model, restorer.recognizer, tasks=restorer.tasks, tile=tile, overlap=overlap
        )
        start = time.perf_counter()
        out = tiled(image, task=task)
        seconds = time.perf_counter() - start
        print(
            f"| {tile}, {overlap} | {float(psnr(out, reference)):.2f} "
            f"| {float((out - reference).abs().max()):.4f} | {seconds:.2f} |"
        )
    print()


def figure(restorer: Restorer, folder: Path, name: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    severity, stem = name.split("/")
    degraded = read_image(folder / severity / f"{stem}.png")[None]
    clean = read_image(folder / "imgs" / f"{stem}.png")[None]
    (verdict,) = restorer.recognize(degraded)
    blind, _ = restorer.restore(degraded)
    p = ", ".join(f"{k} {v:.2f}" for k, v in verdict.probabilities.items())
    panels = (
        (degraded, f"{name} ({scores(degraded, clean)[0]:.2f} dB)"),
        (blind, f"blind: {verdict.task or 'left as is'} ({scores(blind, clean)[0]:.2f} dB)"),
        (clean, "clean"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, (img, title) in zip(axes, panels, strict=True):
        ax.imshow(img[0, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"recognizer: {p}", fontsize=9)
    save_figure(fig, path)


def save_figure(fig, path: Path) -> None:
    """Write a benchmark figure (PNG, 80 dpi), creating its folder, and say where."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"figure written to {path}\n")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="a pipeline run folder")
    p.add_argument("--examples", default=str(EXAMPLES), help="HM-TIR example folder")
    p.add_argument("--figure", help="write a real-image example figure here (PNG)")
    p.add_argument("--figure-image", default="hard/Villa", help="severity/name of it")
    p.add_argument(
        "--epochs",
        type=int,
        nargs="*",
        default=[],
        help="also retrain the context recognizer with these numbers of epochs",
    )
    p.add_argument(
        "--test-length",
        type=int,
        help="test images per task for procedural data (default: the run's test_length)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    run = Path(args.run)
    config = PipelineConfig(**json.loads((run / "config.json").read_text()))
    restorer = sepkit_torch.load(run)
    sets = test_sets(config, args.test_length)
    print(
        f"Run {run}: preset {config.preset}, tasks {', '.join(config.tasks)}, "
        f"recognizer {config.recognizer} ({config.recognizer_epochs} epochs); "
        f"{len(next(iter(sets.values())))} test images per task.\n"
    )

    print_known_blind(known_and_blind(restorer, sets), "Known task against blind restoration")
    result = evaluate_recognition(restorer.recognizer, sets, list(config.tasks))
    print(f"### Confusion of the run's recognizer (routing accuracy {result['accuracy']:.3f})\n")
    print_confusion(result)

    print("### What the continual constraint costs\n")
    reproduced = retrain_recognizer(config, config.recognizer)
    same = all(
        torch.equal(a, b)
        for a, b in zip(
            reproduced.state_dict().values(),
            restorer.recognizer.state_dict().values(),
            strict=False,
        )
        if isinstance(a, torch.Tensor)
    )
    print(f"(retraining mode {config.recognizer!r} here reproduces the run's heads: {same})\n")
    variants = {config.recognizer: restorer.recognizer}
    for mode in ("pairs", "context", "joint"):
        if mode not in variants:
            variants[mode] = retrain_recognizer(config, mode)
    modes = ["pairs", "context", "joint"]
    for epochs in args.epochs:
        name = f"context, {epochs} epochs"
        longer = dataclasses.replace(config, recognizer_epochs=epochs)
        variants[name] = retrain_recognizer(longer, "context")
        modes.append(name)
    table = {}
    for mode, rec in variants.items():
        other = Restorer(restorer.model, rec, tasks=restorer.tasks)
        table[mode] = (
            evaluate_recognition(rec, sets, list(config.tasks)),
            known_and_blind(other, sets),
        )
    print(
        "| recognizer | " + " | ".join(config.tasks) + " | clean | mean routed | mean blind PSNR |"
    )
    print("|---|" + "---:|" * (len(config.tasks) + 3))
    for mode in modes:
        ev, kb = table[mode]
        cells = [f"{ev['per_task'][t]['routed']:.2f}" for t in [*config.tasks, CLEAN]]
        blind = np.mean([r["blind"][0] for r in kb.values()])
        print(f"| {mode} | " + " | ".join(cells) + f" | {ev['accuracy']:.3f} | {blind:.2f} |")
    print()
    for mode in ("pairs", "joint"):
        print(f"Confusion, {mode}:\n")
        print_confusion(table[mode][0])

    folder = Path(args.examples)
    if (folder / "hard").is_dir():
        print(f"### Real images ({folder.name}; hard and normal are CBN)\n")
        print_real(real_examples(restorer, folder))
        print(f"### Tiled against untiled (hard/Villa, 640 x 512, task {config.tasks[-1]})\n")
        tiling(restorer, read_image(folder / "hard" / "Villa.png")[None], config.tasks[-1])
        if args.figure:
            figure(restorer, folder, args.figure_image, Path(args.figure))
    else:
        print(f"(no real examples: {folder} is absent)\n")

    print("### Size (1 x 1 x 512 x 640)\n")
    rec = complexity(restorer.recognizer, COUNT_SHAPE)
    print("| network | params | MACs (G) |")
    print("|---|---:|---:|")
    print(
        f"| recognizer ({len(restorer.recognizer.letters)} heads) | {rec.total_params:,} "
        f"| {rec.gmacs:.3f} |"
    )
    per_head = complexity(restorer.recognizer.heads[restorer.recognizer.letters[0]], COUNT_SHAPE)
    print(f"| one head | {per_head.total_params:,} | {per_head.gmacs:.3f} |")
    for task in restorer.tasks:
        c = complexity(restorer.model, COUNT_SHAPE, task=task.replace("+", "_"))
        print(f"| restorer path {task} | {c.activated_params:,} | {c.gmacs:.3f} |")
    total = sum(p.numel() for p in restorer.model.parameters())
    print(f"| restorer, all tasks (total params) | {total:,} | - |")


if __name__ == "__main__":
    main()
