"""Seeded draws and the argument checks shared by the degradations, scenes and data sets.

Every random number of :mod:`sepkit_torch.data` is drawn from an explicit CPU
:class:`torch.Generator` through these helpers (never a global random state), so a seed
gives the same draws, in the same order, on any machine.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from sepkit_torch._errors import InvalidInputError

__all__ = [
    "as_batch",
    "as_generator",
    "clip_like",
    "coin",
    "image_size",
    "mix_seed",
    "per_image",
    "randint",
    "uniform",
    "value_range",
]


def as_generator(generator) -> torch.Generator:
    """`generator` itself, or a fresh CPU generator seeded with it when it is an int.

    Examples
    --------
    >>> from sepkit_torch.data.sampling import as_generator
    >>> as_generator(3).initial_seed()
    3
    """
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


def as_batch(image) -> torch.Tensor:
    """`image` (``(H, W)``, ``(1, H, W)`` or ``(N, 1, H, W)``, floating) viewed as a batch.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.data.sampling import as_batch
    >>> as_batch(torch.zeros(5, 7)).shape
    torch.Size([1, 1, 5, 7])
    """
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


def value_range(name: str, value, *, low: float = 0.0, high: float = math.inf):
    """A number or a ``(low, high)`` pair, as a pair of floats within ``[low, high]``.

    Examples
    --------
    >>> from sepkit_torch.data.sampling import value_range
    >>> value_range("sigma", 2), value_range("sigma", (1, 3))
    ((2.0, 2.0), (1.0, 3.0))
    """
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


def image_size(value, *, name: str = "size", minimum: int = 8) -> tuple[int, int]:
    """A side or a ``(height, width)`` pair of ints of at least `minimum`, as a pair.

    Examples
    --------
    >>> from sepkit_torch.data.sampling import image_size
    >>> image_size(32), image_size((24, 40))
    ((32, 32), (24, 40))
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    try:
        h, w = (int(v) for v in value)
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    except (TypeError, ValueError):
        ok = False
    if not ok or h < minimum or w < minimum:
        raise InvalidInputError(
            f"`{name}` must be an int or an (height, width) pair of ints >= {minimum}; "
            f"got {value!r}"
        )
    return h, w


def uniform(g: torch.Generator, lo: float, hi: float) -> float:
    """One float uniform in ``[lo, hi]`` (one float64 draw of `g`)."""
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


def randint(g: torch.Generator, lo: int, hi: int) -> int:
    """One int uniform in ``[lo, hi]`` (both included)."""
    return int(torch.randint(lo, hi + 1, (), generator=g))


def coin(g: torch.Generator, p: float = 0.5) -> bool:
    """True with probability `p` (one float64 draw of `g`)."""
    return float(torch.rand((), generator=g, dtype=torch.float64)) < p


def per_image(x: torch.Tensor, values: list) -> torch.Tensor:
    """CPU-built per-image values (scalars or ``(H, W)`` maps) as ``(N, 1, ., .)`` on ``x``."""
    t = torch.stack([torch.as_tensor(v, dtype=torch.float64) for v in values])
    t = t.reshape(len(values), 1, *t.shape[1:]) if t.ndim == 3 else t.reshape(-1, 1, 1, 1)
    return t.to(device=x.device, dtype=x.dtype)


def clip_like(out: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """`out` clipped to ``[0, 1]`` (in place) and shaped as `image`."""
    return out.clamp_(0.0, 1.0).reshape(image.shape)


def mix_seed(*keys: int) -> int:
    """A 63-bit seed from a tuple of non-negative ints (NumPy's SeedSequence).

    Examples
    --------
    >>> from sepkit_torch.data.sampling import mix_seed
    >>> mix_seed(0, 1) == mix_seed(0, 1) != mix_seed(1, 0)
    True
    """
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & (2**63 - 1)
