"""Fit the parameters of the built-in degradations to a clean/degraded pair.

:func:`estimate_degradation` explains a degraded image ``y`` by its clean version ``x``
through the model of the built-in chain C, B, N (grey levels, the parts a task lacks left
out)::

    y = (1 + g_j) * (a * (G * x) + b + delta * bump) + o_j + e

with ``a, b`` the low contrast, ``G`` the Gaussian blur, ``bump`` the optical
non-uniformity (or its complement), ``g_j, o_j`` the stripe gain and offset of column (or
row) ``j`` and ``e`` white noise. It returns the point values of the registered functions'
keyword arguments that fit best, so a preset or a range can be checked against real pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from sepkit_torch._errors import InvalidInputError
from sepkit_torch.data.degradations import GREY, gaussian_filter, quantize
from sepkit_torch.data.registry import get_degradation, parse_task
from sepkit_torch.data.sampling import as_batch, as_generator

__all__ = ["DegradationEstimate", "estimate_degradation", "nonuniformity_bump"]

#: The degradations whose parameters :func:`estimate_degradation` can fit.
ESTIMABLE = ("C", "B", "N", "D")

# Scale of the high-pass that takes the smooth non-uniformity out of the blur search.
_HIGH_PASS_SIGMA = 6.0


@dataclass(frozen=True)
class DegradationEstimate:
    """The fitted parameters of one clean/degraded pair.

    Attributes
    ----------
    task : str
        The task fitted, e.g. ``"CBN"``.
    parameters : dict
        ``{letter: {keyword: value}}``: point values of the keyword arguments of each part's
        registered function (``contrast``, ``brightness``; ``kernel_size``, ``sigma``;
        ``delta``, ``gain_std``, ``offset_std``, ``sigma``; ``dead``, ``hot``).
    stripes : str or None
        ``"column"`` or ``"row"``: the orientation of the stripes (N only).
    centre : (float, float) or None
        Row and column of the non-uniformity's centre (N only).
    residual : float
        Standard deviation of what the model leaves unexplained, in grey levels (with N:
        the white noise).
    """

    task: str
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    stripes: str | None = None
    centre: tuple[float, float] | None = None
    residual: float = 0.0

    def degrade(self, clean, generator) -> torch.Tensor:
        """`clean` degraded by the task's registered functions at the fitted point values,
        8-bit (the draws these do not fix, such as the stripes' orientation and the
        non-uniformity's centre, come from `generator`)."""
        g = as_generator(generator)
        y = clean
        for letter in parse_task(self.task):
            y = get_degradation(letter).fn(y, g, **self.parameters[letter])
        return quantize(y)


def _plane(image, name: str) -> torch.Tensor:
    x = as_batch(image)
    if x.shape[0] != 1:
        raise InvalidInputError(f"`{name}` must be one image; got a batch of {x.shape[0]}")
    return x[0, 0].double() * GREY


def _fit_columns(y, features, mask):
    """Least squares of every column of `y` on `features` (masked pixels left out).

    Returns the coefficients ``(W, k)``, the fitted values ``(H, W)`` (everywhere), the
    residual variance of each column (unmasked pixels) and the inverse normal matrices
    ``(W, k, k)``.
    """
    f = torch.stack(features, -1)
    fm = f * mask[..., None]
    normal = torch.einsum("hwk,hwl->wkl", fm, fm)
    normal = normal + 1e-9 * torch.eye(f.shape[-1], dtype=f.dtype)
    inverse = torch.linalg.inv(normal)
    coef = torch.einsum("wkl,hwl,hw->wk", inverse, fm, y * mask)
    fitted = torch.einsum("hwk,wk->hw", f, coef)
    dof = (mask.sum(0) - f.shape[-1]).clamp_min(1.0)
    return coef, fitted, (((y - fitted) * mask) ** 2).sum(0) / dof, inverse


def _rss(y, fitted, mask) -> float:
    return float((((y - fitted) * mask) ** 2).sum() / mask.sum().clamp_min(1.0))


def _fit_all(y, features, mask):
    """One least-squares fit over the whole image (no per-column coefficients)."""
    coef, fitted, var, inverse = _fit_columns(
        y.reshape(-1, 1), [f.reshape(-1, 1) for f in features], mask.reshape(-1, 1)
    )
    return coef, fitted.reshape(y.shape), var, inverse


def nonuniformity_bump(h: int, w: int, cy: float, cx: float, step: int = 1) -> torch.Tensor:
    """``cos(pi/2 r)^4`` around ``(cy, cx)`` on every `step`-th row and column of an
    ``h x w`` image, r the distance over its largest value (to the farthest corner)."""
    yy = torch.arange(0, h, step, dtype=torch.float64)[:, None]
    xx = torch.arange(0, w, step, dtype=torch.float64)[None, :]
    far = max(math.hypot(py - cy, px - cx) for py in (0, h - 1) for px in (0, w - 1))
    r = torch.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / max(far, 1e-12)
    return torch.cos(r * (math.pi / 2)) ** 4


def _blur(x, size: int, sigma: float) -> torch.Tensor:
    return gaussian_filter(x[None, None], size, sigma)[0, 0]


def _full_size(sigma: float) -> int:
    """The odd kernel size that reaches 4 sigma either side: wider changes < 3e-4 of it."""
    return 2 * math.ceil(4 * sigma) + 1


def _fit_blur(x, y, mask, max_sigma: float) -> tuple[int, float]:
    """Kernel size and sigma whose blur of `x` best explains the detail of `y`.

    The detail is a high-pass (the image less its Gaussian blur of sigma 6), which the
    smooth non-uniformity does not reach; stripes and noise only add scatter to the fit.
    """
    wide = 2 * math.ceil(3 * _HIGH_PASS_SIGMA) + 1
    hx = x - _blur(x, wide, _HIGH_PASS_SIGMA)
    hy = y - _blur(y, wide, _HIGH_PASS_SIGMA)
    ones = torch.ones_like(y)

    def rss(size: int, sigma: float) -> float:
        return _rss(hy, _fit_all(hy, [_blur(hx, size, sigma), ones], mask)[1], mask)

    coarse = [0.25 * k for k in range(1, int(max_sigma / 0.25) + 1)]
    _, sigma = min((rss(_full_size(sg), sg), sg) for sg in coarse)
    near = [sg for sg in coarse if abs(sg - sigma) <= 0.25 + 1e-9]
    _, size, sigma = min(
        (rss(k, sg), k, sg) for sg in near for k in range(3, _full_size(sg) + 1, 2)
    )
    for _ in range(3):  # alternate: sigma in steps of 0.05 at this size, then the size
        fine = [round(sigma + 0.05 * k, 2) for k in range(-5, 6) if sigma + 0.05 * k > 0.05]
        _, sigma = min((rss(size, sg), sg) for sg in fine)
        _, best = min((rss(k, sigma), k) for k in range(3, _full_size(sigma + 0.5) + 1, 2))
        if best == size:
            break
        size = best
    return size, sigma


def _fit_centre(gx, y, mask) -> tuple[float, float]:
    """Centre of the non-uniformity: a grid, then four halvings around the best point.

    Fitted on every second row and column, with one contrast, offset and amplitude for
    the whole image (stripes average out over the columns).
    """
    h, w = y.shape
    ys, gs, ms = y[::2, ::2], gx[::2, ::2], mask[::2, ::2]
    ones = torch.ones_like(ys)

    def rss(cy: float, cx: float) -> float:
        return _rss(ys, _fit_all(ys, [gs, ones, nonuniformity_bump(h, w, cy, cx, 2)], ms)[1], ms)

    step_y, step_x = (h - 1) / 7, (w - 1) / 9
    best = min(
        (rss(i * step_y, j * step_x), i * step_y, j * step_x) for i in range(8) for j in range(10)
    )
    for _ in range(4):
        step_y, step_x = step_y / 2, step_x / 2
        _, cy0, cx0 = best
        around = {
            (min(max(cy0 + i * step_y, 0.0), h - 1.0), min(max(cx0 + j * step_x, 0.0), w - 1.0))
            for i in (-1, 0, 1)
            for j in (-1, 0, 1)
        }
        best = min([best] + [(rss(cy, cx), cy, cx) for cy, cx in sorted(around)])
    return best[1], best[2]


def _random_effect_std(values, variances) -> float:
    """Spread of the true values behind noisy `values` (DerSimonian-Laird).

    Each value weighs by its precision, so lines whose estimate is poor (a line of nearly
    constant signal says little about its gain) barely count.
    """
    w = 1.0 / variances.clamp_min(1e-12)
    mean = (w * values).sum() / w.sum()
    q = float((w * (values - mean) ** 2).sum())
    scale = float(w.sum() - (w**2).sum() / w.sum())
    return math.sqrt(max((q - (len(values) - 1)) / max(scale, 1e-12), 0.0))


def _fit_stripes(y, z, mask):
    """Spreads of the per-line gains and offsets of ``y = (1 + g_j) z + o_j + e``.

    The gains come from each line's covariance of the residual ``y - z`` with ``z`` (a
    random-effects spread); the offsets from what the gains leave of the variance of the
    lines' mean residuals. Also returns the residual variance of each line's own fit.
    """
    n = mask.sum(0).clamp_min(3.0)
    r = (y - z) * mask
    z_mean = (z * mask).sum(0) / n
    r_mean = r.sum(0) / n
    zc = (z - z_mean) * mask
    z_var = (zc**2).sum(0).clamp_min(1e-12)
    gain = (zc * r).sum(0) / z_var
    line_residual = (r - (r_mean + gain * (z - z_mean)) * mask) ** 2
    var = line_residual.sum(0) / (n - 2).clamp_min(1.0)
    gain_std = _random_effect_std(gain, var / z_var)
    offset_var = float(r_mean.var() - gain_std**2 * (z_mean**2).mean() - (var / n).mean())
    return gain_std, math.sqrt(max(offset_var, 0.0)), var


def estimate_degradation(clean, degraded, task: str = "CBN", *, max_sigma: float = 6.0):
    """Fit the parameters of `task`'s built-in parts to a clean/degraded pair.

    Parameters
    ----------
    clean, degraded : torch.Tensor
        One single-channel image each, ``(H, W)`` or ``(1, H, W)`` (or a batch of one), in
        ``[0, 1]``, the same size and aligned pixel for pixel.
    task : str
        The parts to fit, of C, B, N and D, in canonical order (``"CBN"``).
    max_sigma : float
        The largest blur sigma considered (pixels); kernel sizes up to ``6 max_sigma + 1``.

    Returns
    -------
    DegradationEstimate
        The point values of each part's keyword arguments, the stripes' orientation, the
        non-uniformity's centre and the residual.

    Notes
    -----
    Pixels that are 0 or 255 in `degraded` are left out (clipped), and so are, in a second
    pass, pixels whose fitted value before noise lies outside ``[1, 254]``.

    1. Stripes: the orientation whose per-column (or per-row) fit leaves less residual.
    2. B: the size and sigma whose blur of the clean image's high-pass (the non-uniformity
       is smooth) best fits the degraded image's high-pass, per column: odd sizes 3 to
       ``6 max_sigma + 1`` and sigma in steps of 0.25, then 0.05.
    3. N: the non-uniformity's centre, on a grid and three halvings of it. Then every
       column ``j`` is fitted as ``s_j (G x) + t_j + d_j bump``; ``a`` is the mean of
       ``s_j``, the gains ``g_j = s_j / a - 1``, ``delta = |mean(d_j / (1 + g_j))|`` (a
       negative sign is the complement ``1 - bump``, whose constant joins ``b``), the
       offsets ``o_j = t_j - (1 + g_j) b``. The spread of ``g_j`` and ``o_j`` is corrected
       for the estimation noise of each column's fit (method of moments); the white
       noise's sigma is the residual's. Without N one global fit gives ``a, b``.
    4. D: the shares of pixels at 0 (at 255) where the fit is above 0 (below 255) by more
       than three noise sigmas.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data import gaussian_blur, low_contrast, thermal_scene
    >>> from sepkit_torch.data.estimation import estimate_degradation
    >>> x = thermal_scene((96, 128), 0)
    >>> y = gaussian_blur(low_contrast(x, 0, contrast=0.5, brightness=40.0), 0,
    ...                   kernel_size=9, sigma=1.5)
    >>> fit = estimate_degradation(x, y, "CB")
    >>> fit.parameters["C"], fit.parameters["B"]
    ({'contrast': 0.5, 'brightness': 40.0}, {'kernel_size': 9, 'sigma': 1.5})
    """
    x, y = _plane(clean, "clean"), _plane(degraded, "degraded")
    if x.shape != y.shape:
        raise InvalidInputError(
            f"`clean` and `degraded` must have one size; got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    parts = parse_task(task)
    unknown = [p for p in parts if p not in ESTIMABLE]
    if unknown:
        raise InvalidInputError(
            f"`task` {task!r}: no estimator for {', '.join(map(repr, unknown))}; "
            f"estimate_degradation fits the built-ins {', '.join(ESTIMABLE)}"
        )
    if not isinstance(max_sigma, (int, float)) or not 0.25 <= max_sigma <= 20:
        raise InvalidInputError(f"`max_sigma` must be a number in [0.25, 20]; got {max_sigma!r}")
    noise = "N" in parts
    mask = ((y > 0.5) & (y < GREY - 0.5)).double()
    if float(mask.sum()) < 16:
        raise InvalidInputError("`degraded` has fewer than 16 pixels that are not clipped")

    parameters: dict[str, dict[str, Any]] = {}
    gx = x
    if "B" in parts:
        size, sigma = _fit_blur(x, y, mask, float(max_sigma))
        parameters["B"] = {"kernel_size": size, "sigma": round(sigma, 2)}
        gx = _blur(x, size, sigma)

    ones = torch.ones_like(y)
    features = [gx, ones]
    centre = None
    for second_pass in (False, True):
        if noise:
            if not second_pass:
                centre = _fit_centre(gx, y, mask)
                features.append(nonuniformity_bump(*y.shape, *centre))
        coef, fitted, var, _ = _fit_all(y, features, mask)
        if second_pass:
            break
        # Clipped before the noise (bright parts, a high offset): not explained by the model.
        mask = mask * ((fitted > 1.0) & (fitted < GREY - 1.0)).double()

    a, b = float(coef[0, 0]), float(coef[0, 1])
    residual = math.sqrt(float(var[0]))
    stripes = None
    if noise:
        signed = float(coef[0, 2])
        delta = abs(signed)
        if signed < 0:  # the complement: delta * (1 - bump) puts delta into the offset
            b -= delta
        by_column = _fit_stripes(y, fitted, mask)
        by_row = _fit_stripes(y.T, fitted.T, mask.T)
        stripes = "column" if float(by_column[2].mean()) <= float(by_row[2].mean()) else "row"
        gain_std, offset_std, var = by_column if stripes == "column" else by_row
        residual = math.sqrt(float(var.mean()))
        parameters["N"] = {
            "delta": int(round(delta)),
            "gain_std": round(gain_std, 4),
            "offset_std": round(offset_std, 2),
            "sigma": round(residual, 2),
        }
    if "C" in parts:
        parameters["C"] = {"contrast": round(a, 3), "brightness": round(b, 2)}
    if "D" in parts:
        raw, model = y.reshape(-1), fitted.reshape(-1)
        margin = 3.0 * residual + 1.0
        n = raw.numel()
        parameters["D"] = {
            "dead": float(((raw <= 0.5) & (model > margin)).sum()) / n,
            "hot": float(((raw >= GREY - 0.5) & (model < GREY - margin)).sum()) / n,
        }
    ordered = {p: parameters[p] for p in parts}
    return DegradationEstimate(task, ordered, stripes, centre, round(residual, 3))
