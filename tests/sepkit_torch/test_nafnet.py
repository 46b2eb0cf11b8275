"""NAFNet for the baselines: identity at initialisation, gradients, sizes, errors, counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sepkit_torch import InvalidInputError, complexity
from sepkit_torch.models import (
    NAFNET_PRESETS,
    LayerNorm2d,
    NAFBlock,
    NAFNet,
    NAFNetConfig,
    SimpleGate,
)

from .conftest import images


def perturbed(net: NAFNet, seed: int = 0) -> NAFNet:
    """Give every zero-initialised parameter (beta, gamma, the ending conv) random values.

    In a new NAFNet these are exactly zero, which makes the gradients of everything
    before them exactly zero and would hide a missing gradient.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith((".beta", ".gamma")) or name.startswith("ending."):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return net


def test_new_block_is_identity():
    block = NAFBlock(6)
    x = images(2, 6, 5, 7)
    assert torch.equal(block(x), x)


def test_new_nafnet_is_input_plus_the_block_free_path():
    # every block starts as the identity, so a new net is input + ending(path without blocks)
    torch.manual_seed(0)
    net = NAFNet("tiny")
    blockless = NAFNet("tiny")
    blockless.load_state_dict(net.state_dict())
    for stage in (*blockless.encoders, blockless.middle, *blockless.decoders):
        for i in range(len(stage)):
            stage[i] = nn.Identity()
    for h, w in [(16, 16), (13, 30), (1, 5)]:
        x = images(2, 1, h, w)
        assert torch.equal(net(x), blockless(x))
        assert not torch.equal(net(x), x)


def test_simple_gate_and_layernorm():
    x = images(2, 6, 3, 4)
    a, b = x[:, :3], x[:, 3:]
    assert torch.equal(SimpleGate()(x), a * b)
    norm = LayerNorm2d(6)
    mu = x.mean(1, keepdim=True)
    var = x.var(1, unbiased=False, keepdim=True)
    torch.testing.assert_close(norm(x), (x - mu) / torch.sqrt(var + 1e-6))


def test_block_formula_with_nonzero_scales():
    torch.manual_seed(0)
    block = NAFBlock(4, dw_expand=2, ffn_expand=4)
    with torch.no_grad():
        block.beta.fill_(0.5)
        block.gamma.fill_(-0.25)
    x = images(1, 4, 5, 5)
    y = block.conv2(block.conv1(block.norm1(x)))
    y = y[:, :4] * y[:, 4:]
    y = y * block.sca(y.mean((2, 3), keepdim=True))
    mid = x + 0.5 * block.conv3(y)
    z = block.conv4(block.norm2(mid))
    z = z[:, :8] * z[:, 8:]
    torch.testing.assert_close(block(x), mid - 0.25 * block.conv5(z))


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    net = perturbed(NAFNet("tiny"))
    x = images(2, 1, 12, 12)
    out = net(x)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_one_optimizer_step_breaks_the_identity():
    torch.manual_seed(0)
    net = NAFNet("tiny")
    x, target = images(1, 1, 8, 8), images(1, 1, 8, 8, seed=1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    nn.functional.l1_loss(net(x), target).backward()
    opt.step()
    out = net(x)
    assert torch.isfinite(out).all()
    assert not torch.equal(out, x)


@pytest.mark.parametrize("h, w", [(1, 1), (1, 8), (2, 37), (5, 3), (17, 4), (37, 36)])
def test_any_size_returns_the_input_shape(h, w):
    torch.manual_seed(0)
    net = perturbed(NAFNet("tiny"))
    x = images(2, 1, h, w)
    with torch.no_grad():
        out = net(x)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()


def test_structure_of_paper_baseline():
    with torch.device("meta"):
        net = NAFNet.from_preset("paper-baseline")
    assert [len(e) for e in net.encoders] == [2, 2, 2, 20]
    assert len(net.middle) == 2
    assert [len(d) for d in net.decoders] == [2, 2, 2, 2]
    assert [d.in_channels for d in net.downs] == [32, 64, 128, 256]
    assert all(d.kernel_size == d.stride == (2, 2) for d in net.downs)
    assert [u[0].in_channels for u in net.ups] == [512, 256, 128, 64]
    assert all(isinstance(u[1], nn.PixelShuffle) and u[0].bias is None for u in net.ups)
    assert net.config.multiple == 16


def test_paper_baseline_param_count_by_hand():
    # NAFBlock(c), dw_expand = ffn_expand = 2 (d = f = 2c, SimpleGate halves to c):
    #   norm1, norm2          2 * 2c                     = 4c
    #   conv1 1x1 c -> 2c     2c^2 + 2c
    #   conv2 dw3x3 2c        9 * 2c + 2c                = 20c
    #   sca 1x1 c -> c        c^2 + c
    #   conv3 1x1 c -> c      c^2 + c
    #   conv4 1x1 c -> 2c     2c^2 + 2c
    #   conv5 1x1 c -> c      c^2 + c
    #   beta, gamma           2c
    #   total                 7c^2 + 33c
    def block(c):
        return 7 * c * c + 33 * c

    assert block(32) == 8_224 and block(256) == 467_200 and block(512) == 1_851_904
    encoders = 2 * block(32) + 2 * block(64) + 2 * block(128) + 20 * block(256)
    middle = 2 * block(512)
    decoders = 2 * (block(256) + block(128) + block(64) + block(32))
    downs = sum(4 * c * 2 * c + 2 * c for c in (32, 64, 128, 256))  # 2x2 conv c -> 2c
    ups = sum(c * 2 * c for c in (512, 256, 128, 64))  # 1x1 conv c -> 2c, no bias
    intro = 1 * 32 * 9 + 32
    ending = 32 * 9 * 1 + 1
    assert (encoders, middle, decoders) == (9_659_840, 3_703_808, 1_250_240)
    assert (downs, ups, intro, ending) == (697_280, 696_320, 320, 289)
    total = encoders + middle + decoders + downs + ups + intro + ending
    assert total == 16_008_097

    with torch.device("meta"):
        net = NAFNet("paper-baseline")
    c = complexity(net, (1, 1, 256, 256))
    assert c.total_params == total
    # Conv weights and biases only: minus two LayerNorms (4c) and beta, gamma (2c) per block.
    channels_x_blocks = (2 * 32 + 2 * 64 + 2 * 128 + 20 * 256) + 2 * 512 + 2 * (256 + 128 + 64 + 32)
    assert c.activated_params == total - 6 * channels_x_blocks == 15_962_785


def test_demo_preset_matches_one_ecmrnet_path():
    def block(c):  # see test_paper_baseline_param_count_by_hand
        return 7 * c * c + 33 * c

    blocks = 2 * (block(16) + block(32)) + 2 * block(64)  # enc + dec, two middle blocks
    downs = 4 * 16 * 32 + 32 + 4 * 32 * 64 + 64
    ups = 64 * 128 + 32 * 64
    ends = 16 * 9 + 16 + 16 * 9 + 1
    assert blocks + downs + ups + ends == sum(p.numel() for p in NAFNet("demo").parameters())
    # the pipeline's demo compares it with the tiny ECMRNet: about one task path's size
    from sepkit_torch import ECMRNet

    path = sum(p.numel() for p in ECMRNet.from_preset("tiny").parameters())
    assert 0.8 < (blocks + downs + ups + ends) / path < 1.2


def test_tiny_macs_by_hand():
    # thop rules: conv = out.numel() * C_in/groups * kH * kW; global pool = (HW + 1) * C.
    # NAFBlock(c) at n = H * W pixels: conv1 2c*c, conv2 2c*9, conv3 c*c, conv4 2c*c,
    # conv5 c*c per pixel; pool (n + 1) * c; sca c * c once.
    def block(c, n):
        return n * (6 * c * c + 18 * c) + (n + 1) * c + c * c

    side = 16
    n0, n1, n2 = side**2, (side // 2) ** 2, (side // 4) ** 2
    blocks = 2 * block(8, n0) + 2 * block(16, n1) + block(32, n2)  # enc + dec, middle
    downs = n1 * 16 * 8 * 4 + n2 * 32 * 16 * 4  # out pixels * C_out * C_in * 2 * 2
    ups = n2 * 64 * 32 + n1 * 32 * 16  # 1x1 before each PixelShuffle
    ends = 2 * n0 * 8 * 9  # intro 1 -> 8, ending 8 -> 1
    assert blocks + downs + ups + ends == 787_664
    c = complexity(NAFNet("tiny"), (1, 1, side, side))
    assert c.macs == 787_664


def test_config_round_trip_and_presets():
    for name, cfg in NAFNET_PRESETS.items():
        assert NAFNetConfig.from_preset(name) is cfg
        assert NAFNetConfig.from_dict(cfg.to_dict()) == cfg
    cfg = NAFNetConfig(width=4, enc_blocks=[1], middle_blocks=0, dec_blocks=[0])
    assert cfg.enc_blocks == (1,) and cfg.dec_blocks == (0,)
    assert NAFNet(cfg)(images(1, 1, 3, 3)).shape == (1, 1, 3, 3)


def test_errors_name_the_argument():
    net = NAFNet("tiny")
    with pytest.raises(InvalidInputError, match=r"must have 1 channel\(s\).*got 3"):
        net(images(1, 3, 8, 8))
    with pytest.raises(InvalidInputError, match=r"must be 4-D.*got shape \(1, 8, 8\)"):
        net(images(1, 8, 8))
    with pytest.raises(TypeError, match="must be a torch.Tensor; got list"):
        net([[1.0]])
    with pytest.raises(InvalidInputError, match=r"`preset` must be one of .*got 'paper'"):
        NAFNet("paper")
    with pytest.raises(InvalidInputError, match=r"`preset` must be one of .*got 'huge'"):
        NAFNet.from_preset("huge")
    with pytest.raises(InvalidInputError, match="same length.*got 2 and 1"):
        NAFNetConfig(width=8, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1,))
    with pytest.raises(InvalidInputError, match=r"`width \* dw_expand` must be even.*3 \* 1"):
        NAFNetConfig(width=3, enc_blocks=(), middle_blocks=1, dec_blocks=(), dw_expand=1)
    with pytest.raises(InvalidInputError, match="`width` must be a positive int; got 0"):
        NAFNetConfig(width=0, enc_blocks=(), middle_blocks=1, dec_blocks=())
    with pytest.raises(InvalidInputError, match=r"`enc_blocks` must hold non-negative.*-1"):
        NAFNetConfig(width=8, enc_blocks=(-1,), middle_blocks=1, dec_blocks=(1,))
    with pytest.raises(InvalidInputError, match="`middle_blocks` must be a non-negative int"):
        NAFNetConfig(width=8, enc_blocks=(), middle_blocks=True, dec_blocks=())
    with pytest.raises(InvalidInputError, match="must be even; got 6 and 3"):
        NAFBlock(3, dw_expand=2, ffn_expand=1)
