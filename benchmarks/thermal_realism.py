"""How close the procedural data come to real thermal images and their published degradations.

Prints Markdown tables:

1. the domain gap: gradient magnitudes, the radially averaged power spectrum's slope and
   the grey levels of the real clean HM-TIR examples, of ``soft`` and of ``detailed``
   procedural scenes at the same size (512 x 640), with the 1-D Wasserstein distance of
   each generator's gradient and grey-level distributions to the real ones;
2. the accuracy of :func:`~sepkit_torch.data.estimation.estimate_degradation` on pairs
   made here from the real clean images with known CBN parameters (drawn from the
   ``broad`` preset's ranges);
3. the CBN parameters fitted to each published ``normal`` and ``hard`` pair, and which
   presets' ranges hold them.

The example images are only measured, never used to train anything. Seeded and
deterministic on the CPU; about ten minutes with one thread.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.thermal_realism \\
        [--examples ../shared/data/hm-tir-examples] [--scenes 16] [--trials 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from sepkit_torch.data import (
    SCENE_STYLES,
    get_degradation,
    read_image,
    thermal_scenes,
)
from sepkit_torch.data.estimation import DegradationEstimate, estimate_degradation
from sepkit_torch.data.sampling import randint, uniform
from sepkit_torch.data.statistics import gradient_magnitudes, scene_statistics, wasserstein_1d

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO.parent / "shared" / "data" / "hm-tir-examples"
NAMES = ("Bridge", "Leaning_Tower", "Tower", "Two_Skyscrapers", "Villa")
SEVERITIES = ("normal", "hard")
# (letter, keyword, label): the fitted parameters, in table order.
PARAMETERS = (
    ("C", "contrast", "a"),
    ("C", "brightness", "b"),
    ("B", "kernel_size", "size"),
    ("B", "sigma", "blur sigma"),
    ("N", "delta", "delta"),
    ("N", "gain_std", "s_g"),
    ("N", "offset_std", "s_b"),
    ("N", "sigma", "noise sigma"),
)
PRESETS = ("ecmrnet", "ppfn", "broad")


def domain_gap(real: torch.Tensor, n: int) -> tuple[list[str], dict]:
    size = tuple(real.shape[-2:])
    sets = {"real (5 HM-TIR clean)": real}
    seconds = {}
    for style in SCENE_STYLES:
        start = time.perf_counter()
        sets[f"{style} ({n} scenes)"] = thermal_scenes(n, size, seed=0, style=style)
        seconds[style] = (time.perf_counter() - start) / n
    real_gradients = gradient_magnitudes(real)
    lines = [
        "| images | gradient p50 / p90 / p99 | share < 1 | spectrum slope | grey mean / std "
        "| W1 gradients | W1 grey levels |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    out = {}
    for label, images in sets.items():
        s = scene_statistics(images)
        w_grad = wasserstein_1d(gradient_magnitudes(images), real_gradients)
        w_grey = wasserstein_1d(images * 255, real * 255)
        q = " / ".join(f"{v:.2f}" for v in s.gradient_quantiles)
        lines.append(
            f"| {label} | {q} | {s.flat_share:.2f} | {s.spectrum_slope:.2f} | "
            f"{s.intensity_mean:.1f} / {s.intensity_std:.1f} | {w_grad:.2f} | {w_grey:.1f} |"
        )
        out[label] = {**s.__dict__, "w1_gradients": w_grad, "w1_grey": w_grey}
    slopes = [scene_statistics(x[None]).spectrum_slope for x in real]
    lines.append("")
    lines.append(
        "Real images one by one, spectrum slope: "
        + ", ".join(f"{n} {v:.2f}" for n, v in zip(NAMES, slopes, strict=True))
        + ". Seconds per 512 x 640 scene: "
        + ", ".join(f"{k} {v:.2f}" for k, v in seconds.items())
        + "."
    )
    out["real_slopes"] = slopes
    out["seconds_per_scene"] = seconds
    return lines, out


def draw_parameters(g: torch.Generator) -> dict[str, dict]:
    """Point values of C, B and N drawn from the broad preset's ranges."""
    c, b, n = (get_degradation(x).kwargs("broad") for x in "CBN")
    lo, hi = b["kernel_size"]
    return {
        "C": {k: round(uniform(g, *c[k]), 3) for k in ("contrast", "brightness")},
        "B": {
            "kernel_size": lo + 2 * randint(g, 0, (hi - lo) // 2),
            "sigma": round(uniform(g, *b["sigma"]), 2),
        },
        "N": {
            "delta": randint(g, *n["delta"]),
            "gain_std": round(uniform(g, *n["gain_std"]), 4),
            "offset_std": round(uniform(g, *n["offset_std"]), 2),
            "sigma": round(uniform(g, *n["sigma"]), 2),
        },
    }


def accuracy(clean: list[torch.Tensor], trials: int) -> tuple[list[str], dict]:
    g = torch.Generator().manual_seed(2024)
    errors: dict[str, list[float]] = {label: [] for _, _, label in PARAMETERS}
    seconds = []
    for t in range(trials):
        truth = draw_parameters(g)
        degraded = DegradationEstimate("CBN", truth).degrade(clean[t % len(clean)], t)
        start = time.perf_counter()
        fit = estimate_degradation(clean[t % len(clean)], degraded, "CBN").parameters
        seconds.append(time.perf_counter() - start)
        for letter, key, label in PARAMETERS:
            errors[label].append(abs(fit[letter][key] - truth[letter][key]))
    lines = [
        "| parameter | " + " | ".join(label for _, _, label in PARAMETERS) + " |",
        "|---|" + "---:|" * len(PARAMETERS),
    ]
    for name, reduce in (("median abs. error", torch.median), ("largest abs. error", torch.max)):
        cells = [f"{float(reduce(torch.tensor(errors[label]))):.3g}" for _, _, label in PARAMETERS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"{trials} pairs, {sum(seconds) / len(seconds):.1f} s per fit (512 x 640, one thread)."
    )
    return lines, {"errors": errors, "seconds": seconds}


def within(value, allowed) -> bool:
    lo, hi = (allowed, allowed) if isinstance(allowed, (int, float)) else allowed
    return lo <= value <= hi


def real_pairs(examples: Path) -> tuple[list[str], dict]:
    lines = [
        "| pair | "
        + " | ".join(label for _, _, label in PARAMETERS)
        + " | stripes | outside ecmrnet | outside ppfn | outside broad |",
        "|---|" + "---:|" * len(PARAMETERS) + "---|---|---|---|",
    ]
    out = {}
    for severity in SEVERITIES:
        for name in NAMES:
            clean = read_image(examples / "imgs" / f"{name}.png")
            degraded = read_image(examples / severity / f"{name}.png")
            fit = estimate_degradation(clean, degraded, "CBN")
            cells = [f"{fit.parameters[letter][key]:g}" for letter, key, _ in PARAMETERS]
            outside = {
                preset: [
                    label
                    for letter, key, label in PARAMETERS
                    if not within(
                        fit.parameters[letter][key], get_degradation(letter).kwargs(preset)[key]
                    )
                ]
                for preset in PRESETS
            }
            marks = [", ".join(outside[p]) or "-" for p in PRESETS]
            lines.append(
                f"| {severity}/{name} | "
                + " | ".join(cells)
                + f" | {fit.stripes} | "
                + " | ".join(marks)
                + " |"
            )
            out[f"{severity}/{name}"] = {
                "parameters": fit.parameters,
                "stripes": fit.stripes,
                "centre": fit.centre,
                "outside": outside,
            }
    return lines, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=Path, default=EXAMPLES)
    parser.add_argument("--scenes", type=int, default=16, help="procedural scenes per style")
    parser.add_argument("--trials", type=int, default=10, help="synthetic pairs for the accuracy")
    parser.add_argument("--json", type=Path, help="also write every number here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not (args.examples / "imgs").is_dir():
        parser.error(f"no HM-TIR examples at {args.examples} (pass --examples)")
    clean = [read_image(args.examples / "imgs" / f"{n}.png") for n in NAMES]
    results = {}
    for title, (lines, data) in (
        ("Domain gap (512 x 640)", domain_gap(torch.stack(clean), args.scenes)),
        ("Estimator accuracy on pairs with known parameters", accuracy(clean, args.trials)),
        ("CBN parameters fitted to the published pairs", real_pairs(args.examples)),
    ):
        print(f"### {title}\n")
        print("\n".join(lines) + "\n", flush=True)
        results[title] = data
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
