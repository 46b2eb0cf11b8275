"""Procedural thermal scenes: the embedded default data set when no folder is given.

A scene is drawn from a seed alone (CPU, float64, no global random state), at any size,
in one of two styles:

- ``"soft"`` (:mod:`~sepkit_torch.data.soft_scenes`, the default): simple shapes with soft
  edges; the first generator, kept so that earlier runs reproduce;
- ``"detailed"`` (:mod:`~sepkit_torch.data.detailed_scenes`): sharp-edged buildings with
  window grids, roads in perspective, textured vegetation, warm people and vehicles, sky
  gradients and clouds, and a sensor-like tone mapping: much closer to real thermal
  footage in the statistics that matter for restoration (``docs/data.md``).
"""

from __future__ import annotations

import torch

from sepkit_torch._errors import InvalidInputError
from sepkit_torch.data.detailed_scenes import detailed_scene
from sepkit_torch.data.sampling import as_generator, image_size, mix_seed
from sepkit_torch.data.soft_scenes import soft_scene

__all__ = ["SCENE_STYLES", "check_style", "thermal_scene", "thermal_scenes"]

#: The styles of :func:`thermal_scene`; the first is the default.
SCENE_STYLES = ("soft", "detailed")

_DRAW = {"soft": soft_scene, "detailed": detailed_scene}


def check_style(style) -> str:
    """`style` itself if it is one of :data:`SCENE_STYLES`, else an error naming them."""
    if style not in SCENE_STYLES:
        raise InvalidInputError(f"`style` must be one of {list(SCENE_STYLES)}; got {style!r}")
    return style


def thermal_scene(size=256, generator=0, *, style: str = "soft") -> torch.Tensor:
    """One procedural thermal-like scene, ``(1, H, W)`` float32 in ``[0, 1]``.

    Parameters
    ----------
    size : int or (int, int)
        Side, or ``(height, width)``, at least 8.
    generator : torch.Generator or int
        CPU generator, or an int seed. Same seed, same scene, on any machine.
    style : {'soft', 'detailed'}
        The generator (module docstring).

    Returns
    -------
    torch.Tensor
        ``(1, H, W)``, float32, warm = bright (white-hot).

    See Also
    --------
    thermal_scenes : a batch from one seed.

    Examples
    --------
    >>> from sepkit_torch.data import thermal_scene
    >>> x = thermal_scene((48, 64), 0)
    >>> x.shape, x.dtype, float(x.min()) >= 0.0, float(x.max()) <= 1.0
    (torch.Size([1, 48, 64]), torch.float32, True, True)
    >>> bool((thermal_scene((48, 64), 0) == x).all())
    True
    >>> thermal_scene((48, 64), 0, style="detailed").shape
    torch.Size([1, 48, 64])
    """
    draw = _DRAW[check_style(style)]
    g = as_generator(generator)
    h, w = image_size(size)
    return draw(h, w, g).to(torch.float32)[None]


def thermal_scenes(n: int, size=256, seed: int = 0, *, style: str = "soft") -> torch.Tensor:
    """`n` scenes ``(n, 1, H, W)``; scene ``i`` is ``thermal_scene(size, seed_i)``.

    The seeds ``seed_i`` come from :class:`numpy.random.SeedSequence` of ``(seed, i)``, so
    scene ``i`` does not depend on `n`.

    Examples
    --------
    >>> from sepkit_torch.data import thermal_scenes
    >>> thermal_scenes(3, 32, seed=1).shape
    torch.Size([3, 1, 32, 32])
    >>> bool((thermal_scenes(3, 32, seed=1)[1] == thermal_scenes(2, 32, seed=1)[1]).all())
    True
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InvalidInputError(f"`n` must be a positive int; got {n!r}")
    check_style(style)
    return torch.stack([thermal_scene(size, mix_seed(seed, i), style=style) for i in range(n)])
