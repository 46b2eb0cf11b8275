"""PSNR/SSIM against hand values, an independent NumPy/SciPy SSIM, scikit-image and the
HM-TIR example table; the training losses on small crops."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d

from sepkit_torch import InvalidInputError
from sepkit_torch.data import PairedImageFolder, degrade, quantize, read_image, thermal_scene
from sepkit_torch.metrics import (
    LOSSES,
    code_loss,
    gradient_loss,
    l1_loss,
    ms_ssim,
    psnr,
    ssim,
)

from .conftest import images

HM_TIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "hm-tir-examples"
needs_hm_tir = pytest.mark.skipif(
    not HM_TIR.is_dir(),
    reason=f"the HM-TIR example images are not at {HM_TIR} (../shared/data/hm-tir-examples "
    "relative to the repository root)",
)


def reference_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """The design page's definition, written out in NumPy/SciPy on one (H, W) image pair."""
    x = np.round(x.astype(np.float64) * 255)
    y = np.round(y.astype(np.float64) * 255)
    t = np.arange(11) - 5.0
    g = np.exp(-(t**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()

    def filt(z):
        return correlate2d(z, w, mode="valid")

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = filt(x), filt(y)
    sxx, syy, sxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
    cs = np.maximum((2 * sxy + c2) / (sxx + syy + c2), 0.0)
    return float(np.mean((2 * mx * my + c1) / (mx**2 + my**2 + c1) * cs))


def pairs():
    clean = thermal_scene((48, 56), 0)
    return {
        "noise": (
            torch.rand(1, 40, 40, generator=torch.Generator().manual_seed(0)),
            torch.rand(1, 40, 40, generator=torch.Generator().manual_seed(1)),
        ),
        "CBN": (degrade(clean, "CBN", 0), clean),
        "mild": (
            (
                clean + 0.01 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(2))
            ).clamp(0, 1),
            clean,
        ),
    }


def test_psnr_by_hand():
    x = torch.zeros(2, 1, 4, 4)
    y = x.clone()
    y[0] += 0.1
    y[1, 0, 0, 0] = 1.0  # MSE 1/16
    torch.testing.assert_close(  # 0.1 in float32 is not exactly 0.1
        psnr(y, x), torch.tensor([20.0, 10 * np.log10(16)], dtype=torch.float64), atol=1e-5, rtol=0
    )
    assert float(psnr(x[0], x[0])) == pytest.approx(80.0)  # 1e-8 added to the MSE
    assert psnr(x[0, 0], y[0, 0]).shape == ()
    assert float(psnr(x[0] * 255, y[0] * 255, data_range=255.0)) == pytest.approx(20.0)


@pytest.mark.parametrize("name", ["noise", "CBN", "mild"])
def test_ssim_equals_an_independent_numpy_implementation(name):
    x, y = pairs()[name]
    expected = reference_ssim(x[0].numpy(), y[0].numpy())
    assert float(ssim(x, y)) == pytest.approx(expected, abs=1e-12)


def test_ssim_by_hand_on_constant_images():
    # Constant images: variances 0, cs = 1; luminance (2ab + C1) / (a^2 + b^2 + C1) in grey levels.
    a, b, c1 = 100.0, 150.0, (0.01 * 255) ** 2
    x, y = torch.full((16, 16), a / 255), torch.full((16, 16), b / 255)
    assert float(ssim(x, y)) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), abs=1e-12)


def test_ssim_is_batched_and_rounds():
    x, y = pairs()["CBN"]
    batch = ssim(torch.stack([x, y, x]), torch.stack([y, y, x]))
    assert batch.shape == (3,) and batch.dtype == torch.float64
    torch.testing.assert_close(batch[0], ssim(x, y))
    assert float(batch[1]) == float(batch[2]) == 1.0
    x = quantize(x)
    assert float(ssim(x + 0.4 / 255, x)) == 1.0  # the same after rounding to grey levels


def test_ssim_against_skimage():
    metrics = pytest.importorskip("skimage.metrics")
    for name, (x, y) in pairs().items():
        xr = np.round(x[0].double().numpy() * 255)
        yr = np.round(y[0].double().numpy() * 255)
        theirs = metrics.structural_similarity(
            xr,
            yr,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
        )
        ours = float(ssim(x, y))
        if name == "mild":  # no negative contrast-structure term: identical
            assert ours == pytest.approx(theirs, abs=1e-10)
        else:  # clipping at 0 can only raise the value
            assert ours >= theirs - 1e-12


@needs_hm_tir
def test_hm_tir_psnr_table():
    """The PSNR table of the HM-TIR examples' README, reproduced to 0.01 dB."""
    rows = re.findall(
        r"^\| (\w+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$",
        (HM_TIR / "README.md").read_text(),
        flags=re.MULTILINE,
    )
    assert len(rows) == 5
    hard = PairedImageFolder(HM_TIR / "hard", HM_TIR / "imgs")
    assert hard.names == sorted(r[0] for r in rows)
    for name, want_hard, want_normal, want_ppfn in rows:
        clean = read_image(HM_TIR / "imgs" / f"{name}.png")
        for folder, want in (("hard", want_hard), ("normal", want_normal), ("enh_hard", want_ppfn)):
            got = float(psnr(read_image(HM_TIR / folder / f"{name}.png"), clean))
            assert abs(got - float(want)) <= 0.01, (name, folder, got, want)
    # Batched over the paired folder: the hard column again.
    degraded, clean = zip(*(hard[i] for i in range(len(hard))), strict=True)
    got = psnr(torch.stack(degraded), torch.stack(clean))
    want = torch.tensor([float(dict((r[0], r[1]) for r in rows)[n]) for n in hard.names])
    assert float((got - want.double()).abs().max()) <= 0.01


@needs_hm_tir
def test_hm_tir_ssim_matches_the_reference():
    x = read_image(HM_TIR / "hard" / "Villa.png")[:, :160, :200]
    y = read_image(HM_TIR / "imgs" / "Villa.png")[:, :160, :200]
    assert float(ssim(x, y)) == pytest.approx(reference_ssim(x[0].numpy(), y[0].numpy()), abs=1e-12)


@pytest.mark.parametrize("side", [1, 5, 8, 11, 16, 33, 64, 161])
def test_ms_ssim_does_not_crash_on_small_crops(side):
    x = images(2, 1, side, side + 3)
    y = (x + 0.05 * images(2, 1, side, side + 3, seed=1)).clamp(0, 1).requires_grad_()
    value = ms_ssim(y, x)
    assert value.shape == (2,) and bool(torch.isfinite(value).all())
    assert bool((value <= 1 + 1e-6).all())
    value.sum().backward()
    assert bool(torch.isfinite(y.grad).all())
    torch.testing.assert_close(ms_ssim(x, x), torch.ones(2))


def test_ms_ssim_single_scale_is_plain_ssim_without_rounding():
    x, y = pairs()["mild"]
    x, y = x.double(), y.double()
    one = ms_ssim(x, y, weights=(1.0,))
    # The design page's SSIM on pre-rounded images equals it when no cs term is negative.
    xr, yr = torch.round(x * 255) / 255, torch.round(y * 255) / 255
    torch.testing.assert_close(ms_ssim(xr, yr, weights=(1.0,)), ssim(xr, yr))
    assert 0 < float(one) < 1


def test_gradient_loss_against_scipy():
    x, y = images(2, 1, 9, 7), images(2, 1, 9, 7, seed=1)
    sobel = np.array([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]]) / 8

    def grads(z):  # zero padding of 1, cross-correlation as conv2d
        z = z.double().numpy()[:, 0]
        return [np.stack([correlate2d(i, k, mode="same") for i in z]) for k in (sobel, sobel.T)]

    (xgx, xgy), (ygx, ygy) = grads(x), grads(y)
    expected = 0.5 * (np.abs(xgx - ygx).mean() + np.abs(xgy - ygy).mean())
    assert float(gradient_loss(x.double(), y.double())) == pytest.approx(expected, abs=1e-12)
    ramp = torch.arange(8, dtype=torch.float64).repeat(8, 1)[None, None] / 8
    assert float(gradient_loss(ramp, ramp)) == 0.0


def test_code_loss_and_l1():
    x = images(2, 1, 8, 8)  # a small crop: MS-SSIM on one scale
    y = (x * 0.5).requires_grad_()
    loss = code_loss(y, x)
    loss.backward()
    assert bool(torch.isfinite(y.grad).all()) and float(loss.detach()) > float(l1_loss(x * 0.5, x))
    expected = l1_loss(y, x) + 0.5 * (1 - ms_ssim(y, x).mean()) + 0.1 * gradient_loss(y, x)
    torch.testing.assert_close(loss, expected)
    assert float(code_loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    assert set(LOSSES) == {"paper", "code"} and LOSSES["paper"] is l1_loss


def test_metric_errors():
    with pytest.raises(InvalidInputError, match=r"same shape; got \(1, 8, 8\) and \(1, 8, 9\)"):
        psnr(torch.zeros(1, 8, 8), torch.zeros(1, 8, 9))
    with pytest.raises(InvalidInputError, match=r"ssim: images must be at least 11x11"):
        ssim(torch.zeros(1, 8, 8), torch.zeros(1, 8, 8))
    with pytest.raises(TypeError, match="`prediction` must be a floating-point tensor"):
        psnr(torch.zeros(8, 8, dtype=torch.uint8), torch.zeros(8, 8))
    with pytest.raises(TypeError, match="`target` must be a torch.Tensor; got ndarray"):
        ssim(torch.zeros(16, 16), np.zeros((16, 16)))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_metrics_on_gpu():
    x, y = pairs()["CBN"]
    torch.testing.assert_close(ssim(x.cuda(), y.cuda()).cpu(), ssim(x, y))
    torch.testing.assert_close(psnr(x.cuda(), y.cuda()).cpu(), psnr(x, y))
