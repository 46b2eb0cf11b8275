"""Where the gain is lost on the real HM-TIR pairs: single-task branches in sequence
against the compound task in one pass, and what each output still holds.

A companion of ``benchmarks.real_restoration`` (same pairs, same scores). For every real
pair (``hard`` and ``normal``, both compound low contrast + blur + noise) it restores the
degraded image through *chains* of the model's tasks, each task's branch applied to the
previous one's output (float, not re-quantised): by default ``C``, ``C>B``, ``C>B>N``
(the letters in the order the issue names them), ``N>B>C`` (the inverse of the order in
which the degradations are applied: contrast, then blur, then noise) and ``CBN`` (the
compound task in one pass). It prints Markdown tables:

1. the mean PSNR / SSIM of every chain per severity, its gain over the input and its
   distance to the targets (hard +9 dB / SSIM 0.70, normal +6 dB), beside PPFN's
   published restorations of ``hard``; per image for ``hard``;
2. what is left in each output: the fit of ``benchmarks.stripe_spectra.residual`` (the
   output as ``a G*x + b + delta bump`` of the clean image, least squares), its gain ``a``
   and offset ``b`` (1 and 0 when the contrast is right) and blur sigma (the fitted blur
   of the clean image that best matches the output's high-pass); the RMS of the residual's
   profile in the input's stripe orientation and its white-noise floor
   (``benchmarks.stripe_spectra.summary``, grey levels); and the output's error split by
   that fit into five parts that add up to it: the gain and offset, the non-uniformity,
   the blur, the striped profile and the rest of the residual (white noise, texture),
   each as its RMS and as the PSNR the output would gain with that part alone taken out.

With ``--procedural N`` it also breaks down CBN in one pass on N procedural frames of the
model's own scenes and degradations, at its training frame size and at the real one: what
the real outputs keep, kept on the model's own kind of frames too or not. With
``--figure PATH`` it draws one image through the chains, whole and a crop, and the
striped profile each output leaves. The real images are only measured, never used to
train or tune anything. Deterministic on the CPU; about 5 minutes of CPU time with one
thread, nearly all in the 65 residual fits (25 minutes of wall time on a loaded 2-core
machine; ``--no-breakdown`` leaves the fits out).

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.real_chain [--model runs/cpu] \\
        [--chains C,C>B,C>B>N,N>B>C,CBN] [--examples ../shared/data/hm-tir-examples] \\
        [--figure docs/images/restore_real_chain.png] [--no-breakdown] [--procedural 4]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import sepkit_torch
from benchmarks.blind_restoration import EXAMPLES, save_figure, scores
from benchmarks.real_restoration import SEVERITIES, settings
from benchmarks.stripe_spectra import residual, summary
from sepkit_torch.data import degrade, quantize, read_image, thermal_scene
from sepkit_torch.data.degradations import gaussian_filter
from sepkit_torch.data.estimation import nonuniformity_bump
from sepkit_torch.data.sampling import mix_seed
from sepkit_torch.inference import Restorer
from sepkit_torch.metrics import psnr

DEFAULT_CHAINS = ("C", "C>B", "C>B>N", "N>B>C", "CBN")
TARGETS = {"hard": (9.0, 0.70), "normal": (6.0, None)}  # PSNR gain (dB), SSIM
_SCENE_SEED = 0x51DE  # the procedural frames' scenes and degradations, apart from training


def parse_chains(text: str, tasks) -> dict[str, tuple[str, ...]]:
    """``"C,C>B,CBN"`` -> ``{"C": ("C",), "C>B": ("C", "B"), "CBN": ("CBN",)}``."""
    chains = {}
    for label in text.split(","):
        steps = tuple(label.split(">"))
        unknown = [t for t in steps if t not in tasks]
        if not label or unknown:
            raise ValueError(
                f"`chains` must be comma-separated chains of the model's tasks "
                f"({', '.join(tasks)}) joined by '>'; got {label!r} in {text!r}"
            )
        chains[label] = steps
    return chains


def run_chains(restorer: Restorer, degraded: torch.Tensor, chains) -> dict[str, torch.Tensor]:
    """Each chain's output; a prefix shared by several chains is restored once."""
    done: dict[tuple[str, ...], torch.Tensor] = {(): degraded}
    out = {}
    for label, steps in chains.items():
        for k in range(1, len(steps) + 1):
            if steps[:k] not in done:
                done[steps[:k]] = restorer(done[steps[: k - 1]], task=steps[k - 1])
        out[label] = done[steps]
    return out


def striped_profile(r: torch.Tensor, keep: torch.Tensor, stripes: str) -> torch.Tensor:
    """The mean of `r` over the kept pixels of each column (``"column"``) or row, spread
    back over the image: the line pattern of that orientation."""
    m = keep.double()
    axis = 0 if stripes == "column" else 1
    means = (r * m).sum(axis) / m.sum(axis).clamp_min(1.0)
    return means.expand_as(r) if axis == 0 else means[:, None].expand_as(r)


PARTS = {
    "gain_offset": "gain & offset",
    "nonuniformity": "non-uniformity",
    "blur": "blur",
    "stripes": "stripes",
    "rest": "rest",
}


def error_parts(clean, output, r, keep, fit, stripes: str) -> dict[str, torch.Tensor]:
    """``output - clean`` as the sum of what the fit ``a G*x + b + delta bump`` of
    ``benchmarks.stripe_spectra.residual`` (`r`, `keep`, `fit`) says about it: the gain and
    offset error ``(a - 1) G*x + b`` (with the bump's mean), the non-uniformity (the bump
    less its mean), the blur ``G*x - x``, the striped profile of the residual and the rest
    of the residual (white noise, texture)."""
    x, y = clean.double(), output.double()
    blur = fit.parameters["B"]
    gx = gaussian_filter(x[None, None], blur["kernel_size"], blur["sigma"])[0, 0]
    bump = nonuniformity_bump(*x.shape, *fit.centre)
    features = torch.stack([gx, torch.ones_like(x), bump], -1).reshape(-1, 3)
    # the fitted part y - r lies in the features' span: its coefficients, exactly
    a, b, d = torch.linalg.lstsq(features, (y - r).reshape(-1, 1)).solution[:, 0].tolist()
    profile = striped_profile(r, keep, stripes)
    return {
        "gain_offset": (a - 1) * gx + b + d * bump.mean(),
        "nonuniformity": d * (bump - bump.mean()),
        "blur": gx - x,
        "stripes": profile,
        "rest": r - profile,
    }


def breakdown(clean: torch.Tensor, output: torch.Tensor, stripes: str) -> dict:
    """What `output` still holds against `clean` (both ``(H, W)`` in [0, 1]): the fitted
    gain, offset and blur sigma, the stripes in orientation `stripes` and their noise floor
    (grey levels); the RMS of the error and of each of its parts (:func:`error_parts`, grey
    levels) and the PSNR with that part alone taken out."""
    r, keep, fit = residual(clean, output)
    s = summary(r, keep, stripes)
    x, y = clean.double(), output.double()
    parts = error_parts(clean, output, r, keep, fit, stripes)
    return {
        "a": fit.parameters["C"]["contrast"],
        "b": fit.parameters["C"]["brightness"],
        "sigma": fit.parameters["B"]["sigma"],
        "stripes": s[f"{stripes}_std"],
        "floor": s[f"{stripes}_floor"],
        "psnr": float(psnr(y, x)),
        "rms": float((y - x).square().mean().sqrt()) * 255,
        "parts": {
            k: (float(v.square().mean().sqrt()) * 255, float(psnr((y - v).clamp(0, 1), x)))
            for k, v in parts.items()
        },
        "profile": parts["stripes"][0] if stripes == "column" else parts["stripes"][:, 0],
    }


def measure(restorer: Restorer, folder: Path, chains, *, breakdowns: bool = True) -> list[dict]:
    """Per real pair: scores of the input, of every chain and of PPFN's output, and (with
    `breakdowns`) what each of those holds."""
    rows = []
    for severity in SEVERITIES:
        for path in sorted((folder / severity).glob("*.png")):
            degraded = read_image(path)[None]
            clean = read_image(folder / "imgs" / path.name)[None]
            outputs = {"input": degraded, **run_chains(restorer, degraded, chains)}
            peer = folder / f"enh_{severity}" / path.name
            if peer.is_file():
                outputs["PPFN"] = read_image(peer)[None]
            row = {
                "severity": severity,
                "image": path.stem,
                "scores": {k: scores(v, clean) for k, v in outputs.items()},
                "left": {},
            }
            if breakdowns:
                # the input's stripes: the orientation every output is measured in
                stripes = residual(clean[0, 0], degraded[0, 0])[2].stripes
                row["stripes"] = stripes
                for k, v in outputs.items():
                    row["left"][k] = breakdown(clean[0, 0], v[0, 0], stripes)
            rows.append(row)
    return rows


def _mean(rows, key, name, field=None):
    values = [r[key][name] if field is None else r[key][name][field] for r in rows]
    return np.mean(values, axis=0)


def print_scores(rows: list[dict], labels: list[str]) -> None:
    print("### The chains on the real pairs (mean PSNR dB / SSIM; gain over the input)\n")
    for severity in SEVERITIES:
        items = [r for r in rows if r["severity"] == severity]
        if not items:
            continue
        gain, ssim_target = TARGETS[severity]
        names = ["input", *labels] + (["PPFN"] if all("PPFN" in r["scores"] for r in items) else [])
        base = _mean(items, "scores", "input")
        print(
            f"#### `{severity}` ({len(items)} pairs; target: +{gain:.0f} dB"
            + (f", SSIM {ssim_target:.2f})" if ssim_target else ")")
            + "\n"
        )
        print("| output | PSNR / SSIM | gain (dB / SSIM) | to the PSNR target (dB) |")
        print("|---|---:|---:|---:|")
        for name in names:
            m = _mean(items, "scores", name)
            print(
                f"| {name} | {m[0]:.2f} / {m[1]:.4f} | {m[0] - base[0]:+.2f} / "
                f"{m[1] - base[1]:+.4f} | {m[0] - base[0] - gain:+.2f} |"
            )
        print()
    hard = [r for r in rows if r["severity"] == "hard"]
    if hard:
        names = ["input", *labels] + (["PPFN"] if all("PPFN" in r["scores"] for r in hard) else [])
        print("#### `hard`, per image (PSNR dB / SSIM)\n")
        print("| image | " + " | ".join(names) + " |")
        print("|---|" + "---:|" * len(names))
        for r in hard:
            cells = [f"{r['scores'][n][0]:.2f} / {r['scores'][n][1]:.4f}" for n in names]
            print(f"| {r['image']} | " + " | ".join(cells) + " |")
        print()


def print_breakdown(rows: list[dict], labels: list[str]) -> None:
    print("### What each output still holds (means over the pairs)\n")
    for severity in SEVERITIES:
        items = [r for r in rows if r["severity"] == severity and r["left"]]
        if not items:
            continue
        names = ["input", *labels] + (["PPFN"] if all("PPFN" in r["left"] for r in items) else [])
        print(
            f"#### `{severity}` ({len(items)} pairs): the fit of each output to the clean "
            "image; stripes: RMS of the residual's profile in the input's stripe orientation "
            "(its white-noise floor), grey levels\n"
        )
        print("| output | a | b | blur sigma | stripes (floor) |")
        print("|---|---:|---:|---:|---:|")
        for name in names:
            m = {k: _mean(items, "left", name, k) for k in ("a", "b", "sigma", "stripes", "floor")}
            print(
                f"| {name} | {m['a']:.3f} | {m['b']:.1f} | {m['sigma']:.2f} | "
                f"{m['stripes']:.2f} ({m['floor']:.2f}) |"
            )
        print(
            f"\n#### `{severity}`: the error by part, RMS in grey levels (in brackets: the "
            "PSNR gained by taking that part alone out, dB)\n"
        )
        print("| output | PSNR | error RMS | " + " | ".join(PARTS.values()) + " |")
        print("|---|---:|---:|" + "---:|" * len(PARTS))
        for name in names:
            base = _mean(items, "left", name, "psnr")
            cells = []
            for part in PARTS:
                rms, without = np.mean([r["left"][name]["parts"][part] for r in items], axis=0)
                cells.append(f"{rms:.1f} ({without - base:+.2f})")
            rms = _mean(items, "left", name, "rms")
            print(f"| {name} | {base:.2f} | {rms:.1f} | " + " | ".join(cells) + " |")
        print()


def procedural(restorer: Restorer, config, sizes, frames: int, task: str = "CBN") -> list[dict]:
    """The same breakdown for `task` in one pass on `frames` procedural scenes of the
    model's own style and degradation preset (`config`) per size: whether what the real
    pairs keep is kept on the model's own kind of frames too."""
    rows = []
    for size in sizes:
        for i in range(frames):
            clean = thermal_scene(size, mix_seed(_SCENE_SEED, 0, i), style=config.scene_style)
            g = torch.Generator().manual_seed(mix_seed(_SCENE_SEED, 1, i))
            degraded = quantize(degrade(clean, task, g, preset=config.degradation_preset))
            restored = restorer(degraded[None], task=task)[0]
            stripes = residual(clean[0], degraded[0])[2].stripes
            left = {
                k: breakdown(clean[0], v[0], stripes)
                for k, v in (("input", degraded), (task, restored))
            }
            rows.append({"size": tuple(size), "left": left})
    return rows


def print_procedural(rows: list[dict], config, task: str = "CBN") -> None:
    print(
        f"### {task} in one pass on procedural frames ({config.scene_style} scenes, "
        f"{config.degradation_preset} {task}; means; the error by part as above)\n"
    )
    print("| frames | output | PSNR | a | error RMS | " + " | ".join(PARTS.values()) + " |")
    print("|---|---|---:|---:|---:|" + "---:|" * len(PARTS))
    for size in dict.fromkeys(r["size"] for r in rows):
        items = [r for r in rows if r["size"] == size]
        for name in ("input", task):
            base = _mean(items, "left", name, "psnr")
            cells = []
            for part in PARTS:
                rms, without = np.mean([r["left"][name]["parts"][part] for r in items], axis=0)
                cells.append(f"{rms:.1f} ({without - base:+.2f})")
            print(
                f"| {len(items)} x {size[1]} x {size[0]} | {name} | {base:.2f} | "
                f"{_mean(items, 'left', name, 'a'):.3f} | "
                f"{_mean(items, 'left', name, 'rms'):.1f} | " + " | ".join(cells) + " |"
            )
    print()


def figure(restorer: Restorer, folder: Path, name: str, chains, path: Path) -> None:
    """One image through the chains: whole above a crop at full resolution, and below the
    striped profile each output leaves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    severity, stem = name.split("/")
    degraded = read_image(folder / severity / f"{stem}.png")[None]
    clean = read_image(folder / "imgs" / f"{stem}.png")[None]
    panels = {"input": degraded, **run_chains(restorer, degraded, chains), "clean": clean}
    stripes = residual(clean[0, 0], degraded[0, 0])[2].stripes
    h, w = clean.shape[-2:]
    top, left = h // 4, w // 3
    fig, axes = plt.subplots(
        3, len(panels), figsize=(1.9 * len(panels), 4.8), height_ratios=[1, 1, 0.6]
    )
    for column, (label, img) in enumerate(panels.items()):
        title = label
        if label != "clean":
            p, s = scores(img, clean)
            title = f"{title}\n{p:.2f} dB, SSIM {s:.3f}"
        axes[0, column].imshow(img[0, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[0, column].set_title(title, fontsize=8)
        crop = img[0, 0, top : top + h // 2, left : left + w // 2]
        axes[1, column].imshow(crop.numpy(), cmap="gray", vmin=0, vmax=1)
        for ax in axes[:2, column]:
            ax.axis("off")
        ax = axes[2, column]
        if label == "clean":
            ax.axis("off")
            continue
        left_ = breakdown(clean[0, 0], img[0, 0], stripes)
        ax.plot((left_["profile"] * 255).numpy(), lw=0.5)
        ax.set_title(f"{stripes} profile left, RMS {left_['stripes']:.1f}", fontsize=7)
        ax.set_ylim(-25, 25)
        ax.tick_params(labelsize=6)
    save_figure(fig, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="run folder, checkpoint or weights file (default: built-in)")
    p.add_argument(
        "--chains", default=",".join(DEFAULT_CHAINS), help="comma-separated, tasks joined by >"
    )
    p.add_argument("--examples", type=Path, default=EXAMPLES, help="HM-TIR example folder")
    p.add_argument("--figure", type=Path, help="write the chains' figure here (PNG)")
    p.add_argument("--figure-image", default="hard/Villa", help="severity/name of it")
    p.add_argument(
        "--no-breakdown", action="store_true", help="scores only, no residual fits (fast)"
    )
    p.add_argument(
        "--procedural",
        type=int,
        default=0,
        metavar="N",
        help="also break down CBN on N procedural frames at the run's and the real frame size",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    restorer = sepkit_torch.load(args.model)
    try:
        chains = parse_chains(args.chains, restorer.tasks)
    except ValueError as e:
        p.error(str(e))
    print(f"Model: {restorer.source}.\n")
    if not (args.examples / "hard").is_dir():
        print(f"(no real examples: {args.examples} is absent)")
        return 0
    rows = measure(restorer, args.examples, chains, breakdowns=not args.no_breakdown)
    print_scores(rows, list(chains))
    if not args.no_breakdown:
        print_breakdown(rows, list(chains))
    if args.figure:
        figure(restorer, args.examples, args.figure_image, chains, args.figure)
    if args.procedural > 0:
        config = settings(args.model)
        real = tuple(read_image(next((args.examples / "imgs").glob("*.png"))).shape[-2:])
        own = [tuple(config.frame_size)] if config.frame_size else []
        sizes = list(dict.fromkeys([*own, real]))
        print_procedural(procedural(restorer, config, sizes, args.procedural), config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
