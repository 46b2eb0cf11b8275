"""Degradations: determinism, ranges of outputs and parameters, composition, the registry."""

from __future__ import annotations

import pytest
import torch

from sepkit_torch import InvalidInputError, UnknownTaskError
from sepkit_torch.data import (
    APPENDIX_TASKS,
    DEGRADATION_PRESETS,
    PAPER_TASKS,
    UnknownDegradationError,
    dead_hot_pixels,
    degrade,
    gaussian_blur,
    gaussian_noise,
    get_degradation,
    list_degradations,
    list_tasks,
    low_contrast,
    optical_nonuniformity,
    parse_task,
    quantize,
    register_degradation,
    stripe_noise,
    tir_noise,
    unregister_degradation,
    vignetting,
)
from sepkit_torch.data.registry import HMTIR_FITTED
from sepkit_torch.data.statistics import line_spectra

from .conftest import images

OPS = [
    low_contrast,
    gaussian_blur,
    optical_nonuniformity,
    stripe_noise,
    gaussian_noise,
    tir_noise,
    dead_hot_pixels,
    vignetting,
]
X = images(3, 1, 24, 20)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("op", OPS, ids=lambda f: f.__name__)
def test_same_generator_same_output_and_range(op):
    a, b = op(X, gen(5)), op(X, gen(5))
    assert torch.equal(a, b)
    assert not torch.equal(a, op(X, gen(6)))
    assert a.shape == X.shape and a.dtype == X.dtype
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert torch.equal(op(X, 5), a)  # an int seed is a fresh generator


@pytest.mark.parametrize(
    "op", [op for op in OPS if op is not tir_noise], ids=lambda f: f.__name__
)  # tir_noise runs each of its parts over the whole batch in turn
def test_batch_is_the_images_in_turn(op):
    g = gen(1)
    singles = [op(X[i, 0], g) for i in range(len(X))]  # (H, W) each
    assert torch.equal(op(X, gen(1)), torch.stack(singles)[:, None])
    assert op(X[0], gen(1)).shape == (1, 24, 20)
    assert op(X.double(), gen(1)).dtype == torch.float64


def test_low_contrast_parameters_within_range():
    x = torch.zeros(400, 1, 1, 2)
    x[..., 1] = 1.0
    for preset, (a_lo, a_hi, b_lo, b_hi) in {
        "ecmrnet": (0.2, 0.6, 25.5, 51.0),
        "ppfn": (0.2, 0.8, 51.0, 102.0),
    }.items():
        y = get_degradation("C")(x, gen(0), preset=preset).double() * 255
        b = y[..., 0].flatten()
        a = (y[..., 1].flatten() - b) / 255
        assert b.min() >= b_lo - 1e-3 and b.max() <= b_hi + 1e-3
        assert a.min() >= a_lo - 1e-6 and a.max() <= a_hi + 1e-6
        # The draws fill the range: both ends within 5% of it.
        assert b.min() < b_lo + 0.05 * (b_hi - b_lo) and b.max() > b_hi - 0.05 * (b_hi - b_lo)
        assert a.min() < a_lo + 0.05 * (a_hi - a_lo) and a.max() > a_hi - 0.05 * (a_hi - a_lo)


@pytest.mark.parametrize("preset, sizes", [("ecmrnet", (7, 17)), ("ppfn", (7, 23))])
def test_blur_kernel_sizes_and_mass(preset, sizes):
    impulse = torch.zeros(150, 1, 41, 41, dtype=torch.float64)
    impulse[..., 20, 20] = 1.0
    y = get_degradation("B")(impulse, gen(0), preset=preset)
    support = (y[:, 0, 20, :] > 0).sum(dim=-1)  # the kernel's length
    assert set(support.tolist()) == set(range(sizes[0], sizes[1] + 1, 2))
    torch.testing.assert_close(y.sum(dim=(1, 2, 3)), torch.ones(150, dtype=torch.float64))
    # Second moment of the separable response = that of the truncated kernel <= sigma_max^2.
    t = torch.arange(41, dtype=torch.float64) - 20
    var = (y[:, 0, 20, :] / y[:, 0, 20, :].sum(-1, keepdim=True) * t**2).sum(-1)
    assert float(var.max()) <= {"ecmrnet": 4.0, "ppfn": 9.0}[preset]
    assert float(var.min()) >= 0.5


def test_blur_border_is_reflect_101_and_works_on_tiny_images():
    x = images(1, 1, 5, 4, seed=3).double()
    y = gaussian_blur(x, gen(0), kernel_size=17, sigma=2.0)  # padding wider than the image
    assert y.shape == x.shape
    k = torch.exp(-((torch.arange(3, dtype=torch.float64) - 1) ** 2) / 2)
    k /= k.sum()
    manual = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")  # torch's = OpenCV's 101
    manual = torch.nn.functional.conv2d(manual, (k[:, None] * k[None, :])[None, None])
    torch.testing.assert_close(gaussian_blur(x, gen(0), kernel_size=3, sigma=1.0), manual)


def test_optical_nonuniformity_amplitude_is_delta():
    y = optical_nonuniformity(torch.zeros(300, 1, 12, 16), gen(0))
    peaks = torch.round(y.amax(dim=(1, 2, 3)) * 255)
    assert set(peaks.tolist()) <= set(range(15, 56)) and {15.0, 55.0} <= set(peaks.tolist())
    # Both the bump and its complement occur: the peak is at the centre or at a far corner.
    at_corner = (y[:, 0, [0, 0, -1, -1], [0, -1, 0, -1]].amax(-1) * 255).round() == peaks
    assert 0 < int(at_corner.sum()) < 300


def test_stripe_noise_orientation_and_gain_spread():
    x = torch.full((200, 1, 64, 64), 0.5, dtype=torch.float64)
    y = stripe_noise(x, gen(0), offset_std=0.0)
    per_column = (y == y[:, :, :1, :]).flatten(1).all(-1)
    per_row = (y == y[:, :, :, :1]).flatten(1).all(-1)
    assert bool((per_column ^ per_row).all()) and 60 < int(per_column.sum()) < 140
    gains = (y - 0.5) / 0.5
    std = torch.where(per_column, gains[:, 0, 0, :].std(-1), gains[:, 0, :, 0].std(-1))
    assert 0.018 < float(std.min()) and float(std.max()) < 0.095  # s_g in [0.03, 0.07]


@pytest.mark.parametrize("preset, bounds", [("ecmrnet", (5, 15)), ("ppfn", (5, 20))])
def test_white_noise_sigma_within_range(preset, bounds):
    kwargs = get_degradation("N").kwargs(preset)
    y = gaussian_noise(torch.full((60, 1, 96, 96), 0.5), gen(0), sigma=kwargs["sigma"])
    std = (y - 0.5).flatten(1).std(-1) * 255
    assert float(std.min()) > bounds[0] * 0.93 and float(std.max()) < bounds[1] * 1.07
    assert float(std.min()) < bounds[0] + 1 and float(std.max()) > bounds[1] - 1


def test_dead_and_hot_pixel_fractions():
    y = dead_hot_pixels(torch.full((4, 1, 250, 250), 0.5), gen(0))
    n = y[0].numel()
    dead = (y == 0).flatten(1).sum(-1).double() / n
    hot = (y == 1).flatten(1).sum(-1).double() / n
    assert bool(((dead - 0.002).abs() < 0.0006).all()) and bool(
        ((hot - 0.001).abs() < 0.0005).all()
    )
    assert int(((y != 0) & (y != 1) & (y != 0.5)).sum()) == 0


def test_vignetting_darkens_towards_the_corners():
    y = vignetting(torch.ones(50, 1, 33, 33), gen(0))
    assert float(y[:, :, 16, 16].min()) > 0.99
    corners = y[:, 0, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert float(corners.min()) >= 1 - 0.48 - 1e-6 and float(corners.max()) < 0.9


def test_tir_noise_is_its_three_parts():
    g = gen(2)
    parts = gaussian_noise(stripe_noise(optical_nonuniformity(X, g), g), g)
    assert torch.equal(tir_noise(X, gen(2)), parts)


@pytest.mark.parametrize("preset", DEGRADATION_PRESETS)
def test_compound_is_the_composition_in_canonical_order(preset):
    g = gen(9)
    y = X
    for name in ("C", "B", "N", "D"):
        y = get_degradation(name)(y, g, preset=preset)
    assert torch.equal(degrade(X, "CBND", gen(9), preset=preset), y)
    assert parse_task("CBND") == ("C", "B", "N", "D")


def test_presets_differ_where_the_table_differs():
    assert get_degradation("N").kwargs("ppfn")["delta"] == (15, 75)
    assert get_degradation("B").kwargs("ppfn")["kernel_size"] == (7, 23)
    assert get_degradation("D").kwargs("ppfn") == get_degradation("D").kwargs("ecmrnet")
    assert not torch.equal(degrade(X, "C", 0), degrade(X, "C", 0, preset="ppfn"))


def test_broad_preset_spans_both_published_ones():
    for name in ("C", "B", "N"):
        ecmrnet, ppfn = (get_degradation(name).kwargs(p) for p in ("ecmrnet", "ppfn"))
        for key, (lo, hi) in get_degradation(name).kwargs("broad").items():
            assert lo == min(ecmrnet[key][0], ppfn[key][0])
            assert hi == max(ecmrnet[key][1], ppfn[key][1])
    assert get_degradation("C").kwargs("broad") == {
        "contrast": (0.2, 0.8),
        "brightness": (25.5, 102.0),
    }
    assert get_degradation("D").kwargs("broad") == get_degradation("D").kwargs("ecmrnet")


def test_hmtir_preset_is_broad_widened_to_the_fitted_pairs():
    for name in ("C", "B", "N", "D"):
        broad, hmtir = (get_degradation(name).kwargs(p) for p in ("broad", "hmtir"))
        fitted = HMTIR_FITTED.get(name, {})
        assert hmtir.keys() == broad.keys() and set(fitted) <= set(hmtir)
        for key, value in hmtir.items():
            if key not in fitted:
                assert value == broad[key]
                continue
            (lo, hi), (b_lo, b_hi), (f_lo, f_hi) = value, broad[key], fitted[key]
            assert lo <= min(b_lo, f_lo) and hi >= max(b_hi, f_hi)  # holds both
            assert lo in (b_lo, f_lo) and hi in (b_hi, f_hi)  # and nothing more
    # The decision of docs/data.md: the strongest fitted stripe gains lie outside broad.
    assert HMTIR_FITTED["N"]["gain_std"][1] > get_degradation("N").kwargs("broad")["gain_std"][1]


def test_hmtir_stripe_gains_span_their_range():
    lo, hi = get_degradation("N").kwargs("hmtir")["gain_std"]
    x = torch.full((300, 1, 128, 128), 0.5, dtype=torch.float64)
    y = stripe_noise(x, gen(0), gain_std=(lo, hi), offset_std=0.0)
    gains = (y - 0.5) / 0.5
    s = line_spectra(gains / 255)  # one image at a time would do: each is one orientation
    per_column = (y == y[:, :, :1, :]).flatten(1).all(-1)
    std = torch.where(per_column, gains[:, 0, 0, :].std(-1), gains[:, 0, :, 0].std(-1))
    # 128 gains per image: their spread is within 4 x 6.3% of s_g ~ U[lo, hi].
    assert float(std.max()) > hi - 0.2 * (hi - lo) and float(std.max()) < 1.25 * hi
    assert float(std.min()) < lo + 0.2 * (hi - lo) and float(std.min()) > 0.75 * lo
    assert abs(float(std.mean()) - (lo + hi) / 2) < 0.006  # 300 draws: sd of the mean 0.0016
    assert s.column_std > 0 and s.row_std > 0  # both orientations occur over the batch


def test_line_spectra_measure_stripes_and_white_noise():
    g = gen(0)
    offsets = torch.randn(1, 1, 1, 256, generator=g, dtype=torch.float64) * 6.0
    stripes = line_spectra(offsets.expand(1, 1, 64, 256) / 255)
    assert stripes.column_std == pytest.approx(float(offsets.std(correction=0)), rel=1e-9)
    assert stripes.row_std < 1e-9 and float(stripes.rows.abs().max()) < 1e-18
    assert stripes.columns.shape == (128,) and float(stripes.column_frequencies[-1]) == 0.5
    # Parseval: over all 256 bins (k and -k alike, k = 0 and 128 once) the mean power is the
    # profile's variance.
    full = torch.cat([stripes.columns[:-1], stripes.columns[:-1], stripes.columns[-1:]])
    assert float(full.sum()) / 256 == pytest.approx(stripes.column_std**2, rel=1e-9)

    noise = torch.randn(32, 1, 64, 128, generator=g, dtype=torch.float64) * 10.0
    white = line_spectra(noise / 255)
    for power, n in ((white.columns, 64), (white.rows, 128)):
        # flat at sigma^2 / n: each half of the band is a mean of >= 1000 exponential-like
        # values (sd 3%), so 15% is five sd
        low, high = power[: len(power) // 2].mean(), power[len(power) // 2 :].mean()
        assert float(low) == pytest.approx(100.0 / n, rel=0.15)
        assert float(high) == pytest.approx(100.0 / n, rel=0.15)

    wave = torch.cos(2 * torch.pi * 3 * torch.arange(96, dtype=torch.float64) / 96)
    low_frequency = line_spectra(wave.expand(40, 96) / 255)
    assert int(low_frequency.columns.argmax()) == 2  # k = 3: bins start at k = 1
    assert float(low_frequency.columns[2]) > 0.99 * float(low_frequency.columns.sum())


def test_line_spectra_mask_leaves_out_pixels():
    ramp = torch.linspace(0, 1, 40, dtype=torch.float64).expand(30, 40)
    keep = torch.ones(30, 40, dtype=torch.bool)
    keep[5:9, 3:20] = False
    x = ramp.clone()
    x[~keep] = 1.0  # clipped pixels, left out
    masked, clean = line_spectra(x, keep), line_spectra(ramp)
    assert masked.column_std == pytest.approx(clean.column_std, rel=1e-12)
    assert line_spectra(x).column_std != pytest.approx(clean.column_std, rel=1e-3)
    with pytest.raises(TypeError, match="`mask` must be a boolean tensor; got dtype torch.float64"):
        line_spectra(x, keep.double())
    with pytest.raises(
        InvalidInputError, match=r"broadcast to the images' shape \(1, 30, 40\); got shape \(3, 4\)"
    ):
        line_spectra(x, keep[:3, :4])
    with pytest.raises(InvalidInputError, match=r"`images` must be at least 2 x 2; got \(1, 40\)"):
        line_spectra(x[:1])


def test_paper_tasks_parse():
    for task in PAPER_TASKS + APPENDIX_TASKS:
        assert degrade(X, task, 0).shape == X.shape
    assert list_degradations() == ("C", "B", "N", "D")
    assert len(list_tasks()) == 15 and set(PAPER_TASKS) <= set(list_tasks())


def test_quantize():
    assert torch.equal(quantize(torch.tensor([0.5, 1.2, -0.1])), torch.tensor([128 / 255, 1, 0]))
    with pytest.raises(InvalidInputError, match=r"`bits` must be an int in 1..16; got 0"):
        quantize(X, bits=0)


@pytest.fixture
def registered():
    names = []

    def register(name, fn, **kwargs):
        names.append(name)
        return register_degradation(name, fn, **kwargs)

    yield register
    for name in names:
        unregister_degradation(name)


def test_registered_degradation_composes(registered):
    registered("V", vignetting, description="vignetting")
    assert list_degradations() == ("C", "B", "N", "D", "V")
    assert "CV" in list_tasks(2) and "CBNDV" in list_tasks()
    g = gen(4)
    expected = vignetting(low_contrast(X, g), g)
    assert torch.equal(degrade(X, "CV", gen(4)), expected)


def test_registered_order_and_long_names(registered):
    registered(
        "haze",
        lambda x, g, amount=0.1: (x + amount).clamp(0, 1),
        order=25,
        presets={"ecmrnet": {"amount": 0.2}, "fog": {"amount": 0.5}},
    )
    assert list_degradations() == ("C", "B", "haze", "N", "D")
    assert parse_task("C+B+haze") == ("C", "B", "haze") and parse_task("haze") == ("haze",)
    assert "C+haze" in list_tasks(2)
    y = degrade(torch.zeros(4, 4), "haze", 0, preset="fog")  # a preset of its own
    assert torch.allclose(y, torch.full((4, 4), 0.5))
    with pytest.raises(InvalidInputError, match=r"canonical order .*write 'B\+haze'"):
        parse_task("haze+B")


def test_registry_errors(registered):
    with pytest.raises(InvalidInputError, match="'C' is already registered; pass replace=True"):
        register_degradation("C", low_contrast)
    with pytest.raises(InvalidInputError, match="`name` 'CB' would read as the compound"):
        register_degradation("CB", low_contrast)
    with pytest.raises(InvalidInputError, match="`order` 20.0 is taken by 'B'"):
        register_degradation("Z", low_contrast, order=20.0)
    with pytest.raises(TypeError, match="`fn` must be callable; got int"):
        register_degradation("Z", 3)
    with pytest.raises(InvalidInputError, match="`name` must be a non-empty string"):
        register_degradation("a+b", low_contrast)
    registered("W", lambda x, g: x[..., :1])
    with pytest.raises(InvalidInputError, match=r"degradation 'W' must return a tensor of the"):
        degrade(X, "W", 0)


def test_unknown_names_list_the_known_ones():
    with pytest.raises(UnknownDegradationError, match=r"unknown degradation\(s\) 'X'.*'C', 'B'"):
        parse_task("CX")
    with pytest.raises(UnknownTaskError, match="known: 'C', 'B', 'N', 'D'"):  # also this
        degrade(X, "Q", 0)
    with pytest.raises(ValueError, match="got 'Q'"):
        get_degradation("Q")
    with pytest.raises(InvalidInputError, match=r"`task` 'BC' must list .*write 'CB'"):
        parse_task("BC")
    with pytest.raises(InvalidInputError, match="`task` 'CC' repeats a degradation"):
        parse_task("CC")
    with pytest.raises(
        InvalidInputError, match=r"`preset` must be one of \['broad', 'ecmrnet', 'hmtir', 'ppfn'\]"
    ):
        degrade(X, "C", 0, preset="harsh")


def test_bad_images_and_arguments():
    with pytest.raises(TypeError, match="floating-point tensor .* got dtype torch.uint8"):
        low_contrast(torch.zeros(4, 4, dtype=torch.uint8), 0)
    with pytest.raises(InvalidInputError, match=r"single-channel .* got shape \(2, 3, 4, 4\)"):
        low_contrast(torch.zeros(2, 3, 4, 4), 0)
    with pytest.raises(TypeError, match="`generator` must be a torch.Generator or an int"):
        low_contrast(X, None)
    with pytest.raises(InvalidInputError, match=r"`contrast` must be .*got \(0.6, 0.2\)"):
        low_contrast(X, 0, contrast=(0.6, 0.2))
    with pytest.raises(InvalidInputError, match="`kernel_size` must be an odd int"):
        gaussian_blur(X, 0, kernel_size=(6, 10))
    with pytest.raises(TypeError, match="`task` must be a string"):
        degrade(X, None, 0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_same_output_on_gpu():
    for task in ("C", "N", "D", "CBND"):
        cpu = degrade(X, task, 3)
        gpu = degrade(X.cuda(), task, 3).cpu()
        if "B" in task:
            torch.testing.assert_close(gpu, cpu, atol=1e-6, rtol=0)
        else:
            assert torch.equal(gpu, cpu)
