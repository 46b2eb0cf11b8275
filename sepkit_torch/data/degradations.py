"""Thermal-infrared degradations as pure functions of an image and a generator.

Every operation takes a single-channel image tensor with values in ``[0, 1]`` -- one image
``(H, W)`` or ``(1, H, W)``, or a batch ``(N, 1, H, W)`` -- and an explicit CPU
:class:`torch.Generator` (or an int seed), and returns a new tensor of the same shape, dtype
and device, clipped to ``[0, 1]``. Parameters are drawn per image of a batch. The parameter
ranges are in grey levels (``0..255``), as on the design page; the image is scaled by 255
wherever a definition speaks of grey levels. A range left unset (None) is the default
preset's (:data:`~sepkit_torch.data.registry.BUILTIN_PRESETS`, ``"ecmrnet"``).

All random numbers (parameters, noise fields, pixel masks) are drawn on the CPU generator
and then moved to the image's device, so a ``(seed, image)`` pair gives the same output on
the CPU and on a GPU: bit for bit for every operation except the blur, whose convolution
(done in float64) may differ in the last bit of float32.

Importing this module registers C, B, N and D (:mod:`sepkit_torch.data.registry`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from sepkit_torch._errors import InvalidInputError
from sepkit_torch.data.registry import BUILTIN_PRESETS, preset_defaults, register_degradation
from sepkit_torch.data.sampling import (
    as_batch,
    as_generator,
    clip_like,
    coin,
    per_image,
    randint,
    uniform,
    value_range,
)

__all__ = [
    "GREY",
    "dead_hot_pixels",
    "gaussian_blur",
    "gaussian_filter",
    "gaussian_kernel",
    "gaussian_noise",
    "low_contrast",
    "optical_nonuniformity",
    "quantize",
    "stripe_noise",
    "tir_noise",
    "vignetting",
]

#: Grey levels of an 8-bit image: the scale of every parameter range.
GREY = 255.0


def quantize(image: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Round `image` (values in ``[0, 1]``) to the grey levels of a `bits`-bit image.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data import quantize
    >>> quantize(torch.tensor([0.0, 0.1, 1.0]))  # 0.1 * 255 = 25.5 rounds to 26
    tensor([0.0000, 0.1020, 1.0000])
    """
    if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= 16:
        raise InvalidInputError(f"`bits` must be an int in 1..16; got {bits!r}")
    levels = float(2**bits - 1)
    return torch.round(image.clamp(0.0, 1.0) * levels) / levels


# --------------------------------------------------------------------------------------
# the operations


def low_contrast(image, generator, *, contrast=None, brightness=None):
    """Low contrast: ``y = a * x + b`` in grey levels, clipped.

    Parameters
    ----------
    image : torch.Tensor
        ``(H, W)``, ``(1, H, W)`` or ``(N, 1, H, W)``, floating point, values in ``[0, 1]``.
    generator : torch.Generator or int
        CPU generator (or seed) for the draws.
    contrast : float or (float, float), optional
        Range of the gain ``a ~ U[low, high]`` (ECMRNet: 0.2-0.6, the default; PPFN: 0.2-0.8).
    brightness : float or (float, float), optional
        Range of the offset ``b ~ U[low, high]`` in grey levels (ECMRNet: 25.5-51, the
        default; PPFN: 51-102).

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as `image`, in ``[0, 1]``.

    Notes
    -----
    ``y = clip(a * 255 x + b, 0, 255) / 255``, with ``a, b`` drawn once per image (in that
    order). This is the public code's ``RandomBrightnessContrast`` with contrast limits
    ``(-0.8, -0.4)`` and brightness limits ``(0.1, 0.2)`` of the maximum.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data import low_contrast
    >>> y = low_contrast(torch.tensor([[0.0, 1.0]]), torch.Generator().manual_seed(0))
    >>> 0.1 <= float(y[0, 0]) <= 0.2, float(y[0, 1] - y[0, 0]) <= 0.6  # offset b, gain a
    (True, True)
    """
    g = as_generator(generator)
    x = as_batch(image)
    kw = preset_defaults("C", contrast=contrast, brightness=brightness)
    a_range = value_range("contrast", kw["contrast"])
    b_range = value_range("brightness", kw["brightness"], low=-GREY, high=GREY)
    a, b = [], []
    for _ in range(x.shape[0]):
        a.append(uniform(g, *a_range))
        b.append(uniform(g, *b_range) / GREY)
    return clip_like(x * per_image(x, a) + per_image(x, b), image)


def _odd_sizes(value) -> tuple[int, int]:
    lo, hi = value_range("kernel_size", value, low=1)
    if lo != int(lo) or hi != int(hi) or int(lo) % 2 == 0 or int(hi) % 2 == 0:
        raise InvalidInputError(
            f"`kernel_size` must be an odd int or a (low, high) pair of odd ints; got {value!r}"
        )
    return int(lo), int(hi)


def _reflect_index(n: int, pad: int) -> torch.Tensor:
    """Indices of a reflect-101 padding (``dcb|abcd|cba``) of any width, even wider than n."""
    i = torch.arange(-pad, n + pad)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = i.remainder(period)
    return torch.where(i >= n, period - i, i)


def gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian of odd length `size` (float64), as OpenCV's."""
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-(t**2) / (2.0 * sigma**2))
    return w / w.sum()


def gaussian_filter(x: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a batch ``(N, 1, H, W)``: reflect-101 borders, float64 sums.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data.degradations import gaussian_filter
    >>> float(gaussian_filter(torch.ones(1, 1, 4, 5), 7, 2.0).min())  # constant stays constant
    1.0
    """
    pad = size // 2
    h, w = x.shape[-2:]
    k = gaussian_kernel(size, sigma).to(x.device)
    y = x.double()[..., _reflect_index(h, pad).to(x.device), :]
    y = F.conv2d(y, k.view(1, 1, size, 1))
    y = y[..., _reflect_index(w, pad).to(x.device)]
    return F.conv2d(y, k.view(1, 1, 1, size)).to(x.dtype)


def gaussian_blur(image, generator, *, kernel_size=None, sigma=None):
    """Gaussian blur with a random odd kernel size and sigma; reflect (101) borders.

    Parameters
    ----------
    image : torch.Tensor
        ``(H, W)``, ``(1, H, W)`` or ``(N, 1, H, W)``, floating point, values in ``[0, 1]``.
    generator : torch.Generator or int
        CPU generator (or seed) for the draws.
    kernel_size : int or (int, int), optional
        Odd kernel sizes to draw from, uniformly among the odd sizes in the range
        (ECMRNet: 7-17, the default; PPFN: 7-23).
    sigma : float or (float, float), optional
        Range of the standard deviation in pixels (ECMRNet: 1-2, the default; PPFN: 1-3).

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as `image`.

    Notes
    -----
    Per image: the size, then ``sigma ~ U[low, high]``. The kernel is
    ``exp(-t^2 / (2 sigma^2))`` normalised, ``t = -(k-1)/2 .. (k-1)/2`` (OpenCV's), applied
    separably in float64 with OpenCV's default border (reflect without repeating the edge),
    which works for any image size.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data import gaussian_blur
    >>> x = torch.zeros(9, 9)
    >>> x[4, 4] = 1.0
    >>> y = gaussian_blur(x, torch.Generator().manual_seed(0), kernel_size=3, sigma=1.0)
    >>> round(float(y.sum()), 6), float(y[4, 4]) < 1.0  # mass kept, peak spread
    (1.0, True)
    """
    g = as_generator(generator)
    x = as_batch(image)
    kw = preset_defaults("B", kernel_size=kernel_size, sigma=sigma)
    lo, hi = _odd_sizes(kw["kernel_size"])
    s_range = value_range("sigma", kw["sigma"])
    if s_range[0] <= 0:
        raise InvalidInputError(f"`sigma` must be > 0; got {sigma!r}")
    out = []
    for i in range(x.shape[0]):
        size = lo + 2 * randint(g, 0, (hi - lo) // 2)
        s = uniform(g, *s_range)
        out.append(gaussian_filter(x[i : i + 1], size, s))
    return clip_like(torch.cat(out), image)


def optical_nonuniformity(image, generator, *, delta=None):
    """Optical non-uniformity: a smooth bump (or its complement) added to the image.

    Parameters
    ----------
    image : torch.Tensor
        ``(H, W)``, ``(1, H, W)`` or ``(N, 1, H, W)``, floating point, values in ``[0, 1]``.
    generator : torch.Generator or int
        CPU generator (or seed) for the draws.
    delta : int or (int, int), optional
        Range of the amplitude in grey levels, an integer drawn uniformly with both ends
        included (ECMRNet: 15-55, the default; PPFN: 15-75).

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as `image`, in ``[0, 1]``.

    Notes
    -----
    Per image: ``delta``, a centre pixel ``(cy, cx)`` uniform over the image, and a fair
    coin. With ``r`` the distance of each pixel to the centre divided by its largest value,
    ``bump = cos(pi/2 * r)^4``; the image gets ``+ delta * bump`` (heads) or
    ``+ delta * (1 - bump)`` (tails), in grey levels, clipped.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data import optical_nonuniformity
    >>> y = optical_nonuniformity(torch.zeros(8, 8), torch.Generator().manual_seed(0), delta=51)
    >>> round(float(y.max()) * 255)  # the bump's peak (or its complement's) is delta
    51
    """
    g = as_generator(generator)
    x = as_batch(image)
    delta = preset_defaults("N", delta=delta)["delta"]
    lo, hi = value_range("delta", delta, high=GREY)
    if lo != int(lo) or hi != int(hi):
        raise InvalidInputError(f"`delta` must be an int or a pair of ints; got {delta!r}")
    h, w = x.shape[-2:]
    yy = torch.arange(h, dtype=torch.float64)[:, None]
    xx = torch.arange(w, dtype=torch.float64)[None, :]
    fields = []
    for _ in range(x.shape[0]):
        d = randint(g, int(lo), int(hi))
        cy, cx = randint(g, 0, h - 1), randint(g, 0, w - 1)
        heads = coin(g)
        r = torch.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        r = r / r.max() if float(r.max()) > 0 else r
        bump = torch.cos(r * (math.pi / 2)) ** 4
        fields.append(d / GREY * (bump if heads else 1.0 - bump))
    return clip_like(x + per_image(x, fields), image)


def stripe_noise(image, generator, *, gain_std=None, offset_std=None):
    """Row or column stripe noise: a per-column (or per-row) gain and offset.

    Parameters
    ----------
    image : torch.Tensor
        ``(H, W)``, ``(1, H, W)`` or ``(N, 1, H, W)``, floating point, values in ``[0, 1]``.
    generator : torch.Generator or int
        CPU generator (or seed) for the draws.
    gain_std : float or (float, float), optional
        Range of ``s_g``, the standard deviation of the gains (ECMRNet: 0.03-0.07, the
        default; PPFN: 0.03-0.10).
    offset_std : float or (float, float), optional
        Range of ``s_b``, the standard deviation of the offsets in grey levels (ECMRNet: 0-3,
        the default; PPFN: 0-5).

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as `image`, in ``[0, 1]``.

    Notes
    -----
    Per image: a fair coin (heads: one gain and offset per column, else per row),
    ``s_g ~ U``, the gains ``~ N(0, s_g^2)``, ``s_b ~ U``, the offsets ``~ N(0, s_b^2)``;
    then ``y = x + x * gain + offset`` (grey levels), clipped.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data import stripe_noise
    >>> y = stripe_noise(torch.full((6, 6), 0.5), torch.Generator().manual_seed(1))
    >>> rows_equal = bool((y == y[:1]).all())  # one value per column
    >>> cols_equal = bool((y == y[:, :1]).all())  # one value per row
    >>> rows_equal != cols_equal
    True
    """
    g = as_generator(generator)
    x = as_batch(image)
    kw = preset_defaults("N", gain_std=gain_std, offset_std=offset_std)
    sg_range = value_range("gain_std", kw["gain_std"])
    sb_range = value_range("offset_std", kw["offset_std"])
    h, w = x.shape[-2:]
    gains, offsets = [], []
    for _ in range(x.shape[0]):
        per_column = coin(g)
        shape = (1, w) if per_column else (h, 1)
        s_g = uniform(g, *sg_range)
        gain = torch.randn(shape, generator=g, dtype=torch.float64) * s_g
        s_b = uniform(g, *sb_range)
        offset = torch.randn(shape, generator=g, dtype=torch.float64) * (s_b / GREY)
        gains.append(gain.expand(h, w))
        offsets.append(offset.expand(h, w))
    return clip_like(x + x * per_image(x, gains) + per_image(x, offsets), image)


def gaussian_noise(image, generator, *, sigma=None):
    """Additive white Gaussian noise with a random standard deviation in grey levels.

    Parameters
    ----------
    image : torch.Tensor
        ``(H, W)``, ``(1, H, W)`` or ``(N, 1, H, W)``, floating point, values in ``[0, 1]``.
    generator : torch.Generator or int
        CPU generator (or seed) for the draws.
    sigma : float or (float, float), optional
        Range of the standard deviation in grey levels (ECMRNet: 5-15, the default; PPFN:
        5-20).

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as `image`, in ``[0, 1]``.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data import gaussian_noise
    >>> y = gaussian_noise(torch.full((256, 256), 0.5), torch.Generator().manual_seed(0), sigma=10)
    >>> round(float(y.std()) * 255)
    10
    """
    g = as_generator(generator)
    x = as_batch(image)
    s_range = value_range("sigma", preset_defaults("N", sigma=sigma)["sigma"])
    h, w = x.shape[-2:]
    noise = []
    for _ in range(x.shape[0]):
        s = uniform(g, *s_range)
        noise.append(torch.randn((h, w), generator=g, dtype=torch.float64) * (s / GREY))
    return clip_like(x + per_image(x, noise), image)


def tir_noise(image, generator, *, delta=None, gain_std=None, offset_std=None, sigma=None):
    """TIR noise: :func:`optical_nonuniformity`, :func:`stripe_noise`, :func:`gaussian_noise`.

    The same generator runs through the three parts, so this equals calling them in turn
    (each clips to ``[0, 1]``, as the public code clips to ``uint8`` after each). Each
    keyword is that of its part (unset: the default preset's).

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data import (
    ...     gaussian_noise, optical_nonuniformity, stripe_noise, tir_noise)
    >>> x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> g = torch.Generator().manual_seed(3)
    >>> parts = gaussian_noise(stripe_noise(optical_nonuniformity(x, g), g), g)
    >>> torch.equal(tir_noise(x, torch.Generator().manual_seed(3)), parts)
    True
    """
    g = as_generator(generator)
    y = optical_nonuniformity(image, g, delta=delta)
    y = stripe_noise(y, g, gain_std=gain_std, offset_std=offset_std)
    return gaussian_noise(y, g, sigma=sigma)


def dead_hot_pixels(image, generator, *, dead=None, hot=None):
    """Dead and hot pixels: each pixel goes to 0 with probability `dead`, then to 1 with `hot`.

    Parameters
    ----------
    image : torch.Tensor
        ``(H, W)``, ``(1, H, W)`` or ``(N, 1, H, W)``, floating point, values in ``[0, 1]``.
    generator : torch.Generator or int
        CPU generator (or seed) for the draws.
    dead, hot : float, optional
        Per-pixel probabilities (default 0.2% and 0.1%, the public code's; an independent
        coin per pixel: the counts vary around these fractions).

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as `image`.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data import dead_hot_pixels
    >>> y = dead_hot_pixels(torch.full((100, 100), 0.5), torch.Generator().manual_seed(0),
    ...                     dead=0.01, hot=0.02)
    >>> int((y == 0).sum()), int((y == 1).sum())  # about 100 and 200
    (101, 201)
    """
    g = as_generator(generator)
    x = as_batch(image)
    kw = preset_defaults("D", dead=dead, hot=hot)
    p_dead = value_range("dead", kw["dead"], high=1.0)[0]
    p_hot = value_range("hot", kw["hot"], high=1.0)[0]
    h, w = x.shape[-2:]
    dead_masks, hot_masks = [], []
    for _ in range(x.shape[0]):
        dead_masks.append(torch.rand((h, w), generator=g, dtype=torch.float64) < p_dead)
        hot_masks.append(torch.rand((h, w), generator=g, dtype=torch.float64) < p_hot)
    y = x.clone()
    y[per_image(x, dead_masks) > 0] = 0.0
    y[per_image(x, hot_masks) > 0] = 1.0
    return clip_like(y, image)


def vignetting(image, generator, *, strength=(0.30, 0.48), center=(0.47, 0.53), gamma=(1.2, 1.8)):
    """Vignetting (an extra op of the public code): darker towards the corners.

    Parameters
    ----------
    image : torch.Tensor
        ``(H, W)``, ``(1, H, W)`` or ``(N, 1, H, W)``, floating point, values in ``[0, 1]``.
    generator : torch.Generator or int
        CPU generator (or seed) for the draws.
    strength : float or (float, float)
        Range of the fall-off ``s`` at the farthest pixel.
    center : float or (float, float)
        Range of the centre's coordinates, as fractions of the width and the height (each
        drawn separately).
    gamma : float or (float, float)
        Range of the fall-off exponent.

    Notes
    -----
    Per image: ``s``, ``cx``, ``cy``, ``gamma``; with ``r`` the distance to the centre in
    normalised coordinates divided by its largest value, ``y = x * clip(1 - s r^gamma, 0, 1)``.
    Not one of the paper's tasks, so not in a preset: its ranges are its own defaults;
    :func:`~sepkit_torch.data.register_degradation` makes it one (see ``docs/data.md``).

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data import vignetting
    >>> y = vignetting(torch.ones(64, 64), torch.Generator().manual_seed(0), strength=0.4)
    >>> round(float(y[32, 32]), 2), round(float(y.min()), 2)
    (1.0, 0.6)
    """
    g = as_generator(generator)
    x = as_batch(image)
    s_range = value_range("strength", strength, high=1.0)
    c_range = value_range("center", center, high=1.0)
    gm_range = value_range("gamma", gamma)
    h, w = x.shape[-2:]
    yy = torch.arange(h, dtype=torch.float64)[:, None] / max(h - 1, 1)
    xx = torch.arange(w, dtype=torch.float64)[None, :] / max(w - 1, 1)
    masks = []
    for _ in range(x.shape[0]):
        s = uniform(g, *s_range)
        cx, cy = uniform(g, *c_range), uniform(g, *c_range)
        gm = uniform(g, *gm_range)
        r = torch.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
        r = r / (r.max() + 1e-8)
        masks.append((1.0 - s * r**gm).clamp(0.0, 1.0))
    return clip_like(x * per_image(x, masks), image)


# The built-ins, registered with their presets (the registry's table).
for _name, _fn, _order, _description in (
    ("C", low_contrast, 10.0, "low contrast: y = a x + b"),
    ("B", gaussian_blur, 20.0, "Gaussian blur, odd kernel, reflect border"),
    ("N", tir_noise, 30.0, "TIR noise: optical non-uniformity + stripes + white Gaussian"),
    ("D", dead_hot_pixels, 40.0, "dead (0) and hot (1) pixels"),
):
    register_degradation(
        _name, _fn, order=_order, description=_description, presets=BUILTIN_PRESETS[_name]
    )
