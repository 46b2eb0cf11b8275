"""What the ``mixtures`` recognizer's two parts do: training on mixtures, and calibration.

Takes a weights file (or run) whose recognizer was retrained in the ``mixtures`` mode
(``python -m sepkit_torch.pipeline recognizer RUN --mode mixtures --out FILE``) and the
model it was retrained from (``--before``, default the built-in one), and prints Markdown
tables for four recognizers with the same restorer:

- ``before``: the earlier recognizer as it is;
- ``before, calibrated``: its heads, with thresholds calibrated here as the ``mixtures``
  mode does (the same validation frames, seeds and mixtures);
- ``mixtures, 0.5``: the retrained heads with every threshold at 0.5;
- ``mixtures``: the retrained recognizer (heads and thresholds).

For each: the share of each procedural test set routed to its own task, on the run's
fixed test sets and on procedural test frames of the real images' size (512 x 640,
``--large`` per task); then, on the real HM-TIR pairs (never used to train or tune
anything), how many are routed to a task holding C, B and N, and the mean blind gain
against the gain with the task known. A few minutes with one thread.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.recognizer_mixtures \\
        --model runs/recognizer-mixtures.pt [--before RUN] [--large 12]
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np
import torch

import sepkit_torch
from benchmarks.blind_restoration import EXAMPLES, print_confusion, scores
from benchmarks.real_restoration import SEVERITIES, settings
from sepkit_torch.continual.recognition import (
    CLEAN,
    MILD_SHARE,
    calibrate_letter,
    evaluate_recognition,
)
from sepkit_torch.data import make_dataset, parse_task, read_image
from sepkit_torch.data.sampling import mix_seed
from sepkit_torch.inference import Restorer
from sepkit_torch.pipeline import stage_seed, test_set
from sepkit_torch.pipeline.data import calibration_frames


def calibrated(restorer: Restorer, config) -> Restorer:
    """`restorer` with a copy of its recognizer calibrated as the ``mixtures`` mode does."""
    recognizer = copy.deepcopy(restorer.recognizer)
    letters = tuple(dict.fromkeys(p for t in config.tasks for p in parse_task(t)))
    frames = calibration_frames(config)
    for letter in recognizer.letters:
        seed = stage_seed(config, f"{letter}:recognize", "recognizer")
        calibrate_letter(
            recognizer,
            letter,
            frames,
            contexts=[c for c in letters if c != letter],
            preset=config.degradation_preset,
            mild=MILD_SHARE,
            seed=mix_seed(seed, 1),
        )
    return Restorer(restorer.model, recognizer, tasks=restorer.tasks)


def uncalibrated(restorer: Restorer) -> Restorer:
    recognizer = copy.deepcopy(restorer.recognizer)
    for letter in recognizer.letters:
        recognizer.set_threshold(letter, None)
    return Restorer(restorer.model, recognizer, tasks=restorer.tasks)


def large_test_sets(config, length: int, size=(512, 640)) -> dict:
    """Procedural test frames of the real images' size (the test split, the run's seed)."""
    return {
        t: make_dataset(
            None,
            t,
            split="test",
            crop_size=size,
            preset=config.degradation_preset,
            seed=config.seed,
            length=length,
            style=config.scene_style,
        )
        for t in config.tasks
    }


def real(restorer: Restorer, folder: Path, task: str = "CBN") -> dict:
    routed, blind_gain, known_gain = 0, [], []
    for severity in SEVERITIES:
        for path in sorted((folder / severity).glob("*.png")):
            degraded = read_image(path)[None]
            clean = read_image(folder / "imgs" / path.name)[None]
            restored, (route,) = restorer.restore(degraded)
            routed += route is not None and {"C", "B", "N"} <= set(parse_task(route))
            base = scores(degraded, clean)[0]
            blind_gain.append(scores(restored, clean)[0] - base)
            known_gain.append(scores(restorer(degraded, task=task), clean)[0] - base)
    return {
        "n": len(blind_gain),
        "routed": routed,
        "blind": float(np.mean(blind_gain)),
        "known": float(np.mean(known_gain)),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="weights or run with a mixtures recognizer")
    p.add_argument("--before", help="the model it was retrained from (default: built-in)")
    p.add_argument("--large", type=int, default=12, help="512 x 640 test frames per task")
    p.add_argument("--examples", default=str(EXAMPLES), help="HM-TIR example folder")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    after = sepkit_torch.load(args.model)
    before = sepkit_torch.load(args.before)
    config = settings(args.model)
    variants = {
        "before": before,
        "before, calibrated": calibrated(before, config),
        "mixtures, 0.5": uncalibrated(after),
        "mixtures": after,
    }
    tasks = list(config.tasks)
    sets = {
        f"{config.test_size}^2": {t: test_set(config, t) for t in tasks},
        "512 x 640": large_test_sets(config, args.large),
    }
    folder = Path(args.examples)
    summary = []
    for name, restorer in variants.items():
        rec = restorer.recognizer
        thresholds = ", ".join(f"{k} {v:.3f}" for k, v in rec.thresholds.items()) or "all 0.5"
        print(f"### {name} (thresholds {thresholds})\n")
        for label, data in sets.items():
            result = evaluate_recognition(rec, data, tasks)
            n = len(next(iter(data.values())))
            print(
                f"Procedural test frames {label}, {n} per task (routing accuracy "
                f"{result['accuracy']:.3f}):\n"
            )
            print_confusion(result)
            summary.append((name, label, result))
        if (folder / "hard").is_dir():
            r = real(restorer, folder)
            print(
                f"Real pairs: {r['routed']} of {r['n']} routed to a task holding C, B and N; "
                f"mean gain blind {r['blind']:+.2f} dB, CBN known {r['known']:+.2f} dB "
                f"(blind - known {r['blind'] - r['known']:+.2f} dB).\n"
            )
    print("### Share of each procedural test set routed to its own task\n")
    print("| recognizer | frames | " + " | ".join([*tasks, CLEAN]) + " | mean |")
    print("|---|---|" + "---:|" * (len(tasks) + 2))
    for name, label, result in summary:
        cells = [f"{result['per_task'][t]['routed']:.2f}" for t in [*tasks, CLEAN]]
        print(f"| {name} | {label} | " + " | ".join(cells) + f" | {result['accuracy']:.3f} |")
    print()


if __name__ == "__main__":
    main()
