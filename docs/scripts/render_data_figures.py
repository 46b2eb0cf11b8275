"""Render the figures of docs/data.md into docs/images/.

    OMP_NUM_THREADS=1 .venv/bin/python docs/scripts/render_data_figures.py

- ``degradations.png``: each degradation on a crop of a real HM-TIR example image (read from
  ``../shared/data/hm-tir-examples`` relative to the repository root, or ``--examples``),
  with the published ``hard`` version of the same crop for comparison;
- ``scenes.png``: the five real clean examples (top) above five procedural scenes of each
  style, ``soft`` and ``detailed``;
- ``scene_statistics.png``: the distributions behind the domain-gap table of
  ``docs/data.md`` (gradient magnitudes, radially averaged power spectra, grey levels) for
  the real clean examples and 16 scenes of each style (needs matplotlib);
- ``matched_degradations.png``: a real ``normal`` and ``hard`` pair beside our CBN with the
  parameters that ``estimate_degradation`` fits to each.

Needs Pillow (and matplotlib for the statistics). Without the example folder, the real
tiles are replaced by a procedural scene and the figure says so, and the figures that
need real images are not drawn. The example images themselves are never copied.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from sepkit_torch.data import (
    SCENE_STYLES,
    dead_hot_pixels,
    degrade,
    gaussian_noise,
    get_degradation,
    optical_nonuniformity,
    read_image,
    stripe_noise,
    thermal_scene,
    thermal_scenes,
    vignetting,
)
from sepkit_torch.data.estimation import estimate_degradation
from sepkit_torch.data.statistics import (
    gradient_magnitudes,
    intensity_histogram,
    radial_power_spectrum,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO.parent / "shared" / "data" / "hm-tir-examples"
NAMES = ("Bridge", "Leaning_Tower", "Tower", "Two_Skyscrapers", "Villa")
LABEL = 16  # pixels of caption above each tile


def to_pil(image: torch.Tensor) -> Image.Image:
    arr = (image.squeeze().clamp(0, 1).double().numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(arr)


def grid(tiles: list[tuple[str, Image.Image]], columns: int) -> Image.Image:
    w, h = tiles[0][1].size
    rows = -(-len(tiles) // columns)
    sheet = Image.new("L", (columns * w + (columns - 1) * 4, rows * (h + LABEL + 4)), 255)
    draw = ImageDraw.Draw(sheet)
    for k, (caption, tile) in enumerate(tiles):
        x, y = (k % columns) * (w + 4), (k // columns) * (h + LABEL + 4)
        draw.text((x + 2, y + 2), caption, fill=0)
        sheet.paste(tile, (x, y + LABEL))
    return sheet


def degradations_figure(examples: Path | None) -> Image.Image:
    window = (slice(120, 320), slice(150, 406))  # 200 x 256 crop, at full resolution
    if examples is not None:
        clean = read_image(examples / "imgs" / "Villa.png")[:, window[0], window[1]]
        hard = read_image(examples / "hard" / "Villa.png")[:, window[0], window[1]]
        source = "HM-TIR example 'Villa'"
    else:
        clean, hard, source = thermal_scene((200, 256), 0), None, "procedural scene (no examples)"
    n_kwargs = get_degradation("N").kwargs("ecmrnet")
    tiles = [
        (f"clean: {source}", clean),
        ("C low contrast", degrade(clean, "C", 1)),
        ("B blur", degrade(clean, "B", 1)),
        ("D dead/hot pixels (x10)", dead_hot_pixels(clean, 1, dead=0.02, hot=0.01)),
        ("N part 1: optical non-unif.", optical_nonuniformity(clean, 1, delta=n_kwargs["delta"])),
        ("N part 2: stripes", stripe_noise(clean, 1, gain_std=n_kwargs["gain_std"])),
        ("N part 3: white Gaussian", gaussian_noise(clean, 1, sigma=n_kwargs["sigma"])),
        ("N TIR noise (all three)", degrade(clean, "N", 1)),
        ("V vignetting (extra op)", vignetting(clean, 1)),
        ("CBN (ecmrnet preset)", degrade(clean, "CBN", 1)),
        ("CBN (ppfn preset)", degrade(clean, "CBN", 1, preset="ppfn")),
    ]
    if hard is not None:
        tiles.append(("published 'hard' (PPFN)", hard))
    return grid([(c, to_pil(t)) for c, t in tiles], columns=4)


def scenes_figure(examples: Path | None) -> Image.Image:
    size = (128, 160)
    tiles = []
    if examples is not None:
        for name in NAMES:
            real = read_image(examples / "imgs" / f"{name}.png")
            small = torch.nn.functional.interpolate(real[None], size=size, mode="area")[0]
            tiles.append((f"real: {name}", to_pil(small)))
    for style in SCENE_STYLES:
        for seed in range(5):
            scene = thermal_scene((4 * size[0], 4 * size[1]), seed, style=style)
            small = torch.nn.functional.interpolate(scene[None], size=size, mode="area")[0]
            tiles.append((f"{style}, seed {seed}", to_pil(small)))
    return grid(tiles, columns=5)


def statistics_figure(examples: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    real = torch.stack([read_image(examples / "imgs" / f"{n}.png") for n in NAMES])
    sets = {"real (HM-TIR clean)": real}
    for style in SCENE_STYLES:
        sets[style] = thermal_scenes(16, tuple(real.shape[-2:]), seed=0, style=style)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    edges = torch.logspace(-2, 2.5, 60, dtype=torch.float64)
    for (label, images), colour in zip(
        sets.items(), ("black", "tab:orange", "tab:blue"), strict=True
    ):
        g = gradient_magnitudes(images)
        share = torch.tensor([float((g >= e).double().mean()) for e in edges])
        axes[0].loglog(edges, share, color=colour, label=label)
        f, p = radial_power_spectrum(images, bins=128)
        axes[1].loglog(f[1:], p[1:], color=colour, label=label)
        hist = intensity_histogram(images, bins=64)
        axes[2].plot(torch.linspace(2, 254, 64), hist, color=colour, label=label)
    axes[0].set(
        xlabel="gradient magnitude (grey levels / px)",
        ylabel="share of pixels above",
        title="gradient magnitudes",
        ylim=(1e-4, 1.1),
    )
    axes[1].set(xlabel="frequency (cycles / px)", ylabel="power", title="radially averaged power")
    for x in (1 / 64, 1 / 4):
        axes[1].axvline(x, color="grey", lw=0.6, ls=":")
    axes[2].set(xlabel="grey level", ylabel="share of pixels", title="grey levels")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def matched_figure(examples: Path) -> Image.Image:
    window = (slice(100, 356), slice(300, 620))
    name = "Villa"
    clean = read_image(examples / "imgs" / f"{name}.png")
    tiles = [("clean", clean)]
    for severity in ("normal", "hard"):
        real = read_image(examples / severity / f"{name}.png")
        fitted = estimate_degradation(clean, real, "CBN").parameters
        g = torch.Generator().manual_seed(0)
        ours = clean
        for letter in "CBN":
            ours = get_degradation(letter).fn(ours, g, **fitted[letter])
        tiles += [(f"published '{severity}'", real), (f"ours, fitted to '{severity}'", ours)]
    return grid([(c, to_pil(t[:, window[0], window[1]])) for c, t in tiles], columns=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=Path, default=EXAMPLES)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    args = parser.parse_args()
    torch.set_num_threads(1)
    examples = args.examples if (args.examples / "imgs").is_dir() else None
    args.out.mkdir(parents=True, exist_ok=True)
    figures = [
        ("degradations.png", degradations_figure(examples)),
        ("scenes.png", scenes_figure(examples)),
    ]
    if examples is not None:
        figures.append(("matched_degradations.png", matched_figure(examples)))
        statistics_figure(examples, args.out / "scene_statistics.png")
        print(f"wrote {args.out / 'scene_statistics.png'}")
    for name, figure in figures:
        figure.save(args.out / name, optimize=True)
        print(f"wrote {args.out / name} ({(args.out / name).stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
