"""Speed switches for training and inference: mixed precision, memory layout, compilation,
the grouped-convolution algorithm and data loading (the optimizer's kernels are an option
of :func:`sepkit_torch.training.make_optimizer`).

Each switch leaves the model's mathematics unchanged (bf16 autocast changes the rounding
only); which setting is fastest depends on the machine, so each is a choice, measured by
``benchmarks/gpu.py``. The pipeline exposes them as configuration fields
(:class:`sepkit_torch.pipeline.PipelineConfig`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from sepkit_torch._errors import InvalidInputError
from sepkit_torch.models.backbone import GROUPED_CONV_IMPLS, STAGE_NAMES, Branch, GroupedConv2d

__all__ = [
    "AMP_MODES",
    "GROUPED_CONV_IMPLS",
    "autocast",
    "loader_options",
    "parse_grouped_conv",
    "quiet_numba_threads",
    "set_grouped_conv",
    "to_channels_last",
]

#: ``"none"``: float32 throughout; ``"bf16"``: ``torch.autocast`` to bfloat16 (the
#: convolutions and matrix products; norms and the loss stay in float32).
AMP_MODES = ("none", "bf16")


def parse_grouped_conv(value) -> tuple[str, ...]:
    """The grouped-convolution algorithm of each stage ``e1 .. d3``.

    Parameters
    ----------
    value : str, sequence of 6 str, or mapping of stage name -> str
        One algorithm of :data:`GROUPED_CONV_IMPLS` for every stage, a comma-separated
        string or sequence of six (one per stage), or a mapping (stages not named stay
        ``"native"``).

    Examples
    --------
    >>> from sepkit_torch.speed import parse_grouped_conv
    >>> parse_grouped_conv("dense")
    ('dense', 'dense', 'dense', 'dense', 'dense', 'dense')
    >>> parse_grouped_conv("dense,native,native,native,native,dense")
    ('dense', 'native', 'native', 'native', 'native', 'dense')
    >>> parse_grouped_conv({"e1": "unfold"})
    ('unfold', 'native', 'native', 'native', 'native', 'native')
    """
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
        if len(items) == 1:
            items = items * len(STAGE_NAMES)
    elif isinstance(value, Mapping):
        unknown = sorted(set(value) - set(STAGE_NAMES))
        if unknown:
            raise InvalidInputError(
                f"`grouped_conv` may name the stages {list(STAGE_NAMES)}; got {unknown}"
            )
        items = [value.get(s, "native") for s in STAGE_NAMES]
    elif isinstance(value, Sequence):
        items = list(value)
    else:
        raise InvalidInputError(
            f"`grouped_conv` must be a string, six strings or a stage mapping; got {value!r}"
        )
    if len(items) != len(STAGE_NAMES) or not all(v in GROUPED_CONV_IMPLS for v in items):
        raise InvalidInputError(
            f"`grouped_conv` must be one of {list(GROUPED_CONV_IMPLS)} or six of them (one per "
            f"stage {', '.join(STAGE_NAMES)}); got {value!r}"
        )
    return tuple(items)


def set_grouped_conv(module: nn.Module, impl="native") -> tuple[str, ...]:
    """Make every :class:`~sepkit_torch.models.backbone.GroupedConv2d` of `module` use `impl`.

    Stages are found by name inside every :class:`~sepkit_torch.models.Branch` of `module`
    (the pretrained stages and every task's branch of an ECMRNet); a grouped convolution
    outside a branch gets the choice of ``e1`` when `impl` names one algorithm for all.
    Call it again after pruning: a pruned branch is a new module.

    Returns
    -------
    tuple of 6 str
        The algorithm of each stage.
    """
    choice = parse_grouped_conv(impl)
    seen: set[int] = set()
    for branch in (m for m in module.modules() if isinstance(m, Branch)):
        for stage, name in zip(STAGE_NAMES, choice, strict=True):
            for conv in getattr(branch, stage).modules():
                if isinstance(conv, GroupedConv2d):
                    conv.set_impl(name)
                    seen.add(id(conv))
    loose = [m for m in module.modules() if isinstance(m, GroupedConv2d) and id(m) not in seen]
    if loose and len(set(choice)) > 1:
        raise InvalidInputError(
            "`impl` names one algorithm per stage, but `module` has grouped convolutions "
            f"outside any Branch; give one algorithm for all; got {impl!r}"
        )
    for conv in loose:
        conv.set_impl(choice[0])
    return choice


def autocast(device: torch.device | str, amp: str = "none"):
    """A context that runs its forward passes in `amp` precision on `device`'s type.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.speed import autocast
    >>> with autocast("cpu", "bf16"):
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.bfloat16
    """
    if amp not in AMP_MODES:
        raise InvalidInputError(f"`amp` must be one of {list(AMP_MODES)}; got {amp!r}")
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def to_channels_last(model: nn.Module) -> nn.Module:
    """Store the 4-D weights of `model` channels-last (NHWC), in place; returns `model`.

    Inputs need not be converted: a convolution with channels-last weights returns
    channels-last outputs, and the following layers keep the layout.
    """
    return model.to(memory_format=torch.channels_last)


def loader_options(workers: int, pin_memory: bool, device: torch.device | str) -> dict:
    """DataLoader keywords: `workers` background processes, pinned memory on CUDA only.

    Results do not depend on `workers`: every item draws its randomness from a
    generator seeded by its own index and epoch, never from the worker.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise InvalidInputError(f"`workers` must be an int >= 0; got {workers!r}")
    options: dict = {"num_workers": workers}
    if workers > 0:
        options["prefetch_factor"] = 4
    options["pin_memory"] = bool(pin_memory) and torch.device(device).type == "cuda"
    return options


def quiet_numba_threads() -> None:
    """Use numba's workqueue threads unless the user chose a threading layer.

    sepkit's parallel kernels (SEP's batched partitions) otherwise start OpenMP workers
    that keep spinning after each call; on a busy CPU that slowed every later torch
    operation of the process about 15-fold. It must be set before numba's first parallel
    call, so applications (the pipeline, the benchmarks) call this first.
    """
    import os

    if os.environ.get("NUMBA_THREADING_LAYER"):
        return
    import numba
    from numba.np.ufunc import parallel

    if not getattr(parallel, "_is_initialized", True):
        numba.config.THREADING_LAYER = "workqueue"
