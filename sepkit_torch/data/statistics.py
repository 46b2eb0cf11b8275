"""Image statistics that matter for restoration, to compare scene generators with real data.

- :func:`gradient_magnitudes`: how sharp and how busy an image is (edges, texture);
- :func:`radial_power_spectrum` and :func:`spectrum_slope`: how its energy falls with
  spatial frequency (natural images: slope near -2; soft shapes fall faster);
- :func:`intensity_histogram`: its grey-level distribution (tone mapping);
- :func:`line_spectra`: the power of its column and row patterns (stripe noise).

:func:`scene_statistics` summarises a set of images and :func:`wasserstein_1d` measures
how far two sets' distributions are apart. Everything is float64, in grey levels (0-255).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sepkit_torch._errors import InvalidInputError
from sepkit_torch.data.sampling import as_batch

__all__ = [
    "SceneStatistics",
    "gradient_magnitudes",
    "LineSpectra",
    "intensity_histogram",
    "line_spectra",
    "radial_power_spectrum",
    "scene_statistics",
    "spectrum_slope",
    "wasserstein_1d",
]

GREY = 255.0

#: Frequencies (cycles per pixel) over which :func:`spectrum_slope` fits: above the scale of
#: the whole frame, below the last octave (where sensor noise and rounding dominate).
SLOPE_BAND = (1 / 64, 1 / 4)


def _planes(images) -> torch.Tensor:
    return as_batch(images)[:, 0].double() * GREY


def gradient_magnitudes(images) -> torch.Tensor:
    """Gradient magnitude of every pixel, pooled over `images`, in grey levels per pixel.

    Central differences on the interior (``|grad| = sqrt(dx^2 + dy^2)``, ``dx = (x[i, j+1] -
    x[i, j-1]) / 2``), so a ramp of slope ``s`` gives ``s`` everywhere.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data.statistics import gradient_magnitudes
    >>> ramp = torch.arange(8.0).repeat(6, 1) * 3 / 255  # 3 grey levels per column
    >>> g = gradient_magnitudes(ramp)
    >>> g.shape, round(float(g.min()), 9), round(float(g.max()), 9)  # 4 x 6 interior pixels
    (torch.Size([24]), 3.0, 3.0)
    """
    x = _planes(images)
    if x.shape[-1] < 3 or x.shape[-2] < 3:
        raise InvalidInputError(f"`images` must be at least 3 x 3; got {tuple(x.shape[-2:])}")
    dx = (x[:, 1:-1, 2:] - x[:, 1:-1, :-2]) / 2
    dy = (x[:, 2:, 1:-1] - x[:, :-2, 1:-1]) / 2
    return torch.sqrt(dx**2 + dy**2).reshape(-1)


def radial_power_spectrum(images, bins: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Radially averaged power spectrum, averaged over `images`.

    Each image less its mean, times a 2-D Hann window (so the frame's borders add no
    spurious high frequencies), is Fourier transformed; the power ``|F|^2 / (H W)`` is
    averaged over rings of equal radial frequency.

    Returns
    -------
    frequencies, power : torch.Tensor
        Ring centres in cycles per pixel (up to 0.5) and the mean power of each ring.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data.statistics import radial_power_spectrum
    >>> f, p = radial_power_spectrum(torch.rand(2, 1, 64, 64), bins=16)
    >>> f.shape, bool((p > 0).all())
    (torch.Size([16]), True)
    """
    x = _planes(images)
    h, w = x.shape[-2:]
    window = torch.outer(
        torch.hann_window(h, dtype=torch.float64), torch.hann_window(w, dtype=torch.float64)
    )
    x = (x - x.mean(dim=(-2, -1), keepdim=True)) * window
    power = (torch.fft.fft2(x).abs() ** 2).mean(0) / (h * w)
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(w, dtype=torch.float64)[None, :]
    radius = torch.sqrt(fy**2 + fx**2).reshape(-1)
    edges = torch.linspace(0.0, 0.5, bins + 1, dtype=torch.float64)
    ring = torch.bucketize(radius, edges[1:-1])
    keep = radius <= 0.5
    total = torch.zeros(bins, dtype=torch.float64).index_add_(
        0, ring[keep], power.reshape(-1)[keep]
    )
    count = torch.zeros(bins, dtype=torch.float64).index_add_(
        0, ring[keep], torch.ones_like(radius[keep])
    )
    return (edges[1:] + edges[:-1]) / 2, total / count.clamp_min(1.0)


def spectrum_slope(images, band=SLOPE_BAND) -> float:
    """Slope of ``log power`` against ``log frequency`` over `band` (cycles per pixel).

    NaN for images without variation.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data.statistics import spectrum_slope
    >>> white = torch.rand(4, 1, 128, 128, generator=torch.Generator().manual_seed(0))
    >>> round(spectrum_slope(white), 1)  # flat: every frequency has the same power
    0.0
    """
    lo, hi = band
    if not 0 < lo < hi <= 0.5:
        raise InvalidInputError(
            f"`band` must be (low, high) with 0 < low < high <= 0.5; got {band!r}"
        )
    f, p = radial_power_spectrum(images, bins=128)
    keep = (f >= lo) & (f <= hi) & (p > 1e-20)
    if int(keep.sum()) < 2:  # constant images: no spectrum to fit
        return math.nan
    lf, lp = torch.log(f[keep]), torch.log(p[keep])
    lf_c = lf - lf.mean()
    return float((lf_c * (lp - lp.mean())).sum() / (lf_c**2).sum())


@dataclass(frozen=True)
class LineSpectra:
    """Power spectra of the column and row profiles of a set of images (grey levels squared).

    Attributes
    ----------
    column_frequencies, columns : torch.Tensor
        Frequencies ``k / W`` (cycles per pixel, ``k = 1 .. W // 2``) and the mean power of
        the column profile there: stripes that run down the image.
    row_frequencies, rows : torch.Tensor
        The same for the row profile (``k / H``): stripes that run across.
    column_std, row_std : float
        Root mean square of the profiles (grey levels), averaged over the images in power.
    """

    column_frequencies: torch.Tensor
    columns: torch.Tensor
    row_frequencies: torch.Tensor
    rows: torch.Tensor
    column_std: float
    row_std: float


def _profile_power(x: torch.Tensor, m: torch.Tensor, dim: int):
    """Spectrum (bins 1 .. n // 2) and mean square of the profile along `dim`, per image."""
    profile = (x * m).sum(dim) / m.sum(dim).clamp_min(1.0)
    profile = profile - profile.mean(-1, keepdim=True)
    n = profile.shape[-1]
    power = torch.fft.rfft(profile).abs() ** 2 / n
    return torch.fft.rfftfreq(n, dtype=torch.float64)[1:], power[:, 1:], (profile**2).mean(-1)


def line_spectra(images, mask=None) -> LineSpectra:
    """Power spectra of the column and row profiles of `images`: their line patterns.

    The column profile of an image is the mean of each column (over its rows, or over the
    pixels where `mask` is true) less the mean of those; its spectrum is ``|DFT|^2 / W``
    at the positive frequencies, averaged over the images. Rows alike. By Parseval the
    spectrum's mean over all frequencies is the profile's variance, so column offsets of
    spread ``s`` give a flat spectrum at ``s^2``, and white noise of spread ``sigma`` one
    at ``sigma^2 / H``; a low-frequency line pattern rises towards 0.

    Parameters
    ----------
    images : torch.Tensor
        ``(H, W)``, ``(1, H, W)`` or ``(N, 1, H, W)``; values in units of ``[0, 1]``
        (scaled by 255; a residual may be negative).
    mask : torch.Tensor, optional
        Boolean, broadcastable to `images`: the pixels to use (e.g. not clipped).

    Returns
    -------
    LineSpectra

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data.statistics import line_spectra
    >>> offsets = torch.randn(1, 256, generator=torch.Generator().manual_seed(0)) * 4 / 255
    >>> s = line_spectra(offsets.expand(128, 256))  # one offset per column: vertical stripes
    >>> round(s.column_std, 2) == round(float(offsets.std(correction=0)) * 255, 2), s.row_std
    (True, 0.0)
    """
    x = _planes(images)
    if mask is None:
        m = torch.ones_like(x)
    else:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            got = f"dtype {mask.dtype}" if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise TypeError(f"`mask` must be a boolean tensor; got {got}")
        try:
            m = torch.broadcast_to(as_batch(mask.double())[:, 0], x.shape)
        except (RuntimeError, InvalidInputError):
            raise InvalidInputError(
                f"`mask` must broadcast to the images' shape {tuple(x.shape)}; got shape "
                f"{tuple(mask.shape)}"
            ) from None
    if x.shape[-1] < 2 or x.shape[-2] < 2:
        raise InvalidInputError(f"`images` must be at least 2 x 2; got {tuple(x.shape[-2:])}")
    fc, pc, vc = _profile_power(x, m, -2)
    fr, pr, vr = _profile_power(x, m, -1)
    return LineSpectra(
        fc, pc.mean(0), fr, pr.mean(0), math.sqrt(float(vc.mean())), math.sqrt(float(vr.mean()))
    )


def intensity_histogram(images, bins: int = 64) -> torch.Tensor:
    """Share of pixels in each of `bins` equal grey-level bins over ``[0, 255]``.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data.statistics import intensity_histogram
    >>> intensity_histogram(torch.tensor([[0.0, 0.1, 0.9, 1.0]]), bins=2)
    tensor([0.5000, 0.5000], dtype=torch.float64)
    """
    x = _planes(images).reshape(-1)
    return torch.histc(x, bins=bins, min=0.0, max=GREY) / x.numel()


def wasserstein_1d(a: torch.Tensor, b: torch.Tensor, points: int = 1000) -> float:
    """Earth mover's distance between the distributions of samples `a` and `b`.

    The mean absolute difference of their quantile functions, at `points` levels.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data.statistics import wasserstein_1d
    >>> x = torch.randn(5000, generator=torch.Generator().manual_seed(0))
    >>> round(wasserstein_1d(x, x + 3.0), 6)
    3.0
    """
    q = (torch.arange(points, dtype=torch.float64) + 0.5) / points
    qa = torch.quantile(_sample(a.double().reshape(-1)), q)
    qb = torch.quantile(_sample(b.double().reshape(-1)), q)
    return float((qa - qb).abs().mean())


def _sample(x: torch.Tensor, limit: int = 4_000_000) -> torch.Tensor:
    """Every k-th value, so that torch.quantile's size limit is never reached."""
    return x[:: max(1, math.ceil(x.numel() / limit))]


@dataclass(frozen=True)
class SceneStatistics:
    """Summary of a set of images (grey levels).

    Attributes
    ----------
    gradient_quantiles : tuple of float
        Gradient magnitude at the 50th, 90th and 99th percentiles.
    flat_share : float
        Share of pixels whose gradient is below 1 grey level per pixel.
    spectrum_slope : float
        See :func:`spectrum_slope`.
    intensity_mean, intensity_std : float
        Of the grey levels.
    """

    gradient_quantiles: tuple[float, float, float]
    flat_share: float
    spectrum_slope: float
    intensity_mean: float
    intensity_std: float


def scene_statistics(images) -> SceneStatistics:
    """:class:`SceneStatistics` of `images` (``(N, 1, H, W)`` in ``[0, 1]``).

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data.statistics import scene_statistics
    >>> s = scene_statistics(torch.full((1, 1, 32, 32), 0.5))
    >>> s.flat_share, s.intensity_mean
    (1.0, 127.5)
    """
    g = gradient_magnitudes(images)
    q = torch.quantile(_sample(g), torch.tensor([0.5, 0.9, 0.99], dtype=torch.float64))
    x = _planes(images)
    return SceneStatistics(
        tuple(round(float(v), 3) for v in q),
        float((g < 1.0).double().mean()),
        spectrum_slope(images),
        float(x.mean()),
        float(x.std()),
    )
