"""A model on real thermal images it never saw: the HM-TIR examples, known task and blind.

Prints Markdown tables for a model (default: the built-in one; or a run folder, a
checkpoint or a weights file), next to an earlier model (``--before``, e.g. the demo run)
and PPFN's published restorations of ``hard``:

1. per real pair (``hard`` and ``normal``, both compound low contrast + blur + noise):
   PSNR / SSIM of the degraded input, of ``--before`` and of the model with the task
   (``--task``, default CBN) known, and of PPFN's output; the means, the gains over the
   input and the model's share of PPFN's gain;
2. blind restoration: what the recognizer sees in each real image, where it routes it, the
   PSNR of that restoration, and how many images go to a task holding all of C, B and N;
3. where a gap comes from: the same model and task on (a) procedural scenes of its own
   style at the real images' size, degraded by its own preset, (b) the real clean images
   degraded by its own preset, (c) the published pairs. (a) against (b) is the scenes'
   domain gap, (b) against (c) the degradations';
4. the procedural test sets: the model's own (from its settings) and, with ``--before``,
   that run's, each restored by both models (a model restores every task of its own list).

With ``--figure PATH`` it draws one real image: degraded, ``--before``, the model, PPFN,
clean. The real images are only measured, never used to train or tune anything. Seeded and
deterministic on the CPU; a few minutes with one thread.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.real_restoration [--model runs/cpu] \\
        [--before runs/demo] [--labels before,ours] [--examples ../shared/data/hm-tir-examples] \\
        [--figure docs/images/restore_real_default.png] [--test-length 60] [--blind-only]

``--blind-only`` prints the blind table (2.) alone, e.g. for a retrained recognizer
(``python -m sepkit_torch.pipeline recognizer``).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

import sepkit_torch
from benchmarks.blind_restoration import EXAMPLES, save_figure, scores
from sepkit_torch.checkpoint import read_state
from sepkit_torch.data import (
    degrade,
    get_degradation,
    parse_task,
    quantize,
    read_image,
    thermal_scene,
)
from sepkit_torch.data.sampling import mix_seed
from sepkit_torch.inference import Restorer
from sepkit_torch.pipeline import PipelineConfig, test_set

SEVERITIES = ("hard", "normal")
# seeds of the gap study's degradations and scenes, apart from every training seed
_GAP_SEED = 0x9A9_5EED


def settings(source) -> PipelineConfig:
    """The run settings a model was trained with (a weights file keeps them)."""
    config = read_state(source)["config"]
    known = {f.name for f in dataclasses.fields(PipelineConfig)}
    return PipelineConfig(**{k: v for k, v in config.items() if k in known})


def restore(restorer: Restorer, image: torch.Tensor, task: str) -> torch.Tensor:
    return restorer(image, task=task)


def real_pairs(models: dict[str, Restorer], folder: Path, task: str) -> dict[str, list[dict]]:
    """Per severity and image: PSNR / SSIM of the input, of each model, and of PPFN."""
    rows: dict[str, list[dict]] = {}
    for severity in SEVERITIES:
        rows[severity] = []
        for path in sorted((folder / severity).glob("*.png")):
            degraded = read_image(path)[None]
            clean = read_image(folder / "imgs" / path.name)[None]
            row = {"image": path.stem, "degraded": scores(degraded, clean)}
            for name, model in models.items():
                row[name] = scores(restore(model, degraded, task), clean)
            peer = folder / f"enh_{severity}" / path.name
            row["PPFN"] = scores(read_image(peer)[None], clean) if peer.is_file() else None
            rows[severity].append(row)
    return rows


def print_pairs(rows: dict[str, list[dict]], names: list[str], task: str) -> None:
    columns = ["degraded", *names, "PPFN"]
    for severity, items in rows.items():
        print(f"### Real `{severity}` pairs, task {task} known (PSNR dB / SSIM)\n")
        print("| image | " + " | ".join(columns) + " |")
        print("|---|" + "---:|" * len(columns))
        for r in items:
            cells = ["-" if r[c] is None else f"{r[c][0]:.2f} / {r[c][1]:.4f}" for c in columns]
            print(f"| {r['image']} | " + " | ".join(cells) + " |")
        means = {}
        for c in columns:
            values = [r[c] for r in items if r[c] is not None]
            means[c] = np.mean(values, axis=0) if len(values) == len(items) else None
        cells = [
            "-" if means[c] is None else f"{means[c][0]:.2f} / {means[c][1]:.4f}" for c in columns
        ]
        print("| mean | " + " | ".join(cells) + " |")
        base = means["degraded"]
        gains = [
            "-"
            if means[c] is None
            else f"{means[c][0] - base[0]:+.2f} / {means[c][1] - base[1]:+.4f}"
            for c in columns
        ]
        print("| gain over the input | " + " | ".join(gains) + " |\n")
        if means["PPFN"] is not None:
            peer = means["PPFN"] - base
            for name in names:
                share = (means[name] - base) / peer
                print(
                    f"- {name}: {share[0]:.0%} of PPFN's PSNR gain and {share[1]:.0%} of its "
                    f"SSIM gain (SSIM {means[name][1]:.4f} against PPFN's {means['PPFN'][1]:.4f})"
                )
            print()


def blind(restorer: Restorer, folder: Path, task: str = "CBN") -> list[dict]:
    """The recognizer's verdict on every real degraded image, the blind restoration, and
    the restoration with `task` known."""
    rows = []
    for severity in SEVERITIES:
        for path in sorted((folder / severity).glob("*.png")):
            degraded = read_image(path)[None]
            clean = read_image(folder / "imgs" / path.name)[None]
            (verdict,) = restorer.recognize(degraded)
            restored, _ = restorer.restore(degraded)
            known = restorer(degraded, task=task) if task in restorer.tasks else None
            rows.append(
                {
                    "image": f"{severity}/{path.stem}",
                    "p": verdict.probabilities,
                    "letters": "".join(verdict.letters) or "none",
                    "task": verdict.task,
                    "degraded": scores(degraded, clean)[0],
                    "blind": scores(restored, clean)[0],
                    "known": None if known is None else scores(known, clean)[0],
                }
            )
    return rows


def print_blind(rows: list[dict], letters: tuple[str, ...], task: str = "CBN") -> None:
    print("### Blind restoration of the real images (all are C + B + N)\n")
    letters = sorted(letters, key=lambda name: get_degradation(name).order)
    known = all(r["known"] is not None for r in rows)
    print(
        "| image | "
        + " | ".join(f"p({x})" for x in letters)
        + " | recognized | routed to | degraded PSNR | blind PSNR |"
        + (f" {task} known PSNR |" if known else "")
    )
    print("|---|" + "---:|" * len(letters) + "---|---|---:|---:|" + ("---:|" if known else ""))
    for r in rows:
        p = " | ".join(f"{r['p'][x]:.2f}" for x in letters)
        print(
            f"| {r['image']} | {p} | {r['letters']} | {r['task'] or 'left as is'} "
            f"| {r['degraded']:.2f} | {r['blind']:.2f} |"
            + (f" {r['known']:.2f} |" if known else "")
        )
    full = sum(
        r["task"] is not None and {"C", "B", "N"} <= set(parse_task(r["task"])) for r in rows
    )
    print(f"\nRouted to a task holding C, B and N: {full} of {len(rows)}.")
    if known:
        gain = {k: np.mean([r[k] - r["degraded"] for r in rows]) for k in ("blind", "known")}
        print(
            f"Mean gain over the input: blind {gain['blind']:+.2f} dB, {task} known "
            f"{gain['known']:+.2f} dB (blind - known: {gain['blind'] - gain['known']:+.2f} dB)."
        )
    print()


def gap(restorer: Restorer, config: PipelineConfig, folder: Path, task: str, draws: int) -> None:
    """The model on its own kind of data at the real size, on real scenes with its own
    degradations, and on the published pairs."""
    clean_real = [read_image(p)[None] for p in sorted((folder / "imgs").glob("*.png"))]
    size = tuple(clean_real[0].shape[-2:])
    sets: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    scenes = []
    for i in range(draws * len(clean_real)):
        scene = thermal_scene(size, mix_seed(_GAP_SEED, 0, i), style=config.scene_style)[None]
        scenes.append((_degraded(scene, task, config, i), scene))
    sets[f"(a) {config.scene_style} scenes, {config.degradation_preset} {task}"] = scenes
    sets[f"(b) real clean images, {config.degradation_preset} {task}"] = [
        (_degraded(x, task, config, draws * i + k), x)
        for i, x in enumerate(clean_real)
        for k in range(draws)
    ]
    for severity in SEVERITIES:
        sets[f"(c) published `{severity}` pairs"] = [
            (read_image(p)[None], read_image(folder / "imgs" / p.name)[None])
            for p in sorted((folder / severity).glob("*.png"))
        ]
    print(f"### Where the gap comes from (task {task} known, {size[1]} x {size[0]} images)\n")
    print("| images | n | degraded PSNR / SSIM | restored PSNR / SSIM | gain (dB) |")
    print("|---|---:|---:|---:|---:|")
    for name, pairs in sets.items():
        before = np.mean([scores(d, c) for d, c in pairs], axis=0)
        after = np.mean([scores(restore(restorer, d, task), c) for d, c in pairs], axis=0)
        print(
            f"| {name} | {len(pairs)} | {before[0]:.2f} / {before[1]:.4f} "
            f"| {after[0]:.2f} / {after[1]:.4f} | {after[0] - before[0]:+.2f} |"
        )
    print()


def _degraded(clean: torch.Tensor, task: str, config: PipelineConfig, i: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(mix_seed(_GAP_SEED, 1, i))
    return quantize(degrade(clean, task, g, preset=config.degradation_preset))


def procedural(models: dict[str, Restorer], configs: dict[str, PipelineConfig], length) -> None:
    """Every model on every model's procedural test sets (the tasks both know)."""
    for owner, config in configs.items():
        if config.data is not None:
            continue
        tasks = [t for t in config.tasks if all(t in m.tasks for m in models.values())]
        n = length or config.test_length
        print(
            f"### The procedural test sets of {owner} ({config.scene_style} scenes, "
            f"{config.degradation_preset} degradations, {n} x {config.test_size}^2 per task; "
            "PSNR dB / SSIM)\n"
        )
        print("| task | degraded | " + " | ".join(models) + " |")
        print("|---|---:|" + "---:|" * len(models))
        totals = {name: [] for name in ["degraded", *models]}
        for task in tasks:
            data = test_set(config, task, length=n)
            pairs = [data[i] for i in range(len(data))]
            row = {"degraded": np.mean([scores(d[None], c[None]) for d, c in pairs], axis=0)}
            for name, model in models.items():
                row[name] = np.mean(
                    [scores(restore(model, d[None], task), c[None]) for d, c in pairs], axis=0
                )
            for name, value in row.items():
                totals[name].append(value[0])
            print(
                f"| {task} | "
                + " | ".join(f"{row[k][0]:.2f} / {row[k][1]:.4f}" for k in ["degraded", *models])
                + " |"
            )
        print("| mean PSNR | " + " | ".join(f"{np.mean(v):.2f}" for v in totals.values()) + " |\n")


def figure(models: dict[str, Restorer], folder: Path, name: str, task: str, path: Path) -> None:
    """Degraded, each model with `task` known, PPFN's output and clean: whole images above
    a crop at full resolution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    severity, stem = name.split("/")
    degraded = read_image(folder / severity / f"{stem}.png")[None]
    clean = read_image(folder / "imgs" / f"{stem}.png")[None]
    panels = [(degraded, f"{name}: input")]
    panels += [(restore(m, degraded, task), f"{label} ({task})") for label, m in models.items()]
    peer = folder / f"enh_{severity}" / f"{stem}.png"
    if peer.is_file():
        panels.append((read_image(peer)[None], "PPFN (published)"))
    panels.append((clean, "clean"))
    h, w = clean.shape[-2:]
    top, left = h // 4, w // 3  # a quarter of the image at full resolution
    fig, axes = plt.subplots(2, len(panels), figsize=(2.9 * len(panels), 5.4))
    for column, (img, title) in enumerate(panels):
        psnr_, ssim_ = scores(img, clean)
        label = title if img is clean else f"{title}\n{psnr_:.2f} dB, SSIM {ssim_:.3f}"
        axes[0, column].imshow(img[0, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[0, column].set_title(label, fontsize=8)
        crop = img[0, 0, top : top + h // 2, left : left + w // 2]
        axes[1, column].imshow(crop.numpy(), cmap="gray", vmin=0, vmax=1)
        for ax in axes[:, column]:
            ax.axis("off")
    save_figure(fig, path)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="run folder, checkpoint or weights file (default: built-in)")
    p.add_argument("--before", help="an earlier model to compare with (e.g. the demo run)")
    p.add_argument(
        "--labels",
        default="before,ours",
        help="names of --before and the model in the tables and figure (comma-separated)",
    )
    p.add_argument("--task", default="CBN", help="the known task of the real images")
    p.add_argument("--examples", default=str(EXAMPLES), help="HM-TIR example folder")
    p.add_argument("--figure", help="write a real-image figure here (PNG)")
    p.add_argument("--figure-image", default="hard/Villa", help="severity/name of it")
    p.add_argument("--draws", type=int, default=2, help="degradations per image in the gap study")
    p.add_argument("--test-length", type=int, help="procedural test images per task")
    p.add_argument(
        "--blind-only", action="store_true", help="only the blind restoration of the real images"
    )
    args = p.parse_args(argv)
    labels = args.labels.split(",")
    if len(labels) != 2 or not all(labels) or labels[0] == labels[1]:
        p.error(f"--labels: two different names separated by a comma; got {args.labels!r}")
    before, ours = labels
    torch.set_num_threads(1)

    model = sepkit_torch.load(args.model)
    models = {ours: model}
    configs = {"the model": settings(args.model)}
    if args.before:
        models = {before: sepkit_torch.load(args.before), ours: model}
        configs["the earlier model"] = settings(args.before)
    print(f"Model ({ours}): {model.source}.\n")
    if args.before:
        print(f"Before ({before}): {models[before].source}.\n")

    folder = Path(args.examples)
    if args.blind_only:
        if (folder / "hard").is_dir() and model.recognizer is not None:
            print_blind(blind(model, folder, args.task), model.recognizer.letters, args.task)
        else:
            print(f"(no real examples in {folder}, or no recognizer)\n")
        return
    if (folder / "hard").is_dir():
        print_pairs(real_pairs(models, folder, args.task), list(models), args.task)
        if model.recognizer is not None:
            print_blind(blind(model, folder, args.task), model.recognizer.letters, args.task)
        gap(model, configs["the model"], folder, args.task, args.draws)
        if args.figure:
            figure(models, folder, args.figure_image, args.task, Path(args.figure))
    else:
        print(f"(no real examples: {folder} is absent)\n")
    procedural(models, configs, args.test_length)


if __name__ == "__main__":
    main()
