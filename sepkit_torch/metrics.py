"""PSNR and SSIM as the paper's evaluation computes them, and the two training losses.

Evaluation (pyiqa's metrics, which the authors use):

- :func:`psnr`: ``10 log10(1 / (MSE + 1e-8))`` per image on ``[0, 1]`` images, float64.
- :func:`ssim`: images times 255 and rounded, float64, 11x11 Gaussian window of sigma 1.5,
  'valid' filtering (no padding), ``C1 = (0.01 * 255)^2``, ``C2 = (0.03 * 255)^2``, the
  contrast-structure map clipped at 0 before it multiplies the luminance map, plain mean.

Training: :func:`l1_loss` (the paper's) and :func:`code_loss` (the public code's
``L1 + 0.5 (1 - MS-SSIM) + 0.1 Sobel-gradient L1``); :data:`LOSSES` names them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sepkit_torch._errors import InvalidInputError

__all__ = [
    "LOSSES",
    "MS_SSIM_WEIGHTS",
    "code_loss",
    "gradient_loss",
    "l1_loss",
    "ms_ssim",
    "psnr",
    "ssim",
]

#: Weights of the five MS-SSIM scales (Wang et al. 2003).
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _pair(prediction, target, name: str) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Both as ``(N, C, H, W)``; whether the input was one image."""
    for arg, value in (("prediction", prediction), ("target", target)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"`{arg}` must be a torch.Tensor; got {type(value).__name__}")
        if not value.is_floating_point():
            raise TypeError(
                f"`{arg}` must be a floating-point tensor in [0, 1]; got dtype {value.dtype}"
            )
    if prediction.shape != target.shape:
        raise InvalidInputError(
            f"{name}: `prediction` and `target` must have the same shape; got "
            f"{tuple(prediction.shape)} and {tuple(target.shape)}"
        )
    if prediction.ndim not in (2, 3, 4):
        raise InvalidInputError(
            f"{name}: images must be (H, W), (C, H, W) or (N, C, H, W); got shape "
            f"{tuple(prediction.shape)}"
        )
    single = prediction.ndim < 4
    while prediction.ndim < 4:
        prediction, target = prediction[None], target[None]
    return prediction, target, single


def psnr(prediction, target, *, data_range: float = 1.0, eps: float = 1e-8) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, per image.

    Parameters
    ----------
    prediction, target : torch.Tensor
        ``(H, W)``, ``(C, H, W)`` or a batch ``(N, C, H, W)`` of the same shape, values in
        ``[0, data_range]``.
    data_range : float
        The peak value.
    eps : float
        Added to the MSE (pyiqa's 1e-8): identical images give 80 dB, not infinity.

    Returns
    -------
    torch.Tensor
        float64, shape ``(N,)`` for a batch, ``()`` for one image.

    Notes
    -----
    ``10 log10(data_range^2 / (mean((prediction - target)^2) + eps))``, the mean over all
    pixels (and channels) of each image, in float64.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.metrics import psnr
    >>> x = torch.zeros(4, 4)
    >>> round(float(psnr(x + 0.1, x)), 4)  # 10 log10(1 / 0.01)
    20.0
    >>> psnr(torch.zeros(2, 1, 4, 4), torch.full((2, 1, 4, 4), 0.5)).shape
    torch.Size([2])
    """
    x, y, single = _pair(prediction, target, "psnr")
    mse = (x.double() - y.double()).pow(2).mean(dim=(1, 2, 3))
    out = 10.0 * torch.log10(data_range**2 / (mse + eps))
    return out[0] if single else out


def _gaussian_window(size: int, sigma: float, dtype, device) -> torch.Tensor:
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(t**2) / (2.0 * sigma**2))
    g = g / g.sum()
    return g.to(device=device, dtype=dtype)


def _filter(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filtering of each channel of ``(N, C, H, W)``."""
    c, k = x.shape[1], window.numel()
    x = F.conv2d(x, window.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return F.conv2d(x, window.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)


def _ssim_maps(x, y, window, data_range: float, clip_cs: bool):
    """Luminance-weighted SSIM map and the contrast-structure map."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = _filter(x, window), _filter(y, window)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    s_xx = _filter(x * x, window) - mu_xx
    s_yy = _filter(y * y, window) - mu_yy
    s_xy = _filter(x * y, window) - mu_xy
    cs = (2 * s_xy + c2) / (s_xx + s_yy + c2)
    if clip_cs:
        cs = F.relu(cs)
    return (2 * mu_xy + c1) / (mu_xx + mu_yy + c1) * cs, cs


def ssim(prediction, target) -> torch.Tensor:
    """Structural similarity exactly as the paper's evaluation (pyiqa) computes it.

    Parameters
    ----------
    prediction, target : torch.Tensor
        ``(H, W)``, ``(C, H, W)`` or ``(N, C, H, W)`` of the same shape, values in
        ``[0, 1]`` (not clipped here: clamp model outputs first), H and W at least 11.

    Returns
    -------
    torch.Tensor
        float64, ``(N,)`` for a batch, ``()`` for one image; channels are averaged.

    Notes
    -----
    Both images are multiplied by 255 and rounded (to 8-bit grey levels), in float64.
    With an 11x11 Gaussian window ``w`` (sigma 1.5, normalised) applied without padding
    ('valid': an ``(H-10) x (W-10)`` map), local means ``mu``, variances ``s_xx, s_yy`` and
    covariance ``s_xy`` (``E_w[xy] - mu_x mu_y``), ``C1 = (0.01 * 255)^2``,
    ``C2 = (0.03 * 255)^2``::

        cs   = max(0, (2 s_xy + C2) / (s_xx + s_yy + C2))
        ssim = mean((2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1) * cs)

    Without the ``max(0, .)`` this is scikit-image's ``structural_similarity(...,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)`` on
    the rounded images (which truncates the window at 3.5 sigma: the same 11 taps).

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.metrics import ssim
    >>> x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> ssim(x, x)
    tensor([1.], dtype=torch.float64)
    >>> float(ssim(x, 1 - x)) < 0.05  # anti-correlated: cs clipped to 0
    True
    """
    x, y, single = _pair(prediction, target, "ssim")
    if min(x.shape[-2:]) < 11:
        raise InvalidInputError(
            f"ssim: images must be at least 11x11 (the window); got shape {tuple(x.shape)}"
        )
    x = torch.round(x.double() * 255.0)
    y = torch.round(y.double() * 255.0)
    window = _gaussian_window(11, 1.5, torch.float64, x.device)
    ssim_map, _ = _ssim_maps(x, y, window, 255.0, clip_cs=True)
    out = ssim_map.mean(dim=(1, 2, 3))
    return out[0] if single else out


_FLOOR = 1e-6


def ms_ssim(
    prediction,
    target,
    *,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    weights=MS_SSIM_WEIGHTS,
) -> torch.Tensor:
    """Multi-scale SSIM (differentiable; no rounding), per image, for the training loss.

    As pytorch_msssim (the public code's): per scale the mean contrast-structure term,
    2x2 average pooling between scales (padding odd sides), the full SSIM at the last
    scale, and the product of them raised to `weights`. Where pytorch_msssim clips the
    terms at 0, this clips them at 1e-6, so that the gradient of ``v ** w`` stays finite.

    Small images do not crash: the number of scales is reduced to the largest ``L`` with
    ``min(H, W) > (window_size - 1) * 2^(L-1)`` (five scales need sides above 160 with an
    11 window), using the first ``L`` weights renormalised to sum 1; below ``window_size``
    pixels the window itself shrinks to the largest odd size that fits (one scale).

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.metrics import ms_ssim
    >>> x = torch.rand(2, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    >>> ms_ssim(x, x)  # 48 px: three scales
    tensor([1., 1.])
    >>> ms_ssim(x[..., :5, :5], x[..., :5, :5]).shape  # 5 px: one scale, 5x5 window
    torch.Size([2])
    """
    x, y, single = _pair(prediction, target, "ms_ssim")
    side = min(x.shape[-2:])
    weights = torch.as_tensor(weights, dtype=torch.float64)
    if side <= window_size - 1:
        window_size = side if side % 2 else side - 1
    levels = 1
    while levels < len(weights) and side > (window_size - 1) * 2**levels:
        levels += 1
    w = weights[:levels] / weights[:levels].sum()
    window = _gaussian_window(window_size, sigma, x.dtype, x.device)
    values = []
    for level in range(levels):
        ssim_map, cs = _ssim_maps(x, y, window, data_range, clip_cs=False)
        if level < levels - 1:
            values.append(cs.mean(dim=(1, 2, 3)).clamp_min(_FLOOR))
            pad = (x.shape[-2] % 2, x.shape[-1] % 2)
            x = F.avg_pool2d(x, kernel_size=2, padding=pad)
            y = F.avg_pool2d(y, kernel_size=2, padding=pad)
        else:
            values.append(ssim_map.mean(dim=(1, 2, 3)).clamp_min(_FLOOR))
    stacked = torch.stack(values)  # (levels, N)
    out = torch.prod(stacked ** w.to(stacked).view(-1, 1), dim=0)
    return out[0] if single else out


def l1_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error: the paper's training loss.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.metrics import l1_loss
    >>> l1_loss(torch.zeros(2, 2), torch.ones(2, 2))
    tensor(1.)
    """
    _pair(prediction, target, "l1_loss")
    return F.l1_loss(prediction, target)


_SOBEL = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]) / 8.0


def gradient_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 distance of Sobel gradients: ``(|dx p - dx t| + |dy p - dy t|) / 2``, averaged.

    The Sobel kernels are divided by 8 and applied per channel with zero padding of 1,
    as in the public code.
    """
    x, y, _ = _pair(prediction, target, "gradient_loss")
    c = x.shape[1]
    kx = _SOBEL.to(device=x.device, dtype=x.dtype).view(1, 1, 3, 3).expand(c, 1, 3, 3)
    ky = kx.transpose(-1, -2)
    gx = F.l1_loss(F.conv2d(x, kx, padding=1, groups=c), F.conv2d(y, kx, padding=1, groups=c))
    gy = F.l1_loss(F.conv2d(x, ky, padding=1, groups=c), F.conv2d(y, ky, padding=1, groups=c))
    return 0.5 * (gx + gy)


def code_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    *,
    l1_weight: float = 1.0,
    ms_ssim_weight: float = 0.5,
    gradient_weight: float = 0.1,
) -> torch.Tensor:
    """The public code's loss: ``L1 + 0.5 (1 - MS-SSIM) + 0.1 gradient L1``.

    MS-SSIM (:func:`ms_ssim`, data range 1, averaged over the batch) reduces its scales
    on small crops instead of failing.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.metrics import code_loss
    >>> x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> float(code_loss(x, x))
    0.0
    >>> float(code_loss(0.5 * x, x)) > 0
    True
    """
    l1 = l1_loss(prediction, target)
    structure = 1.0 - ms_ssim(prediction, target).mean()
    return (
        l1_weight * l1
        + ms_ssim_weight * structure.to(l1.dtype)
        + gradient_weight * gradient_loss(prediction, target)
    )


#: The two training losses by name: ``"paper"`` (L1) and ``"code"`` (:func:`code_loss`).
LOSSES = {"paper": l1_loss, "code": code_loss}
