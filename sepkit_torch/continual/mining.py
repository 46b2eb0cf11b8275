"""SKMM wiring: a compound task mines its single-degradation branches.

For a compound task (``add_task("CBN", parts=("C", "B", "N"))``) the path is: the shared
stem; the parts' branches, run without gradient (frozen, a fixed knowledge bank); the
compound task's own branch; its SKMM (:mod:`sepkit_torch.models.skmm`), which mines the
parts' outputs into the compound branch's d3 output; the shared ``out``. The SKMM trains
with the compound task's branch and is frozen with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sepkit_torch._errors import InvalidInputError
from sepkit_torch.models.backbone import Branch
from sepkit_torch.models.skmm import SKMM_VARIANTS, SKMMConfig, make_skmm

__all__ = ["build_miner", "mine", "skmm_config"]


def skmm_config(value) -> SKMMConfig | None:
    """Normalise the ``skmm`` option of :meth:`~sepkit_torch.ECMRNet.add_task`.

    None (no mining), a variant name (``"released"``, ``"paper"``, default sizes
    M = 32, R = 8) or an :class:`~sepkit_torch.models.SKMMConfig`.

    Examples
    --------
    >>> from sepkit_torch.continual.mining import skmm_config
    >>> skmm_config("paper")
    SKMMConfig(variant='paper', mix_channels=32, rank=8)
    >>> skmm_config(None) is None
    True
    """
    if value is None or isinstance(value, SKMMConfig):
        return value
    if isinstance(value, str):
        if value not in SKMM_VARIANTS:
            raise InvalidInputError(
                f"`skmm` must be one of {sorted(SKMM_VARIANTS)}, an SKMMConfig or None; "
                f"got {value!r}"
            )
        return SKMMConfig(value)
    raise TypeError(
        f"`skmm` must be one of {sorted(SKMM_VARIANTS)}, an SKMMConfig or None; got {value!r}"
    )


def build_miner(config: SKMMConfig, channels: int, parts: int, like: torch.Tensor) -> nn.Module:
    """A fresh SKMM for `parts` sub-degradations, on the device and dtype of `like`."""
    with torch.device(like.device):
        return make_skmm(config, channels, parts).to(like.dtype)


def mine(
    features: torch.Tensor,
    branch: Branch,
    parts: Sequence[Branch],
    bottom: nn.Module,
    miner: nn.Module,
) -> torch.Tensor:
    """The compound path from the stem's output up to (not including) ``out``.

    Parameters
    ----------
    features : Tensor (B, C, H, W)
        The shared stem's output (input already padded).
    branch : Branch
        The compound task's branch.
    parts : sequence of Branch
        The single-degradation branches it mines, in the task's ``parts`` order; run under
        :func:`torch.no_grad`.
    bottom : nn.Module
        The shared bottleneck every branch uses.
    miner : nn.Module
        The task's SKMM, ``miner(compound_features, [part_features, ...])``.
    """
    if not parts:
        raise InvalidInputError("`parts` must name at least one branch to mine; got none")
    with torch.no_grad():
        mined = [part(features, bottom) for part in parts]
    return miner(branch(features, bottom), mined)
