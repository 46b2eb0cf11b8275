"""Parameter and MAC counts with the rules of the paper (ultralytics-thop 2.0.14), no thop.

The paper's "FLOPs" are multiply-accumulates as thop 2.0.14 counts them. This module
reimplements exactly those rules with forward hooks and runs the forward pass on the
``meta`` device, so counting the paper network at 512 x 640 allocates no activations
and takes a fraction of a second.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import torch
from torch import nn
from torch.func import functional_call

from sepkit_torch._errors import InvalidInputError

__all__ = ["COUNT_SHAPE", "Complexity", "complexity"]

#: The input the paper counts at: one 640 x 512 single-channel frame.
COUNT_SHAPE = (1, 1, 512, 640)


@dataclass(frozen=True)
class Complexity:
    """Counts of one forward path (read-only).

    Attributes
    ----------
    activated_params : int
        Weights and biases of every Conv2d and Linear that ran (each module once).
    macs : int
        Multiply-accumulates by the thop 2.0.14 rules (see :func:`complexity`).
    total_params : int
        ``numel`` of every parameter of the model (buffers excluded).
    macs_by_module : tuple of (str, int)
        MACs per counted module call, in call order, by qualified module name.
    """

    activated_params: int
    macs: int
    total_params: int
    macs_by_module: tuple[tuple[str, int], ...] = field(default=(), repr=False)

    @property
    def gmacs(self) -> float:
        """``macs / 1e9`` (what the paper prints as "FLOPs (G)")."""
        return self.macs / 1e9


def _conv_macs(module: nn.Conv2d, output: torch.Tensor) -> int:
    return output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)


def _adaptive_avgpool_macs(inp: torch.Tensor, output: torch.Tensor) -> int:
    # thop: kernel = prod(in_size / out_size) additions + 1 division per output element.
    kernel = Fraction(math.prod(inp.shape[2:]), math.prod(output.shape[2:]))
    return round((kernel + 1) * output.numel())


def complexity(model: nn.Module, input_shape: Sequence[int], task: str | None = None):
    """Activated params, MACs and total params of `model` on an input of `input_shape`.

    Parameters
    ----------
    model : nn.Module
        Usually an :class:`~sepkit_torch.ECMRNet` or a
        :class:`~sepkit_torch.models.Backbone`; any module whose forward takes one tensor.
    input_shape : sequence of 4 int
        ``(batch, channels, H, W)``, e.g. ``(1, 1, 512, 640)``.
    task : str, optional
        Passed on as ``model(x, task=task)``; None runs ``model(x)`` (for ECMRNet, the
        pretrained path).

    Returns
    -------
    Complexity

    Notes
    -----
    Rules of thop 2.0.14, applied per call by forward hooks:

    - ``Conv2d``: ``out.numel() * (C_in / groups) * kH * kW`` (bias not counted);
    - ``AdaptiveAvgPool2d``: ``(prod(in_size / out_size) + 1) * out.numel()``, i.e.
      ``(H*W + 1) * C`` per image for a global pool;
    - ``Linear``: ``out.numel() * in_features``;
    - everything else (norms, activations, pixel shuffles, elementwise ops,
      ``Tensor.mean``): 0.

    The forward pass runs on the ``meta`` device (shapes only) through
    :func:`torch.func.functional_call`; `model` itself is not changed or moved.

    Examples
    --------
    >>> from sepkit_torch import ECMRNet, complexity
    >>> model = ECMRNet.from_preset("tiny")
    >>> c = complexity(model, (1, 1, 64, 64))
    >>> c.activated_params, c.macs
    (113161, 38798960)
    """
    shape = tuple(input_shape) if isinstance(input_shape, Sequence) else None
    if (
        shape is None
        or len(shape) != 4
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
    ):
        raise InvalidInputError(
            f"`input_shape` must be 4 positive ints (batch, channels, H, W); got {input_shape!r}"
        )
    names = {m: n for n, m in model.named_modules()}
    macs: list[tuple[str, int]] = []
    ran: dict[str, int] = {}

    def count(module, inputs, output):
        name = names[module]
        if isinstance(module, nn.Conv2d):
            macs.append((name, _conv_macs(module, output)))
        elif isinstance(module, nn.Linear):
            macs.append((name, output.numel() * module.in_features))
        else:
            macs.append((name, _adaptive_avgpool_macs(inputs[0], output)))
            return
        bias = 0 if module.bias is None else module.bias.numel()
        ran[name] = module.weight.numel() + bias

    counted = (nn.Conv2d, nn.Linear, nn.AdaptiveAvgPool2d)
    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, counted)]
    tensors = dict(itertools.chain(model.named_parameters(), model.named_buffers()))
    dtype = next((t.dtype for t in tensors.values() if t.is_floating_point()), torch.float32)
    meta = {n: torch.empty_like(t, device="meta") for n, t in tensors.items()}
    x = torch.empty(shape, dtype=dtype, device="meta")
    kwargs = {} if task is None else {"task": task}
    try:
        with torch.no_grad():
            functional_call(model, meta, (x,), kwargs, tie_weights=True)
    finally:
        for h in handles:
            h.remove()
    return Complexity(
        activated_params=sum(ran.values()),
        macs=sum(m for _, m in macs),
        total_params=sum(p.numel() for p in model.parameters()),
        macs_by_module=tuple(macs),
    )
