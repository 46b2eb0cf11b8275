"""The ECMRNet backbone: a group-isolated U-Net of six stages (pure ``nn.Module``\\ s).

Layout (widths of the ``paper`` preset; ``H x W`` the padded input)::

    stem    Conv3x3(1 -> 32)                                      H x W
    e1      Stage(32):  1x1 entrance, 2 GResBlocks (8 groups), 1x1 exit
            PixelUnshuffle(2)                                     32 -> 128
    e2      Stage(128): 1x1, 4 GResBlocks (16 groups), 1x1        H/2
            PixelUnshuffle(2)                                     128 -> 512
    e3      Stage(512): 1x1, 8 GResBlocks (32 groups), 1x1        H/4
    bottom  Conv1x1(512 -> 512)
    d1      Stage(512) + c * e3                                   H/4
            PixelShuffle(2)                                       512 -> 128
    d2      Stage(128) + b * e2                                   H/2
            PixelShuffle(2)                                       128 -> 32
    d3      Stage(32)  + a * e1                                   H x W
    out     Conv3x3(32 -> 1)

Stem, bottom and out are the parts every task shares; the six stages and the skip
scales ``a, b, c`` form one :class:`Branch`, the unit that SCGE copies per task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sepkit_torch._errors import InvalidInputError

__all__ = [
    "MODEL_PRESETS",
    "STAGE_NAMES",
    "Backbone",
    "BackboneConfig",
    "Branch",
    "GROUPED_CONV_IMPLS",
    "GResBlock",
    "GroupedConv2d",
    "Stage",
    "check_images",
    "pad_to_multiple",
]

#: The six stages in forward order: three encoder stages, then three decoder stages.
STAGE_NAMES = ("e1", "e2", "e3", "d1", "d2", "d3")

#: Spatial sides are padded to a multiple of this (two PixelUnshuffle(2) steps).
MULTIPLE = 4


def _positive_ints(name: str, value, length: int) -> tuple[int, ...]:
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"`{name}` must be a sequence of {length} ints; got {value!r}") from None
    if len(items) != length or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in items
    ):
        raise InvalidInputError(
            f"`{name}` must be {length} positive ints (one per stage {', '.join(STAGE_NAMES)}); "
            f"got {value!r}"
        )
    return items


@dataclass(frozen=True)
class BackboneConfig:
    """Sizes of an ECMRNet backbone (read-only).

    Attributes
    ----------
    base_width : int
        Channels after the stem. The stage interfaces are ``base_width * (1, 4, 16, 16, 4, 1)``
        (the PixelUnshuffle/PixelShuffle steps fix them).
    widths : tuple of 6 int
        Channels inside each stage (between its 1x1 entrance and exit), stages
        ``e1, e2, e3, d1, d2, d3``.
    groups : tuple of 6 int
        Channel groups per stage; each ``widths[s]`` must be divisible by ``groups[s]``.
    blocks : tuple of 6 int
        GResBlocks per stage.
    in_channels : int, default 1
        Image channels (thermal infrared: 1).

    Examples
    --------
    >>> from sepkit_torch.models import BackboneConfig
    >>> cfg = BackboneConfig.from_preset("paper")
    >>> cfg.widths, cfg.groups, cfg.group_widths
    ((32, 128, 512, 512, 128, 32), (8, 16, 32, 32, 16, 8), (4, 8, 16, 16, 8, 4))
    >>> cfg.interface_widths
    (32, 128, 512, 512, 128, 32)
    """

    base_width: int
    widths: tuple[int, ...]
    groups: tuple[int, ...]
    blocks: tuple[int, ...]
    in_channels: int = 1

    def __post_init__(self):
        for name in ("base_width", "in_channels"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise InvalidInputError(f"`{name}` must be a positive int; got {v!r}")
        for name in ("widths", "groups", "blocks"):
            object.__setattr__(self, name, _positive_ints(name, getattr(self, name), 6))
        for s, (w, g) in enumerate(zip(self.widths, self.groups, strict=True)):
            if w % g:
                raise InvalidInputError(
                    f"`widths[{s}]` ({STAGE_NAMES[s]}) must be divisible by `groups[{s}]`; "
                    f"got {w} channels and {g} groups"
                )

    @property
    def interface_widths(self) -> tuple[int, ...]:
        """Channels entering and leaving each stage: ``base_width * (1, 4, 16, 16, 4, 1)``."""
        b = self.base_width
        return (b, 4 * b, 16 * b, 16 * b, 4 * b, b)

    @property
    def group_widths(self) -> tuple[int, ...]:
        """Channels per group in each stage (fixed: pruning removes whole groups)."""
        return tuple(w // g for w, g in zip(self.widths, self.groups, strict=True))

    @classmethod
    def from_preset(cls, name: str) -> BackboneConfig:
        """The configuration called `name`, one of :data:`MODEL_PRESETS`."""
        if not isinstance(name, str) or name not in MODEL_PRESETS:
            raise InvalidInputError(
                f"`preset` must be one of {sorted(MODEL_PRESETS)}; got {name!r}"
            )
        return MODEL_PRESETS[name]

    def to_dict(self) -> dict:
        """Plain ints and lists (what a checkpoint stores)."""
        return {
            "base_width": self.base_width,
            "widths": list(self.widths),
            "groups": list(self.groups),
            "blocks": list(self.blocks),
            "in_channels": self.in_channels,
        }

    @classmethod
    def from_dict(cls, data: dict) -> BackboneConfig:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, dict):
            raise TypeError(f"`data` must be a dict from BackboneConfig.to_dict(); got {data!r}")
        keys = {"base_width", "widths", "groups", "blocks", "in_channels"}
        if set(data) != keys:
            raise InvalidInputError(
                f"`data` must have exactly the keys {sorted(keys)}; got {sorted(data)}"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


#: Named configurations. ``paper``: the network of the paper (4,067,937 conv params).
#: ``tiny``: the same shape at widths 8/32/128 with 2-4 channels per group and one
#: GResBlock per stage, small enough to train on a CPU in seconds (tests and demos).
MODEL_PRESETS: dict[str, BackboneConfig] = {
    "paper": BackboneConfig(
        base_width=32,
        widths=(32, 128, 512, 512, 128, 32),
        groups=(8, 16, 32, 32, 16, 8),
        blocks=(2, 4, 8, 8, 4, 2),
    ),
    "tiny": BackboneConfig(
        base_width=8,
        widths=(8, 32, 128, 128, 32, 8),
        groups=(4, 8, 32, 32, 8, 4),
        blocks=(1, 1, 1, 1, 1, 1),
    ),
}


#: How :class:`GroupedConv2d` computes a grouped convolution: ``"native"`` (the backend's
#: grouped kernel, cuDNN on a GPU), ``"dense"`` (one ordinary convolution with a
#: block-diagonal weight: ``groups`` times the arithmetic, but one large kernel) and
#: ``"unfold"`` (im2col, then one batched matrix product over the groups).
GROUPED_CONV_IMPLS = ("native", "dense", "unfold")


def block_diagonal_weight(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """The dense ``(C_out, C_in, k, k)`` weight equal to grouped `weight` ``(C_out, C_in/g, k, k)``.

    Group ``i``'s block sits on the diagonal; every weight between groups is zero.
    Differentiable: the gradient of a zero block is dropped.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.models.backbone import block_diagonal_weight
    >>> block_diagonal_weight(torch.ones(4, 2, 1, 1), groups=2)[:, :, 0, 0]
    tensor([[1., 1., 0., 0.],
            [1., 1., 0., 0.],
            [0., 0., 1., 1.],
            [0., 0., 1., 1.]])
    """
    c_out, m_in, kh, kw = weight.shape
    w = weight.reshape(groups, c_out // groups, m_in, kh, kw)
    eye = torch.eye(groups, dtype=weight.dtype, device=weight.device)
    dense = torch.einsum("gaikl,gh->gahikl", w, eye)
    return dense.reshape(c_out, groups * m_in, kh, kw)


class GroupedConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` with ``groups``, computed by one of :data:`GROUPED_CONV_IMPLS`.

    The parameters, their names and the state dict are those of ``nn.Conv2d``; only
    :attr:`impl` (not saved: a property of the machine, not of the model) picks the
    algorithm. Every algorithm gives the same result up to floating-point rounding.
    Stride 1, dilation 1 and zero padding only (what :class:`GResBlock` uses).

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.models.backbone import GroupedConv2d
    >>> conv = GroupedConv2d(8, 8, 3, padding=1, groups=4).double()
    >>> x = torch.randn(2, 8, 5, 6, dtype=torch.float64)
    >>> native = conv(x)
    >>> conv.impl = "unfold"
    >>> torch.allclose(conv(x), native)
    True
    """

    impl: str = "native"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.stride != (1, 1) or self.dilation != (1, 1) or self.padding_mode != "zeros":
            raise InvalidInputError(
                "`GroupedConv2d` supports stride 1, dilation 1 and zero padding; got "
                f"stride={self.stride}, dilation={self.dilation}, "
                f"padding_mode={self.padding_mode!r}"
            )
        if isinstance(self.padding, str):
            raise InvalidInputError(
                f"`padding` of GroupedConv2d must be ints; got {self.padding!r}"
            )

    def set_impl(self, impl: str) -> None:
        """Choose the algorithm, one of :data:`GROUPED_CONV_IMPLS`."""
        if impl not in GROUPED_CONV_IMPLS:
            raise InvalidInputError(
                f"`impl` must be one of {list(GROUPED_CONV_IMPLS)}; got {impl!r}"
            )
        self.impl = impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.impl == "native" or self.groups == 1:
            return super().forward(x)
        if self.impl == "dense":
            weight = block_diagonal_weight(self.weight, self.groups)
            return F.conv2d(x, weight, self.bias, padding=self.padding)
        return self._unfold(x)

    def _unfold(self, x: torch.Tensor) -> torch.Tensor:
        g = self.groups
        b, _, h, w = x.shape
        kh, kw = self.kernel_size
        ph, pw = self.padding
        cols = F.unfold(x, (kh, kw), padding=(ph, pw))  # (B, C_in * kh * kw, L)
        cols = cols.reshape(b, g, -1, cols.shape[-1])  # a group's channels are contiguous
        weight = self.weight.reshape(g, self.out_channels // g, -1)
        y = torch.matmul(weight, cols)  # (B, g, m_out, L)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype).reshape(1, g, -1, 1)
        out_h = h + 2 * ph - kh + 1
        out_w = w + 2 * pw - kw + 1
        return y.reshape(b, self.out_channels, out_h, out_w)


class GResBlock(nn.Module):
    """Group residual block: ``x + beta * GCA(GELU(gconv(gconv(GroupNorm(x)))))``.

    Every operation keeps the `groups` channel groups apart, so a group's output
    depends only on the same group's input.

    Parameters
    ----------
    channels : int
    groups : int
        Divides `channels`.

    Notes
    -----
    ``y = GroupNorm(g, c)(x)``; two 3x3 convolutions with ``groups=g`` and no activation
    between them; GELU; group channel attention
    ``y = y * sigmoid(Conv1x1(c, c, groups=g)(AdaptiveAvgPool2d(1)(y)))``;
    ``out = x + beta * y`` with ``beta`` per channel, initialised to 0, so a new block is
    the identity. All convolutions have biases.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.models import GResBlock
    >>> block = GResBlock(8, groups=2)
    >>> x = torch.randn(1, 8, 5, 5)
    >>> torch.equal(block(x), x)  # beta starts at 0
    True
    """

    def __init__(self, channels: int, groups: int):
        super().__init__()
        if channels % groups:
            raise InvalidInputError(
                f"`channels` must be divisible by `groups`; got {channels} and {groups}"
            )
        self.groups = groups
        self.norm = nn.GroupNorm(groups, channels)
        self.conv1 = GroupedConv2d(channels, channels, 3, padding=1, groups=groups)
        self.conv2 = GroupedConv2d(channels, channels, 3, padding=1, groups=groups)
        self.act = nn.GELU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.attn = nn.Conv2d(channels, channels, 1, groups=groups)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv2(self.conv1(self.norm(x))))
        y = y * torch.sigmoid(self.attn(self.pool(y)))
        return x + self.beta * y


class Stage(nn.Module):
    """One U-Net stage: 1x1 entrance (mixes groups), GResBlocks, 1x1 exit (mixes groups).

    Parameters
    ----------
    channels : int
        Channels in and out (the stage interface).
    width : int
        Channels between entrance and exit.
    groups : int
        Channel groups of the GResBlocks; divides `width`.
    blocks : int
        Number of GResBlocks.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.models import Stage
    >>> stage = Stage(8, width=12, groups=3, blocks=2)
    >>> stage(torch.randn(2, 8, 6, 6)).shape
    torch.Size([2, 8, 6, 6])
    """

    def __init__(self, channels: int, width: int, groups: int, blocks: int):
        super().__init__()
        self.entrance = nn.Conv2d(channels, width, 1)
        self.blocks = nn.Sequential(*(GResBlock(width, groups) for _ in range(blocks)))
        self.exit = nn.Conv2d(width, channels, 1)

    @property
    def groups(self) -> int:
        """Channel groups of the GResBlocks."""
        return self.blocks[0].groups if len(self.blocks) else 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.exit(self.blocks(self.entrance(x)))


class Branch(nn.Module):
    """The six stages and the skip scales of one task path (what SCGE copies per task).

    Parameters
    ----------
    config : BackboneConfig
    groups : sequence of 6 int, optional
        Groups kept per stage (after pruning); default ``config.groups``. Each stage's
        inner width is ``groups[s] * config.group_widths[s]``; the interfaces stay.

    Notes
    -----
    With the shared ``bottom``, :meth:`forward` computes ``h1 = e1(x)``,
    ``h2 = e2(unshuffle(h1))``, ``h3 = e3(unshuffle(h2))``, ``y = d1(bottom(h3)) + c * h3``,
    ``y = d2(shuffle(y)) + b * h2``, ``y = d3(shuffle(y)) + a * h1``; ``a, b, c`` are
    per-channel scales initialised to 1.
    """

    def __init__(self, config: BackboneConfig, groups: Sequence[int] | None = None):
        super().__init__()
        groups = config.groups if groups is None else _positive_ints("groups", groups, 6)
        for s, name in enumerate(STAGE_NAMES):
            stage = Stage(
                config.interface_widths[s],
                groups[s] * config.group_widths[s],
                groups[s],
                config.blocks[s],
            )
            self.add_module(name, stage)
        b = config.base_width
        self.a = nn.Parameter(torch.ones(1, b, 1, 1))
        self.b = nn.Parameter(torch.ones(1, 4 * b, 1, 1))
        self.c = nn.Parameter(torch.ones(1, 16 * b, 1, 1))
        self.down = nn.PixelUnshuffle(2)
        self.up = nn.PixelShuffle(2)

    @property
    def groups(self) -> tuple[int, ...]:
        """Groups per stage, ``e1 .. d3``."""
        return tuple(getattr(self, name).groups for name in STAGE_NAMES)

    def forward(self, x: torch.Tensor, bottom: nn.Module) -> torch.Tensor:
        h1 = self.e1(x)
        h2 = self.e2(self.down(h1))
        h3 = self.e3(self.down(h2))
        y = self.d1(bottom(h3)) + self.c * h3
        y = self.d2(self.up(y)) + self.b * h2
        return self.d3(self.up(y)) + self.a * h1


def check_images(x, in_channels: int, name: str = "x") -> None:
    """Raise a clear error unless `x` is a float (B, in_channels, H, W) tensor, B, H, W >= 1."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor; got {type(x).__name__}")
    if x.ndim != 4:
        raise InvalidInputError(
            f"`{name}` must be 4-D (batch, {in_channels}, H, W); got shape {tuple(x.shape)}"
        )
    if x.shape[1] != in_channels:
        raise InvalidInputError(
            f"`{name}` must have {in_channels} channel(s) (batch, {in_channels}, H, W); "
            f"got {x.shape[1]} in shape {tuple(x.shape)}"
        )
    if min(x.shape[0], x.shape[2], x.shape[3]) < 1:
        raise InvalidInputError(
            f"`{name}` must have batch, H and W >= 1; got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"`{name}` must be a floating-point tensor; got dtype {x.dtype}")


def _pad_dim(x: torch.Tensor, amount: int, dim: int) -> torch.Tensor:
    """Pad `amount` rows (dim=-2) or columns (dim=-1) at the end by reflection."""
    while amount > 0:
        size = x.shape[dim]
        step = amount if size == 1 else min(amount, size - 1)
        pad = (0, 0, 0, step) if dim == -2 else (0, step, 0, 0)
        # A one-pixel side reflects onto itself: its mirror image is a copy.
        x = F.pad(x, pad, mode="replicate" if size == 1 else "reflect")
        amount -= step
    return x


def pad_to_multiple(x: torch.Tensor, multiple: int = MULTIPLE) -> torch.Tensor:
    """Reflect-pad the bottom and right of `x` so H and W are multiples of `multiple`.

    Sides shorter than the padding are mirrored repeatedly (a 1-pixel side is
    repeated), so every size from 1 up works.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.models import pad_to_multiple
    >>> pad_to_multiple(torch.arange(3.0).view(1, 1, 1, 3))
    tensor([[[[0., 1., 2., 1.],
              [0., 1., 2., 1.],
              [0., 1., 2., 1.],
              [0., 1., 2., 1.]]]])
    """
    h, w = x.shape[-2:]
    x = _pad_dim(x, -h % multiple, -2)
    return _pad_dim(x, -w % multiple, -1)


class Backbone(nn.Module):
    """The ECMRNet U-Net for one path: stem, a :class:`Branch`, bottom, out.

    The model that clean-to-clean pretraining trains. Inputs of any size are
    reflect-padded to a multiple of 4 and the output is cropped back. There is no
    global input-to-output residual.

    Parameters
    ----------
    config : BackboneConfig or str
        A configuration or the name of a preset (``"paper"``, ``"tiny"``).

    Attributes
    ----------
    stem : Conv2d, 3x3, ``in_channels -> base_width``
    stages : Branch
    bottom : Conv2d, 1x1, ``16 base_width -> 16 base_width`` (the paper says 3x3; its
        code and its parameter counts say 1x1)
    out : Conv2d, 3x3, ``base_width -> in_channels``

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.models import Backbone
    >>> net = Backbone("tiny")
    >>> net(torch.rand(2, 1, 13, 30)).shape
    torch.Size([2, 1, 13, 30])
    """

    def __init__(self, config: BackboneConfig | str):
        super().__init__()
        if not isinstance(config, BackboneConfig):
            config = BackboneConfig.from_preset(config)
        self.config = config
        b = config.base_width
        self.stem = nn.Conv2d(config.in_channels, b, 3, padding=1)
        self.stages = Branch(config)
        self.bottom = nn.Conv2d(16 * b, 16 * b, 1)
        self.out = nn.Conv2d(b, config.in_channels, 3, padding=1)

    def run(self, x: torch.Tensor, branch: Branch) -> torch.Tensor:
        """Check, pad, run stem -> `branch` (with this bottom) -> out, crop back."""
        check_images(x, self.config.in_channels)
        h, w = x.shape[-2:]
        y = self.out(branch(self.stem(pad_to_multiple(x)), self.bottom))
        return y[..., :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x, self.stages)
