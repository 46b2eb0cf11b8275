"""NAFNet, the nonlinear-activation-free U-Net used for the continual-learning baselines.

Layout (``c = width``, ``n = len(enc_blocks)``; ``H x W`` the padded input)::

    intro    Conv3x3(in_channels -> c)                            H x W
    enc i    NAFBlocks(c 2^i) x enc_blocks[i], then               H / 2^i
             Conv2x2 stride 2 (c 2^i -> c 2^(i+1))
    middle   NAFBlocks(c 2^n) x middle_blocks                     H / 2^n
    dec i    Conv1x1(c 2^(n-i) -> c 2^(n-i+1), no bias),          H / 2^(n-i-1)
             PixelShuffle(2), + skip from enc (n-1-i),
             NAFBlocks(c 2^(n-i-1)) x dec_blocks[i]
    ending   Conv3x3(c -> in_channels)
    output   input + ending(...)

Chen, Chu, Zhang and Sun, "Simple Baselines for Image Restoration", ECCV 2022. Written
from the paper's description; checked against the public code only for layer shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sepkit_torch._errors import InvalidInputError
from sepkit_torch.models.backbone import check_images, pad_to_multiple

__all__ = [
    "NAFNET_PRESETS",
    "LayerNorm2d",
    "NAFBlock",
    "NAFNet",
    "NAFNetConfig",
    "SimpleGate",
]

_FIELDS = (
    "width",
    "enc_blocks",
    "middle_blocks",
    "dec_blocks",
    "in_channels",
    "dw_expand",
    "ffn_expand",
)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _block_counts(name: str, value) -> tuple[int, ...]:
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"`{name}` must be a sequence of ints; got {value!r}") from None
    if not all(_is_int(v) and v >= 0 for v in items):
        raise InvalidInputError(
            f"`{name}` must hold non-negative ints (blocks per stage); got {value!r}"
        )
    return items


@dataclass(frozen=True)
class NAFNetConfig:
    """Sizes of a NAFNet (read-only).

    Attributes
    ----------
    width : int
        Channels after the intro convolution; each downsampling doubles them.
    enc_blocks : tuple of int
        NAFBlocks per encoder stage; its length is the number of 2x downsamplings.
    middle_blocks : int
        NAFBlocks at the lowest resolution.
    dec_blocks : tuple of int
        NAFBlocks per decoder stage, lowest resolution first; same length as `enc_blocks`.
    in_channels : int, default 1
        Image channels in and out (thermal infrared: 1).
    dw_expand : int, default 2
        Channel expansion of the depthwise branch; ``width * dw_expand`` must be even
        (SimpleGate halves it).
    ffn_expand : int, default 2
        Channel expansion of the feed-forward branch; ``width * ffn_expand`` must be even.

    Examples
    --------
    >>> from sepkit_torch.models import NAFNetConfig
    >>> cfg = NAFNetConfig.from_preset("paper-baseline")
    >>> cfg.enc_blocks, cfg.middle_blocks, cfg.dec_blocks
    ((2, 2, 2, 20), 2, (2, 2, 2, 2))
    >>> cfg.multiple
    16
    """

    width: int
    enc_blocks: tuple[int, ...]
    middle_blocks: int
    dec_blocks: tuple[int, ...]
    in_channels: int = 1
    dw_expand: int = 2
    ffn_expand: int = 2

    def __post_init__(self):
        for name in ("width", "in_channels", "dw_expand", "ffn_expand"):
            v = getattr(self, name)
            if not _is_int(v) or v <= 0:
                raise InvalidInputError(f"`{name}` must be a positive int; got {v!r}")
        if not _is_int(self.middle_blocks) or self.middle_blocks < 0:
            raise InvalidInputError(
                f"`middle_blocks` must be a non-negative int; got {self.middle_blocks!r}"
            )
        for name in ("enc_blocks", "dec_blocks"):
            object.__setattr__(self, name, _block_counts(name, getattr(self, name)))
        if len(self.enc_blocks) != len(self.dec_blocks):
            raise InvalidInputError(
                "`enc_blocks` and `dec_blocks` must have the same length (one decoder stage "
                f"per encoder stage); got {len(self.enc_blocks)} and {len(self.dec_blocks)}"
            )
        for name in ("dw_expand", "ffn_expand"):
            if self.width * getattr(self, name) % 2:
                raise InvalidInputError(
                    f"`width * {name}` must be even (SimpleGate splits it in half); "
                    f"got {self.width} * {getattr(self, name)}"
                )

    @property
    def multiple(self) -> int:
        """Spatial sides are padded to a multiple of this: ``2 ** len(enc_blocks)``."""
        return 2 ** len(self.enc_blocks)

    @classmethod
    def from_preset(cls, name: str) -> NAFNetConfig:
        """The configuration called `name`, one of :data:`NAFNET_PRESETS`."""
        if not isinstance(name, str) or name not in NAFNET_PRESETS:
            raise InvalidInputError(
                f"`preset` must be one of {sorted(NAFNET_PRESETS)}; got {name!r}"
            )
        return NAFNET_PRESETS[name]

    def to_dict(self) -> dict:
        """Plain ints and lists (what a checkpoint stores)."""
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in ((k, getattr(self, k)) for k in _FIELDS)
        }

    @classmethod
    def from_dict(cls, data: dict) -> NAFNetConfig:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, dict):
            raise TypeError(f"`data` must be a dict from NAFNetConfig.to_dict(); got {data!r}")
        if set(data) != set(_FIELDS):
            raise InvalidInputError(
                f"`data` must have exactly the keys {sorted(_FIELDS)}; got {sorted(data)}"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


#: Named configurations. ``paper-baseline``: width 32, encoder blocks 2/2/2/20, middle 2,
#: decoder 2/2/2/2 (the common NAFNet configuration; the ECMRNet paper does not state its
#: own), 16,008,097 params. ``demo``: width 16, two levels of one block, two middle
#: blocks, 103,537 params (about one task path of the ``tiny`` ECMRNet, 114,337), the
#: baselines of the pipeline's demo. ``tiny``: width 8, two levels of one block each, for tests.
NAFNET_PRESETS: dict[str, NAFNetConfig] = {
    "paper-baseline": NAFNetConfig(
        width=32, enc_blocks=(2, 2, 2, 20), middle_blocks=2, dec_blocks=(2, 2, 2, 2)
    ),
    "demo": NAFNetConfig(width=16, enc_blocks=(1, 1), middle_blocks=2, dec_blocks=(1, 1)),
    "tiny": NAFNetConfig(width=8, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1)),
}


class LayerNorm2d(nn.Module):
    """Layer normalisation over the channels of each pixel of a (B, C, H, W) tensor.

    ``y = weight * (x - mean_c(x)) / sqrt(var_c(x) + eps) + bias``, with the biased
    variance over channels, ``weight`` initialised to 1 and ``bias`` to 0.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.models import LayerNorm2d
    >>> y = LayerNorm2d(4)(torch.randn(2, 4, 3, 3))
    >>> bool(y.mean(1).abs().max() < 1e-5)
    True
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / torch.sqrt(var + self.eps)
        return self.weight.view(1, -1, 1, 1) * y + self.bias.view(1, -1, 1, 1)


class SimpleGate(nn.Module):
    """Split the channels in two halves and multiply them: ``x1 * x2``.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.models import SimpleGate
    >>> SimpleGate()(torch.arange(4.0).view(1, 4, 1, 1)).flatten().tolist()
    [0.0, 3.0]
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    """NAFNet block: a gated depthwise branch and a gated feed-forward branch.

    Parameters
    ----------
    channels : int
    dw_expand : int, default 2
        ``channels * dw_expand`` channels in the depthwise branch; must be even.
    ffn_expand : int, default 2
        ``channels * ffn_expand`` channels in the feed-forward branch; must be even.

    Notes
    -----
    With ``d = channels * dw_expand`` and ``f = channels * ffn_expand``::

        y = SimpleGate(DWConv3x3_d(Conv1x1_{c->d}(LayerNorm2d(x))))     d/2 channels
        y = y * Conv1x1_{d/2->d/2}(AdaptiveAvgPool2d(1)(y))             channel attention
        x = x + beta * Conv1x1_{d/2->c}(y)
        z = SimpleGate(Conv1x1_{c->f}(LayerNorm2d(x)))                  f/2 channels
        out = x + gamma * Conv1x1_{f/2->c}(z)

    ``beta`` and ``gamma`` are per-channel and start at 0, so a new block is the
    identity. All convolutions have biases; there is no nonlinear activation.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.models import NAFBlock
    >>> block = NAFBlock(8)
    >>> x = torch.randn(1, 8, 5, 5)
    >>> torch.equal(block(x), x)  # beta and gamma start at 0
    True
    """

    def __init__(self, channels: int, dw_expand: int = 2, ffn_expand: int = 2):
        super().__init__()
        d, f = channels * dw_expand, channels * ffn_expand
        if d % 2 or f % 2:
            raise InvalidInputError(
                f"`channels * dw_expand` and `channels * ffn_expand` must be even; got {d} and {f}"
            )
        self.norm1 = LayerNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, d, 1)
        self.conv2 = nn.Conv2d(d, d, 3, padding=1, groups=d)
        self.gate = SimpleGate()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.sca = nn.Conv2d(d // 2, d // 2, 1)
        self.conv3 = nn.Conv2d(d // 2, channels, 1)
        self.norm2 = LayerNorm2d(channels)
        self.conv4 = nn.Conv2d(channels, f, 1)
        self.conv5 = nn.Conv2d(f // 2, channels, 1)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.gate(self.conv2(self.conv1(self.norm1(x))))
        y = y * self.sca(self.pool(y))
        x = x + self.beta * self.conv3(y)
        z = self.gate(self.conv4(self.norm2(x)))
        return x + self.gamma * self.conv5(z)


class NAFNet(nn.Module):
    """NAFNet U-Net with a global residual: ``output = input + network(input)``.

    Inputs of any size are reflect-padded (a 1-pixel side is replicated) to a multiple
    of ``2 ** len(enc_blocks)`` and the output is cropped back.

    Parameters
    ----------
    config : NAFNetConfig or str
        A configuration or the name of a preset (``"paper-baseline"``, ``"tiny"``).

    Attributes
    ----------
    intro : Conv2d, 3x3, ``in_channels -> width``
    encoders, downs, middle, ups, decoders : ModuleList / Sequential
        See the module docstring for the layout.
    ending : Conv2d, 3x3, ``width -> in_channels``

    Notes
    -----
    Initialisation as the common NAFNet: PyTorch's defaults, with every block's residual
    scales at zero (a new block is the identity; the network as a whole is not, because
    the ending convolution starts random). Layer shapes, and so parameter and MAC counts,
    are those of the public code.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.models import NAFNet
    >>> net = NAFNet("tiny")
    >>> x = torch.rand(2, 1, 13, 30)
    >>> net(x).shape  # any size: padded inside, cropped back
    torch.Size([2, 1, 13, 30])
    """

    def __init__(self, config: NAFNetConfig | str):
        super().__init__()
        if not isinstance(config, NAFNetConfig):
            config = NAFNetConfig.from_preset(config)
        self.config = config
        cfg = config

        def blocks(c: int, n: int) -> nn.Sequential:
            return nn.Sequential(*(NAFBlock(c, cfg.dw_expand, cfg.ffn_expand) for _ in range(n)))

        c = cfg.width
        self.intro = nn.Conv2d(cfg.in_channels, c, 3, padding=1)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        for n in cfg.enc_blocks:
            self.encoders.append(blocks(c, n))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
        self.middle = blocks(c, cfg.middle_blocks)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for n in cfg.dec_blocks:
            self.ups.append(nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.PixelShuffle(2)))
            c //= 2
            self.decoders.append(blocks(c, n))
        self.ending = nn.Conv2d(c, cfg.in_channels, 3, padding=1)

    @classmethod
    def from_preset(cls, name: str) -> NAFNet:
        """A new NAFNet of the preset called `name`, one of :data:`NAFNET_PRESETS`."""
        return cls(NAFNetConfig.from_preset(name))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.config.in_channels)
        h, w = x.shape[-2:]
        inp = pad_to_multiple(x, self.config.multiple)
        y = self.intro(inp)
        skips = []
        for encoder, down in zip(self.encoders, self.downs, strict=True):
            y = encoder(y)
            skips.append(y)
            y = down(y)
        y = self.middle(y)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips), strict=True):
            y = decoder(up(y) + skip)
        y = inp + self.ending(y)
        return y[..., :h, :w]
