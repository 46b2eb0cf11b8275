"""Drawing primitives of the procedural scenes: random fields, signed distances, painting.

All randomness comes from an explicit CPU generator; everything is float64 ``(H, W)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "box_sdf",
    "coverage",
    "ellipse_sdf",
    "fractal_field",
    "paint",
    "power_law_field",
    "smooth_field",
]


def smooth_field(g: torch.Generator, h: int, w: int, cells: int) -> torch.Tensor:
    """Bicubically upsampled random grid: a smooth field of about `cells` bumps per side."""
    ch = max(2, round(cells * h / max(h, w)) + 1)
    cw = max(2, round(cells * w / max(h, w)) + 1)
    grid = torch.randn((1, 1, ch, cw), generator=g, dtype=torch.float64)
    return F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=True)[0, 0]


def fractal_field(g: torch.Generator, h: int, w: int, octaves: int = 6) -> torch.Tensor:
    """Sum of smooth fields of doubling frequency and halving amplitude, std about 1."""
    out = torch.zeros((h, w), dtype=torch.float64)
    for k in range(octaves):
        out += 0.6**k * smooth_field(g, h, w, 2 * 2**k)
    return out / out.std().clamp_min(1e-12)


def coverage(sdf: torch.Tensor, softness: float) -> torch.Tensor:
    """Coverage of a shape from its signed distance (negative inside)."""
    return torch.sigmoid(-sdf / softness)


def box_sdf(yy, xx, cy, cx, hh, hw, radius=0.0):
    """Signed distance to a rectangle of half sides ``hh, hw`` with rounded corners."""
    qy = (yy - cy).abs() - (hh - radius)
    qx = (xx - cx).abs() - (hw - radius)
    outside = torch.sqrt(qy.clamp_min(0) ** 2 + qx.clamp_min(0) ** 2)
    inside = torch.maximum(qy, qx).clamp_max(0)
    return outside + inside - radius


def ellipse_sdf(yy, xx, cy, cx, ry, rx):
    """Approximate signed distance to an ellipse (exact for circles)."""
    return (torch.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2) - 1.0) * min(ry, rx)


def paint(img, cover, value):
    """Paint `value` over `img` (in place) where `cover` (0..1) says, as an opaque layer."""
    img.mul_(1.0 - cover).add_(cover * value)


def power_law_field(g: torch.Generator, h: int, w: int, exponent: float) -> torch.Tensor:
    """A Gaussian random field whose power falls as ``f^-exponent``, mean 0 and std 1.

    White noise shaped in the Fourier domain (periodic at the borders): exponent 0 is
    white, 2 the spectrum of natural images, larger exponents are smoother.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data.shapes import power_law_field
    >>> f = power_law_field(torch.Generator().manual_seed(0), 32, 48, 2.0)
    >>> f.shape, round(float(f.std()), 6)
    (torch.Size([32, 48]), 1.0)
    """
    noise = torch.randn((h, w), generator=g, dtype=torch.float64)
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(w, dtype=torch.float64)[None, :]
    f = torch.sqrt(fy**2 + fx**2).clamp_min(1.0 / max(h, w))
    spectrum = torch.fft.rfft2(noise) * f ** (-exponent / 2)
    spectrum[0, 0] = 0.0
    out = torch.fft.irfft2(spectrum, s=(h, w))
    return out / out.std().clamp_min(1e-12)
