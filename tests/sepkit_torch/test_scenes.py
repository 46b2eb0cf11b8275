"""Procedural scenes of both styles, and the statistics that compare them with real images."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from sepkit_torch import InvalidInputError
from sepkit_torch.data import (
    SCENE_STYLES,
    SyntheticThermalDataset,
    make_dataset,
    read_image,
    thermal_scene,
    thermal_scenes,
)
from sepkit_torch.data.shapes import power_law_field
from sepkit_torch.data.statistics import (
    gradient_magnitudes,
    intensity_histogram,
    radial_power_spectrum,
    scene_statistics,
    spectrum_slope,
    wasserstein_1d,
)

EXAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "hm-tir-examples"


@pytest.mark.parametrize("style", SCENE_STYLES)
@pytest.mark.parametrize("size", [8, (13, 37), (96, 80)])
def test_scenes_are_seeded_images_of_any_size(style, size):
    x = thermal_scene(size, 5, style=style)
    h, w = (size, size) if isinstance(size, int) else size
    assert x.shape == (1, h, w) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0 and not bool(x.isnan().any())
    assert torch.equal(x, thermal_scene(size, torch.Generator().manual_seed(5), style=style))
    assert not torch.equal(x, thermal_scene(size, 6, style=style))


def test_styles_differ_and_are_checked():
    assert not torch.equal(thermal_scene(32, 0), thermal_scene(32, 0, style="detailed"))
    assert torch.equal(
        thermal_scenes(2, 32, seed=1, style="detailed")[1],
        thermal_scene(32, thermal_seed(1, 1), style="detailed"),
    )
    with pytest.raises(
        InvalidInputError, match=r"`style` must be one of \['soft', 'detailed'\]; got 'x'"
    ):
        thermal_scene(32, 0, style="x")
    with pytest.raises(InvalidInputError, match="`style` must be one of"):
        thermal_scenes(2, 32, style="blobs")


def thermal_seed(seed: int, i: int) -> int:
    from sepkit_torch.data.sampling import mix_seed

    return mix_seed(seed, i)


def test_dataset_draws_its_frames_in_the_chosen_style(tmp_path):
    soft = SyntheticThermalDataset("N", length=2, size=40)
    detailed = SyntheticThermalDataset("N", length=2, size=40, style="detailed")
    assert soft.style == "soft" and not torch.equal(soft[0][1], detailed[0][1])
    assert torch.equal(
        make_dataset(None, "N", crop_size=40, length=2, style="detailed")[1][1], detailed[1][1]
    )
    with pytest.raises(InvalidInputError, match="`style` chooses the generator of procedural"):
        make_dataset(tmp_path, "N", style="detailed")


def test_detailed_scenes_have_the_spectrum_and_edges_of_natural_images():
    # The property the style exists for (docs/data.md measures it at 512 x 640 against
    # real frames): power falling about as f^-2..-3, and more sharp edges. The soft style
    # falls much faster (measured here: -2.89 against -4.79; 90th gradient percentile
    # 22.5 against 14.2 grey levels per pixel).
    soft = thermal_scenes(3, (128, 160), seed=0)
    detailed = thermal_scenes(3, (128, 160), seed=0, style="detailed")
    assert -3.6 < spectrum_slope(detailed) < -2.0
    assert spectrum_slope(soft) < -4.0
    assert float(torch.quantile(gradient_magnitudes(detailed), 0.9)) > 1.3 * float(
        torch.quantile(gradient_magnitudes(soft), 0.9)
    )


def test_spectrum_slope_recovers_a_power_law():
    g = torch.Generator().manual_seed(0)
    for exponent in (1.0, 2.0, 3.0):
        field = torch.stack([power_law_field(g, 128, 128, exponent) for _ in range(4)])
        images = (0.5 + 0.1 * field)[:, None]
        assert abs(spectrum_slope(images) + exponent) < 0.15


def test_statistics_on_simple_images():
    ramp = (torch.arange(10.0) * 2 / 255).repeat(6, 1)  # 2 grey levels per column
    assert torch.allclose(gradient_magnitudes(ramp), torch.full((4 * 8,), 2.0, dtype=torch.float64))
    flat = torch.full((1, 1, 16, 16), 0.25)
    stats = scene_statistics(flat)
    assert stats.flat_share == 1.0 and math.isnan(stats.spectrum_slope)
    assert stats.intensity_mean == pytest.approx(63.75) and stats.intensity_std == 0.0
    hist = intensity_histogram(torch.tensor([[0.0, 0.5, 1.0, 1.0]]), bins=4)
    assert torch.allclose(hist, torch.tensor([0.25, 0.0, 0.25, 0.5], dtype=torch.float64))
    f, p = radial_power_spectrum(flat, bins=8)
    assert f[0] == pytest.approx(1 / 32) and float(p.abs().max()) < 1e-20
    a = torch.rand(4000, generator=torch.Generator().manual_seed(1))
    assert wasserstein_1d(a, a) == 0.0
    assert wasserstein_1d(a, 2 * a) == pytest.approx(float(a.mean()), abs=0.01)
    with pytest.raises(InvalidInputError, match=r"at least 3 x 3; got \(2, 5\)"):
        gradient_magnitudes(torch.zeros(2, 5))
    with pytest.raises(InvalidInputError, match="`band` must be"):
        spectrum_slope(flat, band=(0.3, 0.1))


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="needs ../shared/data/hm-tir-examples")
def test_detailed_scenes_are_closer_to_real_frames_than_soft_ones():
    real = torch.stack([read_image(p) for p in sorted((EXAMPLES / "imgs").glob("*.png"))[:2]])
    real_gradients = gradient_magnitudes(real)
    size = tuple(real.shape[-2:])
    gaps = {
        style: wasserstein_1d(
            gradient_magnitudes(thermal_scenes(2, size, style=style)), real_gradients
        )
        for style in SCENE_STYLES
    }
    assert gaps["detailed"] < 0.5 * gaps["soft"]
