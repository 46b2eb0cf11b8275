"""SKMM, the sub-degradation knowledge mining module of ECMRNet (pure ``nn.Module``\\ s).

A compound task (e.g. contrast + blur + noise) mines the final features of its
single-degradation branches: a sample-adaptive, low-rank ``M x M`` channel-mixing matrix
``A`` recombines the projected sub-degradation features, and the result is injected into
the compound branch's features. Two formulations:

``"released"`` (:class:`ReleasedSKMM`, the default)
    The module of the authors' public code: GroupNorm + 1x1 projections, a gate, a static
    low-rank term and a bias in the logits of ``A``, rows of ``A`` normalised, the injected
    term ``g * (A V - U)`` and a Conv3x3-GELU-Conv3x3 refinement. Its sizes are those the
    paper's counts imply: 101,986 / 103,074 parameters and 7.38G / 7.72G MACs for K = 2 / 3
    sub-degradations on 32 channels at 512 x 640.
``"paper"`` (:class:`PaperSKMM`)
    Eqs. 11-14 as printed, with the 3x3 projection and residual convolutions of the
    paper's appendix.

Both take ``forward(compound, parts)``: the compound branch's features ``(B, C, H, W)`` and
a sequence of ``K`` sub-degradation features of the same shape, which are detached (a
fixed knowledge bank: no gradient reaches the branches that made them). Global average
pooling is a plain ``mean`` (0 MACs in the paper's counting rules).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from sepkit_torch._errors import InvalidInputError

__all__ = [
    "SKMM_VARIANTS",
    "PaperSKMM",
    "ReleasedSKMM",
    "SKMMConfig",
    "make_skmm",
]

#: Hidden width of the hypernetwork Phi (Linear - GELU - Linear). The released code uses
#: 128; the paper does not say, so the paper variant uses the same.
HYPER_HIDDEN = 128
#: Hidden width of the released variant's gate (Linear - GELU - Linear).
GATE_HIDDEN = 64
#: Initial bias of the gate's last layer: the gate starts at sigmoid(-3) = 0.047.
GATE_BIAS = -3.0
#: Initial (learnable) bias added to the logits of ``A`` in the released variant.
LOGIT_BIAS = -4.0
#: Standard deviation of the released variant's static low-rank factors at initialisation.
STATIC_STD = 0.02


def _positive_int(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InvalidInputError(f"`{name}` must be a positive int; got {value!r}")
    return value


@dataclass(frozen=True)
class SKMMConfig:
    """Which SKMM a compound task uses, and its sizes (read-only).

    Attributes
    ----------
    variant : {"released", "paper"}, default "released"
        The public code's gated, normalised module, or Eqs. 11-14 as printed.
    mix_channels : int, default 32
        ``M``: channels of the shared latent space and size of the mixing matrix ``A``.
    rank : int, default 8
        ``R``: rank of the sample-adaptive factors ``U, V`` (``M x R`` each).

    Examples
    --------
    >>> from sepkit_torch.models import SKMMConfig
    >>> SKMMConfig()
    SKMMConfig(variant='released', mix_channels=32, rank=8)
    >>> SKMMConfig.from_dict(SKMMConfig("paper", rank=4).to_dict())
    SKMMConfig(variant='paper', mix_channels=32, rank=4)
    """

    variant: str = "released"
    mix_channels: int = 32
    rank: int = 8

    def __post_init__(self):
        if not isinstance(self.variant, str) or self.variant not in SKMM_VARIANTS:
            raise InvalidInputError(
                f"`variant` must be one of {sorted(SKMM_VARIANTS)}; got {self.variant!r}"
            )
        _positive_int("mix_channels", self.mix_channels)
        _positive_int("rank", self.rank)

    def to_dict(self) -> dict:
        """Plain strings and ints (what a checkpoint stores)."""
        return {"variant": self.variant, "mix_channels": self.mix_channels, "rank": self.rank}

    @classmethod
    def from_dict(cls, data: dict) -> SKMMConfig:
        """Inverse of :meth:`to_dict`."""
        keys = {"variant", "mix_channels", "rank"}
        if not isinstance(data, dict) or set(data) != keys:
            raise InvalidInputError(
                f"an SKMM config must be a dict with exactly the keys {sorted(keys)}; got {data!r}"
            )
        return cls(**data)


def _check_features(compound, parts, channels: int, num_parts: int) -> list[torch.Tensor]:
    if (
        not isinstance(compound, torch.Tensor)
        or compound.ndim != 4
        or compound.shape[1] != channels
    ):
        raise InvalidInputError(
            f"`compound` must be a (batch, {channels}, H, W) tensor; "
            f"got {getattr(compound, 'shape', type(compound).__name__)}"
        )
    if isinstance(parts, torch.Tensor) or not isinstance(parts, Sequence):
        raise TypeError(
            f"`parts` must be a list or tuple of {num_parts} tensors; got {type(parts).__name__}"
        )
    if len(parts) != num_parts or any(
        not isinstance(p, torch.Tensor) or p.shape != compound.shape for p in parts
    ):
        raise InvalidInputError(
            f"`parts` must be {num_parts} tensors of the shape of `compound` "
            f"{tuple(compound.shape)}; got "
            f"{[tuple(getattr(p, 'shape', ())) for p in parts]}"
        )
    return [p.detach() for p in parts]


def _mix(a: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """``out[b, i] = sum_j a[b, i, j] * features[b, j]`` for (B, M, M) and (B, M, H, W)."""
    return torch.einsum("bij,bjhw->bihw", a, features)


class _SKMMBase(nn.Module):
    def __init__(self, channels: int, parts: int, mix_channels: int, rank: int):
        super().__init__()
        self.channels = _positive_int("channels", channels)
        if not isinstance(parts, int) or isinstance(parts, bool) or parts < 1:
            raise InvalidInputError(
                f"`parts` must be the number of sub-degradation branches (an int >= 1); "
                f"got {parts!r}"
            )
        self.parts = parts
        self.mix_channels = _positive_int("mix_channels", mix_channels)
        self.rank = _positive_int("rank", rank)
        m = mix_channels
        self.hyper = nn.Sequential(
            nn.Linear(2 * m, HYPER_HIDDEN), nn.GELU(), nn.Linear(HYPER_HIDDEN, 2 * m * rank)
        )

    def _factors(self, descriptor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The sample-adaptive ``U, V`` (B, M, R) from the pooled descriptor (B, 2M)."""
        b, m, r = descriptor.shape[0], self.mix_channels, self.rank
        u, v = self.hyper(descriptor).split(m * r, dim=1)
        return u.reshape(b, m, r), v.reshape(b, m, r)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, parts={self.parts}, "
            f"mix_channels={self.mix_channels}, rank={self.rank}"
        )


class PaperSKMM(_SKMMBase):
    """SKMM as printed in the paper (Eqs. 11-14).

    Parameters
    ----------
    channels : int
        ``C``, channels of the compound and sub-degradation features (the backbone's
        ``base_width``: 32).
    parts : int
        ``K``, number of sub-degradation features.
    mix_channels : int, default 32
        ``M``.
    rank : int, default 8
        ``R``.

    Notes
    -----
    With ``F^c`` the compound features and ``F^h_1 .. F^h_K`` the sub-degradation ones::

        F^c_hat = K_p^c(F^c)                      Conv3x3, C -> M         (11)
        F^h     = K_p^h(Cat(F^h_1, ..., F^h_K))   Conv3x3, K C -> M       (11)
        [U, V]  = Phi(Cat(GAP(F^c_hat), GAP(F^h)))  U, V in R^{M x R}     (12)
        A       = sigmoid(U V^T)                  M x M, per sample       (13)
        F^mix_i = sum_j A_ij F^h_j                                        (14)
        out     = F^c + K_r(F^mix)                Conv3x3, M -> C         (14)

    ``Phi`` is Linear(2M, 128) - GELU - Linear(128, 2 M R) (the paper says "two linear
    layers with GELU"; the width 128 is the released code's). ``GAP`` is a plain mean.
    Every layer has PyTorch's default initialisation, so unlike a fresh GResBlock the
    module is not the identity at the start. At C = M = 32, R = 8: 92,896 + 9,216 K
    parameters (111,328 / 120,544 for K = 2 / 3).

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.models import PaperSKMM
    >>> skmm = PaperSKMM(8, parts=2)
    >>> f = torch.randn(2, 8, 6, 7)
    >>> skmm(f, [torch.randn(2, 8, 6, 7), torch.randn(2, 8, 6, 7)]).shape
    torch.Size([2, 8, 6, 7])
    """

    def __init__(self, channels: int, parts: int, *, mix_channels: int = 32, rank: int = 8):
        super().__init__(channels, parts, mix_channels, rank)
        m = mix_channels
        self.project_compound = nn.Conv2d(channels, m, 3, padding=1)
        self.project_parts = nn.Conv2d(parts * channels, m, 3, padding=1)
        self.residual = nn.Conv2d(m, channels, 3, padding=1)

    def mixing_matrix(self, compound: torch.Tensor, parts: Sequence[torch.Tensor]):
        """``A`` (B, M, M) and the projected sub-degradation features ``F^h`` (B, M, H, W)."""
        parts = _check_features(compound, parts, self.channels, self.parts)
        f_c = self.project_compound(compound)
        f_h = self.project_parts(torch.cat(parts, dim=1))
        u, v = self._factors(torch.cat([f_c.mean(dim=(2, 3)), f_h.mean(dim=(2, 3))], dim=1))
        return torch.sigmoid(u @ v.transpose(1, 2)), f_h

    def forward(self, compound: torch.Tensor, parts: Sequence[torch.Tensor]) -> torch.Tensor:
        a, f_h = self.mixing_matrix(compound, parts)
        return compound + self.residual(_mix(a, f_h))


class ReleasedSKMM(_SKMMBase):
    """SKMM as in the authors' public code: gated, with a normalised mixing matrix.

    Parameters
    ----------
    channels : int
        ``C``, channels of the compound and sub-degradation features (32 in the paper).
    parts : int
        ``K``, number of sub-degradation features.
    mix_channels : int, default 32
        ``M``.
    rank : int, default 8
        ``R``.

    Notes
    -----
    With ``F^c`` the compound features and ``F^h_1 .. F^h_K`` the sub-degradation ones::

        U = Conv1x1(GroupNorm(F^c))                           C -> M
        V = Conv1x1(Cat(GroupNorm_1(F^h_1), ..., GroupNorm_K(F^h_K)))   K C -> M
        d = Cat(GAP(U), GAP(V))                               (B, 2M), GAP a plain mean
        [P, Q] = Phi(d)                                       P, Q in R^{M x R}
        g = sigmoid(Linear(GELU(Linear(d))))                  one scalar gate per sample
        A = sigmoid(P Q^T + S T^T + beta)                     S, T static M x R; beta scalar
        A_ij <- A_ij / (sum_j A_ij + 1e-6)                    rows sum to 1
        out = Conv3x3(GELU(Conv3x3(F^c + Conv1x1(g * (A V - U)))))      M -> C, C -> C

    ``Phi`` is Linear(2M, 128) - GELU - Linear(128, 2 M R); the gate is Linear(2M, 64) -
    GELU - Linear(64, 1) with its last layer initialised to weight 0, bias -3, so ``g``
    starts at 0.047; ``beta`` starts at -4. GroupNorms have ``gcd(8, C)`` groups (8 in
    the code). At C = M = 32, R = 8: 99,810 + 1,088 K parameters (101,986 / 103,074 for
    K = 2 / 3).

    One deliberate difference from the public code: there the static factors ``S, T``
    start at zero, a saddle point where neither ever receives a gradient (each one's
    gradient is a product with the other), so the static term never learns. Here they
    start at ``N(0, 0.02^2)`` (``S T^T`` is then of order 1e-2, small beside ``beta``).

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.models import ReleasedSKMM
    >>> skmm = ReleasedSKMM(8, parts=3)
    >>> f = torch.randn(2, 8, 6, 7)
    >>> skmm(f, [torch.randn(2, 8, 6, 7) for _ in range(3)]).shape
    torch.Size([2, 8, 6, 7])
    >>> sum(p.numel() for p in ReleasedSKMM(32, parts=2).parameters())
    101986
    """

    def __init__(self, channels: int, parts: int, *, mix_channels: int = 32, rank: int = 8):
        super().__init__(channels, parts, mix_channels, rank)
        m = mix_channels
        groups = math.gcd(8, channels)
        self.norm_compound = nn.GroupNorm(groups, channels)
        self.norm_parts = nn.ModuleList(nn.GroupNorm(groups, channels) for _ in range(parts))
        self.project_compound = nn.Conv2d(channels, m, 1)
        self.project_parts = nn.Conv2d(parts * channels, m, 1)
        self.gate = nn.Sequential(
            nn.Linear(2 * m, GATE_HIDDEN), nn.GELU(), nn.Linear(GATE_HIDDEN, 1)
        )
        self.static_left = nn.Parameter(torch.empty(m, rank))
        self.static_right = nn.Parameter(torch.empty(m, rank))
        self.logit_bias = nn.Parameter(torch.tensor(LOGIT_BIAS))
        self.inject = nn.Conv2d(m, channels, 1)
        self.refine = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        with torch.no_grad():
            self.gate[-1].weight.zero_()
            self.gate[-1].bias.fill_(GATE_BIAS)
            self.static_left.normal_(0.0, STATIC_STD)
            self.static_right.normal_(0.0, STATIC_STD)

    def mixing_matrix(self, compound: torch.Tensor, parts: Sequence[torch.Tensor]):
        """``A`` (B, M, M, rows sum to ~1), the gate ``g`` (B, 1, 1, 1), ``U`` and ``V``."""
        parts = _check_features(compound, parts, self.channels, self.parts)
        u = self.project_compound(self.norm_compound(compound))
        normed = [norm(p) for norm, p in zip(self.norm_parts, parts, strict=True)]
        v = self.project_parts(torch.cat(normed, dim=1))
        descriptor = torch.cat([u.mean(dim=(2, 3)), v.mean(dim=(2, 3))], dim=1)
        p, q = self._factors(descriptor)
        gate = torch.sigmoid(self.gate(descriptor)).view(-1, 1, 1, 1)
        static = self.static_left @ self.static_right.t()
        a = torch.sigmoid(p @ q.transpose(1, 2) + static + self.logit_bias)
        a = a / (a.sum(dim=-1, keepdim=True) + 1e-6)
        return a, gate, u, v

    def forward(self, compound: torch.Tensor, parts: Sequence[torch.Tensor]) -> torch.Tensor:
        a, gate, u, v = self.mixing_matrix(compound, parts)
        return self.refine(compound + self.inject(gate * (_mix(a, v) - u)))


#: Variant name -> module class.
SKMM_VARIANTS: dict[str, type[_SKMMBase]] = {"released": ReleasedSKMM, "paper": PaperSKMM}


def make_skmm(config: SKMMConfig | str, channels: int, parts: int) -> nn.Module:
    """The SKMM that `config` describes (an :class:`SKMMConfig` or a variant name).

    Examples
    --------
    >>> from sepkit_torch.models import make_skmm
    >>> make_skmm("paper", channels=32, parts=3)  # doctest: +ELLIPSIS
    PaperSKMM(
      channels=32, parts=3, mix_channels=32, rank=8
      ...
    """
    if isinstance(config, str):
        config = SKMMConfig(config)
    if not isinstance(config, SKMMConfig):
        raise TypeError(
            f"`config` must be an SKMMConfig or one of {sorted(SKMM_VARIANTS)}; got {config!r}"
        )
    cls = SKMM_VARIANTS[config.variant]
    return cls(channels, parts, mix_channels=config.mix_channels, rank=config.rank)
