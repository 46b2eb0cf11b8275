"""Thermal-infrared degradations as pure functions, and the registry that names tasks.

Every operation takes a single-channel image tensor with values in ``[0, 1]`` -- one image
``(H, W)`` or ``(1, H, W)``, or a batch ``(N, 1, H, W)`` -- and an explicit CPU
:class:`torch.Generator` (or an int seed), and returns a new tensor of the same shape, dtype
and device, clipped to ``[0, 1]``. Parameters are drawn per image of a batch. The parameter
ranges are in grey levels (``0..255``), as on the design page; the image is scaled by 255
wherever a definition speaks of grey levels.

All random numbers (parameters, noise fields, pixel masks) are drawn on the CPU generator
and then moved to the image's device, so a ``(seed, image)`` pair gives the same output on
the CPU and on a GPU: bit for bit for every operation except the blur, whose convolution
(done in float64) may differ in the last bit of float32.

Tasks are named by their parts: ``"C"`` (low contrast), ``"B"`` (blur), ``"N"`` (TIR
noise), ``"D"`` (dead/hot pixels) and compounds such as ``"CB"`` or ``"CBND"``, whose parts
are applied in the canonical order C, B, N, D. :func:`register_degradation` adds a new part
that composes with the others.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F

from sepkit_torch._errors import InvalidInputError, UnknownTaskError

__all__ = [
    "APPENDIX_TASKS",
    "DEGRADATION_PRESETS",
    "PAPER_TASKS",
    "Degradation",
    "UnknownDegradationError",
    "dead_hot_pixels",
    "degrade",
    "gaussian_blur",
    "gaussian_noise",
    "get_degradation",
    "list_degradations",
    "list_tasks",
    "low_contrast",
    "optical_nonuniformity",
    "parse_task",
    "quantize",
    "register_degradation",
    "stripe_noise",
    "task_name",
    "tir_noise",
    "unregister_degradation",
    "vignetting",
]

#: Grey levels of an 8-bit image: the scale of every parameter range below.
GREY = 255.0

#: The seven tasks of the paper, in its order.
PAPER_TASKS = ("C", "B", "N", "CB", "CN", "BN", "CBN")

#: The tasks its appendix adds.
APPENDIX_TASKS = ("D", "CBND")


class UnknownDegradationError(UnknownTaskError):
    """A task or degradation name that is not registered (also a ``ValueError``)."""


# --------------------------------------------------------------------------------------
# argument checks and helpers


def _generator(generator) -> torch.Generator:
    if isinstance(generator, int) and not isinstance(generator, bool):
        return torch.Generator().manual_seed(generator)
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"`generator` must be a torch.Generator or an int seed; got {type(generator).__name__}"
        )
    if generator.device.type != "cpu":
        raise InvalidInputError(
            "`generator` must be a CPU torch.Generator (random numbers are drawn on the CPU and "
            f"moved, so that CPU and GPU give the same output); got one on {generator.device}"
        )
    return generator


def _as_batch(image) -> torch.Tensor:
    """``image`` viewed as ``(N, 1, H, W)``."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"`image` must be a torch.Tensor; got {type(image).__name__}")
    if not image.is_floating_point():
        raise TypeError(
            "`image` must be a floating-point tensor with values in [0, 1]; "
            f"got dtype {image.dtype}"
        )
    if image.ndim == 2:
        x = image[None, None]
    elif image.ndim == 3 and image.shape[0] == 1:
        x = image[None]
    elif image.ndim == 4 and image.shape[1] == 1:
        x = image
    else:
        raise InvalidInputError(
            "`image` must be one single-channel image (H, W) or (1, H, W), or a batch "
            f"(N, 1, H, W); got shape {tuple(image.shape)}"
        )
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        raise InvalidInputError(f"`image` must have H, W >= 1; got shape {tuple(image.shape)}")
    return x


def _range(name: str, value, *, low: float = 0.0, high: float = math.inf) -> tuple[float, float]:
    """A number or a ``(low, high)`` pair, as a pair within ``[low, high]``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        pair = (float(value), float(value))
    else:
        try:
            pair = tuple(float(v) for v in value)
        except (TypeError, ValueError):
            pair = ()
    if len(pair) != 2 or not (low <= pair[0] <= pair[1] <= high):
        raise InvalidInputError(
            f"`{name}` must be a number or a (low, high) pair with {low:g} <= low <= high <= "
            f"{high:g}; got {value!r}"
        )
    return pair


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """Uniform integer in ``[lo, hi]`` (both included)."""
    return int(torch.randint(lo, hi + 1, (), generator=g))


def _coin(g: torch.Generator) -> bool:
    return float(torch.rand((), generator=g, dtype=torch.float64)) < 0.5


def _per_image(x: torch.Tensor, values: list) -> torch.Tensor:
    """CPU-built per-image fields (scalars or maps), stacked and moved to ``x``."""
    t = torch.stack([torch.as_tensor(v, dtype=torch.float64) for v in values])
    t = t.reshape(len(values), 1, *t.shape[1:]) if t.ndim == 3 else t.reshape(-1, 1, 1, 1)
    return t.to(device=x.device, dtype=x.dtype)


def _finish(out: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    return out.clamp_(0.0, 1.0).reshape(image.shape)


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


def low_contrast(image, generator, *, contrast=(0.2, 0.6), brightness=(25.5, 51.0)):
    """Low contrast: ``y = a * x + b`` in grey levels, clipped.

    Parameters
    ----------
    image : torch.Tensor
        ``(H, W)``, ``(1, H, W)`` or ``(N, 1, H, W)``, floating point, values in ``[0, 1]``.
    generator : torch.Generator or int
        CPU generator (or seed) for the draws.
    contrast : float or (float, float)
        Range of the gain ``a ~ U[low, high]`` (ECMRNet: 0.2-0.6; PPFN: 0.2-0.8).
    brightness : float or (float, float)
        Range of the offset ``b ~ U[low, high]`` in grey levels (ECMRNet: 25.5-51; PPFN: 51-102).

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
    g = _generator(generator)
    x = _as_batch(image)
    a_range = _range("contrast", contrast)
    b_range = _range("brightness", brightness, low=-GREY, high=GREY)
    a, b = [], []
    for _ in range(x.shape[0]):
        a.append(_uniform(g, *a_range))
        b.append(_uniform(g, *b_range) / GREY)
    return _finish(x * _per_image(x, a) + _per_image(x, b), image)


def _odd_sizes(value) -> tuple[int, int]:
    lo, hi = _range("kernel_size", value, low=1)
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


def _blur_one(x: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(1, 1, H, W)`` with reflect-101 borders, in float64."""
    pad = size // 2
    h, w = x.shape[-2:]
    k = gaussian_kernel(size, sigma).to(x.device)
    y = x.double()[..., _reflect_index(h, pad).to(x.device), :]
    y = F.conv2d(y, k.view(1, 1, size, 1))
    y = y[..., _reflect_index(w, pad).to(x.device)]
    return F.conv2d(y, k.view(1, 1, 1, size)).to(x.dtype)


def gaussian_blur(image, generator, *, kernel_size=(7, 17), sigma=(1.0, 2.0)):
    """Gaussian blur with a random odd kernel size and sigma; reflect (101) borders.

    Parameters
    ----------
    image : torch.Tensor
        ``(H, W)``, ``(1, H, W)`` or ``(N, 1, H, W)``, floating point, values in ``[0, 1]``.
    generator : torch.Generator or int
        CPU generator (or seed) for the draws.
    kernel_size : int or (int, int)
        Odd kernel sizes to draw from, uniformly among the odd sizes in the range
        (ECMRNet: 7-17; PPFN: 7-23).
    sigma : float or (float, float)
        Range of the standard deviation in pixels (ECMRNet: 1-2; PPFN: 1-3).

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
    g = _generator(generator)
    x = _as_batch(image)
    lo, hi = _odd_sizes(kernel_size)
    s_range = _range("sigma", sigma)
    if s_range[0] <= 0:
        raise InvalidInputError(f"`sigma` must be > 0; got {sigma!r}")
    out = []
    for i in range(x.shape[0]):
        size = lo + 2 * _randint(g, 0, (hi - lo) // 2)
        s = _uniform(g, *s_range)
        out.append(_blur_one(x[i : i + 1], size, s))
    return _finish(torch.cat(out), image)


def optical_nonuniformity(image, generator, *, delta=(15, 55)):
    """Optical non-uniformity: a smooth bump (or its complement) added to the image.

    Parameters
    ----------
    image : torch.Tensor
        ``(H, W)``, ``(1, H, W)`` or ``(N, 1, H, W)``, floating point, values in ``[0, 1]``.
    generator : torch.Generator or int
        CPU generator (or seed) for the draws.
    delta : int or (int, int)
        Range of the amplitude in grey levels, an integer drawn uniformly with both ends
        included (ECMRNet: 15-55; PPFN: 15-75).

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
    g = _generator(generator)
    x = _as_batch(image)
    lo, hi = _range("delta", delta, high=GREY)
    if lo != int(lo) or hi != int(hi):
        raise InvalidInputError(f"`delta` must be an int or a pair of ints; got {delta!r}")
    h, w = x.shape[-2:]
    yy = torch.arange(h, dtype=torch.float64)[:, None]
    xx = torch.arange(w, dtype=torch.float64)[None, :]
    fields = []
    for _ in range(x.shape[0]):
        d = _randint(g, int(lo), int(hi))
        cy, cx = _randint(g, 0, h - 1), _randint(g, 0, w - 1)
        heads = _coin(g)
        r = torch.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        r = r / r.max() if float(r.max()) > 0 else r
        bump = torch.cos(r * (math.pi / 2)) ** 4
        fields.append(d / GREY * (bump if heads else 1.0 - bump))
    return _finish(x + _per_image(x, fields), image)


def stripe_noise(image, generator, *, gain_std=(0.03, 0.07), offset_std=(0.0, 3.0)):
    """Row or column stripe noise: a per-column (or per-row) gain and offset.

    Parameters
    ----------
    image : torch.Tensor
        ``(H, W)``, ``(1, H, W)`` or ``(N, 1, H, W)``, floating point, values in ``[0, 1]``.
    generator : torch.Generator or int
        CPU generator (or seed) for the draws.
    gain_std : float or (float, float)
        Range of ``s_g``, the standard deviation of the gains (ECMRNet: 0.03-0.07; PPFN:
        0.03-0.10).
    offset_std : float or (float, float)
        Range of ``s_b``, the standard deviation of the offsets in grey levels (ECMRNet: 0-3;
        PPFN: 0-5).

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
    g = _generator(generator)
    x = _as_batch(image)
    sg_range = _range("gain_std", gain_std)
    sb_range = _range("offset_std", offset_std)
    h, w = x.shape[-2:]
    gains, offsets = [], []
    for _ in range(x.shape[0]):
        per_column = _coin(g)
        shape = (1, w) if per_column else (h, 1)
        s_g = _uniform(g, *sg_range)
        gain = torch.randn(shape, generator=g, dtype=torch.float64) * s_g
        s_b = _uniform(g, *sb_range)
        offset = torch.randn(shape, generator=g, dtype=torch.float64) * (s_b / GREY)
        gains.append(gain.expand(h, w))
        offsets.append(offset.expand(h, w))
    return _finish(x + x * _per_image(x, gains) + _per_image(x, offsets), image)


def gaussian_noise(image, generator, *, sigma=(5.0, 15.0)):
    """Additive white Gaussian noise with a random standard deviation in grey levels.

    Parameters
    ----------
    image : torch.Tensor
        ``(H, W)``, ``(1, H, W)`` or ``(N, 1, H, W)``, floating point, values in ``[0, 1]``.
    generator : torch.Generator or int
        CPU generator (or seed) for the draws.
    sigma : float or (float, float)
        Range of the standard deviation in grey levels (ECMRNet: 5-15; PPFN: 5-20).

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
    g = _generator(generator)
    x = _as_batch(image)
    s_range = _range("sigma", sigma)
    h, w = x.shape[-2:]
    noise = []
    for _ in range(x.shape[0]):
        s = _uniform(g, *s_range)
        noise.append(torch.randn((h, w), generator=g, dtype=torch.float64) * (s / GREY))
    return _finish(x + _per_image(x, noise), image)


def tir_noise(
    image,
    generator,
    *,
    delta=(15, 55),
    gain_std=(0.03, 0.07),
    offset_std=(0.0, 3.0),
    sigma=(5.0, 15.0),
):
    """TIR noise: :func:`optical_nonuniformity`, :func:`stripe_noise`, :func:`gaussian_noise`.

    The same generator runs through the three parts, so this equals calling them in turn
    (each clips to ``[0, 1]``, as the public code clips to ``uint8`` after each).

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
    g = _generator(generator)
    y = optical_nonuniformity(image, g, delta=delta)
    y = stripe_noise(y, g, gain_std=gain_std, offset_std=offset_std)
    return gaussian_noise(y, g, sigma=sigma)


def dead_hot_pixels(image, generator, *, dead=0.002, hot=0.001):
    """Dead and hot pixels: each pixel goes to 0 with probability `dead`, then to 1 with `hot`.

    Parameters
    ----------
    image : torch.Tensor
        ``(H, W)``, ``(1, H, W)`` or ``(N, 1, H, W)``, floating point, values in ``[0, 1]``.
    generator : torch.Generator or int
        CPU generator (or seed) for the draws.
    dead, hot : float
        Per-pixel probabilities (0.2% and 0.1% in the public code, an independent coin per
        pixel: the counts vary around these fractions).

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
    g = _generator(generator)
    x = _as_batch(image)
    p_dead = _range("dead", dead, high=1.0)[0]
    p_hot = _range("hot", hot, high=1.0)[0]
    h, w = x.shape[-2:]
    dead_masks, hot_masks = [], []
    for _ in range(x.shape[0]):
        dead_masks.append(torch.rand((h, w), generator=g, dtype=torch.float64) < p_dead)
        hot_masks.append(torch.rand((h, w), generator=g, dtype=torch.float64) < p_hot)
    y = x.clone()
    y[_per_image(x, dead_masks) > 0] = 0.0
    y[_per_image(x, hot_masks) > 0] = 1.0
    return _finish(y, image)


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
    Not one of the paper's tasks; :func:`register_degradation` makes it one (see
    ``docs/data.md``).

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data import vignetting
    >>> y = vignetting(torch.ones(64, 64), torch.Generator().manual_seed(0), strength=0.4)
    >>> round(float(y[32, 32]), 2), round(float(y.min()), 2)
    (1.0, 0.6)
    """
    g = _generator(generator)
    x = _as_batch(image)
    s_range = _range("strength", strength, high=1.0)
    c_range = _range("center", center, high=1.0)
    gm_range = _range("gamma", gamma)
    h, w = x.shape[-2:]
    yy = torch.arange(h, dtype=torch.float64)[:, None] / max(h - 1, 1)
    xx = torch.arange(w, dtype=torch.float64)[None, :] / max(w - 1, 1)
    masks = []
    for _ in range(x.shape[0]):
        s = _uniform(g, *s_range)
        cx, cy = _uniform(g, *c_range), _uniform(g, *c_range)
        gm = _uniform(g, *gm_range)
        r = torch.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
        r = r / (r.max() + 1e-8)
        masks.append((1.0 - s * r**gm).clamp(0.0, 1.0))
    return _finish(x * _per_image(x, masks), image)


# --------------------------------------------------------------------------------------
# the registry

#: The parameter presets of the built-in degradations: ECMRNet's public code (default) and
#: PPFN's harsher ranges. A registered degradation may add presets of its own.
DEGRADATION_PRESETS = ("ecmrnet", "ppfn")


@dataclass(frozen=True)
class Degradation:
    """One registered degradation (read-only).

    Attributes
    ----------
    name : str
        Its name in task names: one character (``"C"``) composes by concatenation
        (``"CB"``); a longer name composes with ``+`` (``"C+haze"``).
    fn : callable
        ``fn(image, generator, **kwargs) -> image``, as the functions of this module.
    order : float
        Its place in the canonical order (C 10, B 20, N 30, D 40).
    description : str
        One line for listings.
    presets : mapping of str to mapping
        Keyword arguments of `fn` per preset; a preset not listed calls `fn` with none.
    """

    name: str
    fn: Callable[..., torch.Tensor]
    order: float
    description: str = ""
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def kwargs(self, preset: str = "ecmrnet") -> dict[str, Any]:
        """The keyword arguments `fn` gets under `preset`."""
        return dict(self.presets.get(_preset(preset), {}))

    def __call__(self, image, generator, *, preset: str = "ecmrnet") -> torch.Tensor:
        """Apply it with the parameters of `preset`."""
        out = self.fn(image, generator, **self.kwargs(preset))
        if not isinstance(out, torch.Tensor) or out.shape != image.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InvalidInputError(
                f"degradation {self.name!r} must return a tensor of the input's shape "
                f"{tuple(image.shape)}; got {got}"
            )
        return out


_REGISTRY: dict[str, Degradation] = {}


def _known() -> str:
    return ", ".join(repr(n) for n in list_degradations()) or "none"


def _preset(preset) -> str:
    known = set(DEGRADATION_PRESETS)
    for d in _REGISTRY.values():
        known.update(d.presets)
    if preset not in known:
        raise InvalidInputError(f"`preset` must be one of {sorted(known)}; got {preset!r}")
    return preset


def register_degradation(
    name: str,
    fn: Callable[..., torch.Tensor],
    *,
    order: float | None = None,
    description: str = "",
    presets: Mapping[str, Mapping[str, Any]] | None = None,
    replace: bool = False,
) -> Degradation:
    """Add a degradation that composes with the registered ones in task names.

    Parameters
    ----------
    name : str
        One character (composes by concatenation: ``"CV"``) or a longer identifier
        (composes with ``+``: ``"C+haze"``). A longer name may not consist only of
        registered single-character names (``"CB"`` is a compound, not a name).
    fn : callable
        ``fn(image, generator, **kwargs)``: a single-channel image or batch in ``[0, 1]``
        and a CPU :class:`torch.Generator`, returning a tensor of the same shape. Draw all
        randomness from the generator, on the CPU, so that results are reproducible.
    order : float, optional
        Place in the canonical order (C 10, B 20, N 30, D 40); default: after all others.
        Must differ from every registered order.
    description : str
        One line for listings.
    presets : mapping, optional
        ``{preset: {keyword: value}}``, the keyword arguments of `fn` per preset.
    replace : bool
        Allow replacing a registered degradation of the same name.

    Returns
    -------
    Degradation
        The registered record.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data import (
    ...     degrade, list_degradations, register_degradation, unregister_degradation)
    >>> def invert(image, generator):
    ...     return 1.0 - image
    >>> _ = register_degradation("I", invert, order=15)  # between C and B
    >>> list_degradations()
    ('C', 'I', 'B', 'N', 'D')
    >>> degrade(torch.zeros(4, 4), "CIB", 0).shape
    torch.Size([4, 4])
    >>> unregister_degradation("I")
    """
    if not isinstance(name, str) or not name or not name.replace("_", "a").isalnum():
        raise InvalidInputError(
            f"`name` must be a non-empty string of letters, digits or '_'; got {name!r}"
        )
    if not callable(fn):
        raise TypeError(f"`fn` must be callable; got {type(fn).__name__}")
    if name in _REGISTRY and not replace:
        raise InvalidInputError(
            f"degradation {name!r} is already registered; pass replace=True to replace it"
        )
    letters = {n for n in _REGISTRY if len(n) == 1}
    if len(name) > 1 and set(name) <= letters:
        raise InvalidInputError(
            f"`name` {name!r} would read as the compound of {', '.join(name)}; choose another"
        )
    others = {d.order: n for n, d in _REGISTRY.items() if n != name}
    if order is None:
        order = max(others, default=0.0) + 10.0
    if not isinstance(order, (int, float)) or isinstance(order, bool) or not math.isfinite(order):
        raise InvalidInputError(f"`order` must be a finite number; got {order!r}")
    if order in others:
        raise InvalidInputError(
            f"`order` {order!r} is taken by {others[order]!r}; choose another (C 10, B 20, "
            "N 30, D 40)"
        )
    frozen = MappingProxyType(
        {str(k): MappingProxyType(dict(v)) for k, v in (presets or {}).items()}
    )
    record = Degradation(name, fn, float(order), description, frozen)
    _REGISTRY[name] = record
    return record


def unregister_degradation(name: str) -> None:
    """Remove a registered degradation (built-ins included; re-register to restore)."""
    if name not in _REGISTRY:
        raise UnknownDegradationError(
            f"`name` must be a registered degradation ({_known()}); got {name!r}"
        )
    del _REGISTRY[name]


def list_degradations() -> tuple[str, ...]:
    """Names of the registered degradations, in canonical order.

    Examples
    --------
    >>> from sepkit_torch.data import list_degradations
    >>> list_degradations()
    ('C', 'B', 'N', 'D')
    """
    return tuple(sorted(_REGISTRY, key=lambda n: _REGISTRY[n].order))


def get_degradation(name: str) -> Degradation:
    """The :class:`Degradation` registered as `name`."""
    if name not in _REGISTRY:
        raise UnknownDegradationError(
            f"`name` must be a registered degradation ({_known()}); got {name!r}"
        )
    return _REGISTRY[name]


def parse_task(task: str) -> tuple[str, ...]:
    """The degradations of `task`, in the order they are applied.

    ``"CBN"`` is read letter by letter; a registered longer name stands alone (``"haze"``)
    or joins others with ``+`` (``"C+haze"``). The parts must be registered, distinct and
    written in canonical order (``"BC"`` is refused, not reordered).

    Examples
    --------
    >>> from sepkit_torch.data import parse_task
    >>> parse_task("CBND")
    ('C', 'B', 'N', 'D')
    >>> parse_task("BC")
    Traceback (most recent call last):
    ...
    sepkit_torch._errors.InvalidInputError: `task` 'BC' must list its parts ...; write 'CB'
    """
    if not isinstance(task, str):
        raise TypeError(f"`task` must be a string such as 'CBN'; got {type(task).__name__}")
    if "+" in task:
        parts = tuple(p.strip() for p in task.split("+"))
    elif task in _REGISTRY:
        parts = (task,)
    else:
        parts = tuple(task)
    if not parts or not all(parts):
        raise InvalidInputError(f"`task` must name at least one degradation; got {task!r}")
    unknown = [p for p in parts if p not in _REGISTRY]
    if unknown:
        raise UnknownDegradationError(
            f"`task` {task!r} has unknown degradation(s) {', '.join(map(repr, unknown))}; "
            f"known: {_known()} (compose single letters as 'CBN', longer names with '+')"
        )
    if len(set(parts)) != len(parts):
        raise InvalidInputError(f"`task` {task!r} repeats a degradation")
    canonical = tuple(sorted(parts, key=lambda n: _REGISTRY[n].order))
    if parts != canonical:
        raise InvalidInputError(
            f"`task` {task!r} must list its parts in the canonical order "
            f"({', '.join(list_degradations())}); write {task_name(canonical)!r}"
        )
    return parts


def task_name(parts) -> str:
    """The task name of registered `parts` (in canonical order): ``("C", "B")`` -> ``"CB"``."""
    parts = tuple(sorted(parts, key=lambda n: get_degradation(n).order))
    return "".join(parts) if all(len(p) == 1 for p in parts) else "+".join(parts)


def list_tasks(max_parts: int | None = None) -> tuple[str, ...]:
    """Every task made of registered degradations: singles first, then pairs, ...

    Examples
    --------
    >>> from sepkit_torch.data import list_tasks
    >>> list_tasks(2)
    ('C', 'B', 'N', 'D', 'CB', 'CN', 'CD', 'BN', 'BD', 'ND')
    >>> len(list_tasks())
    15
    """
    names = list_degradations()
    top = len(names) if max_parts is None else min(int(max_parts), len(names))
    return tuple(
        task_name(combo) for r in range(1, top + 1) for combo in itertools.combinations(names, r)
    )


def degrade(image, task: str, generator, *, preset: str = "ecmrnet") -> torch.Tensor:
    """Apply `task`'s degradations in canonical order, one generator running through them.

    Parameters
    ----------
    image : torch.Tensor
        ``(H, W)``, ``(1, H, W)`` or ``(N, 1, H, W)``, floating point, values in ``[0, 1]``.
    task : str
        ``"C"``, ``"CB"``, ``"CBND"``, ... (see :func:`parse_task`).
    generator : torch.Generator or int
        CPU generator, or an int seed (one generator is made from it for the whole task).
    preset : str
        ``"ecmrnet"`` (the public code's ranges, default) or ``"ppfn"`` (harsher).

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as `image`.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data import degrade, gaussian_blur, low_contrast
    >>> x = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> y = degrade(x, "CB", torch.Generator().manual_seed(7))
    >>> g = torch.Generator().manual_seed(7)
    >>> torch.equal(y, gaussian_blur(low_contrast(x, g), g))  # compound = composition
    True
    >>> torch.equal(degrade(x, "CB", 7), y)  # an int seed works the same
    True
    """
    g = _generator(generator)
    parts = parse_task(task)
    _preset(preset)
    _as_batch(image)
    y = image
    for name in parts:
        y = _REGISTRY[name](y, g, preset=preset)
    return y


_BUILTINS = (
    (
        "C",
        low_contrast,
        10.0,
        "low contrast: y = a x + b",
        {
            "ecmrnet": {"contrast": (0.2, 0.6), "brightness": (25.5, 51.0)},
            "ppfn": {"contrast": (0.2, 0.8), "brightness": (51.0, 102.0)},
        },
    ),
    (
        "B",
        gaussian_blur,
        20.0,
        "Gaussian blur, odd kernel, reflect border",
        {
            "ecmrnet": {"kernel_size": (7, 17), "sigma": (1.0, 2.0)},
            "ppfn": {"kernel_size": (7, 23), "sigma": (1.0, 3.0)},
        },
    ),
    (
        "N",
        tir_noise,
        30.0,
        "TIR noise: optical non-uniformity + stripes + white Gaussian",
        {
            "ecmrnet": {
                "delta": (15, 55),
                "gain_std": (0.03, 0.07),
                "offset_std": (0.0, 3.0),
                "sigma": (5.0, 15.0),
            },
            "ppfn": {
                "delta": (15, 75),
                "gain_std": (0.03, 0.10),
                "offset_std": (0.0, 5.0),
                "sigma": (5.0, 20.0),
            },
        },
    ),
    (
        "D",
        dead_hot_pixels,
        40.0,
        "dead (0) and hot (1) pixels",
        # PPFN has no D; both presets use the public code's fractions.
        {"ecmrnet": {"dead": 0.002, "hot": 0.001}, "ppfn": {"dead": 0.002, "hot": 0.001}},
    ),
)

for _name, _fn, _order, _description, _presets in _BUILTINS:
    register_degradation(_name, _fn, order=_order, description=_description, presets=_presets)
