"""The counter's rules, and the paper's counts reproduced exactly at 1 x 1 x 512 x 640."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sepkit_torch import ECMRNet, complexity
from sepkit_torch.models import ReleasedSKMM

from .conftest import images

PAPER_INPUT = (1, 1, 512, 640)
BASE_PARAMS = 4_067_937
BASE_MACS = 97_454_802_560
TOTAL_7_TASKS = 27_505_929  # paper Table 3: 27.51M, with SKMM
SKMM_PARAMS = {2: 101_986, 3: 103_074}  # design page (the released SKMM)
SKMM_MACS = {2: 7_382_052_928, 3: 7_717_597_248}  # design page: 7.38G / 7.72G
SKMM_GMACS = {2: 7.38, 3: 7.72}
SKMM_K3_GMACS = SKMM_GMACS[3]
CBN_PATH_MACS = 396_970_576_448
CBN_PATH_GMACS = 396.97  # paper Table 3, with SKMM
# Eqs. 11-14 as printed (3x3 projections and residual conv): no reference figure to match
PAPER_SKMM_PARAMS = {2: 111_328, 3: 120_544}
PAPER_SKMM_MACS = {2: 12_079_669_248, 3: 15_099_568_128}
TASKS = [
    ("C", None),
    ("B", None),
    ("N", None),
    ("CB", ["C", "B"]),
    ("CN", ["C", "N"]),
    ("BN", ["B", "N"]),
    ("CBN", ["C", "B", "N"]),
]
N_SKMM_PARAMS = 3 * SKMM_PARAMS[2] + SKMM_PARAMS[3]


def _paper7(skmm):
    with torch.device("meta"):
        model = ECMRNet.from_preset("paper")
        base = complexity(model, PAPER_INPUT)
        for name, parts in TASKS:
            model.add_task(name, parts, skmm=skmm)
    return model, base


@pytest.fixture(scope="module")
def paper7():
    """The paper network with its seven tasks and (released) SKMMs, on the meta device."""
    return _paper7("released")


@pytest.fixture(scope="module")
def paper7_plain():
    """The same seven tasks, compound ones without SKMM."""
    return _paper7(None)


def test_conv_pool_linear_rules_by_hand():
    net = nn.Sequential(
        nn.Conv2d(4, 6, 3, padding=1, groups=2),  # 6*7*5 out * (4/2)*9 = 3780
        nn.GroupNorm(2, 6),  # 0
        nn.GELU(),  # 0
        nn.AdaptiveAvgPool2d(1),  # (7*5 + 1) * 6 = 216
        nn.Flatten(),
        nn.Linear(6, 3),  # 3 * 6 = 18
    )
    c = complexity(net, (1, 4, 7, 5))
    assert c.macs == 3780 + 216 + 18
    assert c.activated_params == (6 * 2 * 9 + 6) + (3 * 6 + 3)  # no norm affines
    assert c.total_params == c.activated_params + 12
    assert c.macs_by_module == (("0", 3780), ("3", 216), ("5", 18))
    assert complexity(net, (3, 4, 7, 5)).macs == 3 * c.macs  # every rule scales with batch


def test_pool_term_is_not_linear_in_the_area():
    pool = nn.AdaptiveAvgPool2d(1)
    assert complexity(pool, (1, 5, 4, 4)).macs == 17 * 5
    assert complexity(pool, (1, 5, 8, 8)).macs == 65 * 5


def test_counter_leaves_the_model_alone(tiny):
    before = {k: v.clone() for k, v in tiny.state_dict().items() if k != "_extra_state"}
    complexity(tiny, (1, 1, 16, 16))
    for k, v in tiny.state_dict().items():
        if k != "_extra_state":
            assert v.device.type == "cpu" and torch.equal(v, before[k]), k
    assert all(not m._forward_hooks for m in tiny.modules())


def _spatial_conv_macs(c):
    return sum(m for name, m in c.macs_by_module if not name.endswith((".pool", ".attn")))


def test_tiny_counts_scale_as_the_rules_say(tiny):
    tiny.add_task("C")
    c = complexity(tiny, (1, 1, 32, 40), task="C")
    pretrained = complexity(tiny, (1, 1, 32, 40))
    assert (c.activated_params, c.macs) == (pretrained.activated_params, pretrained.macs)
    # MACs of the convs on feature maps scale with the area; the pools' +1 terms and the
    # attention convs (on the pooled 1 x 1 maps) do not
    c4 = complexity(tiny, (1, 1, 64, 80), task="C")
    assert _spatial_conv_macs(c4) == 4 * _spatial_conv_macs(c)
    assert c4.macs - _spatial_conv_macs(c4) != 4 * (c.macs - _spatial_conv_macs(c))
    assert complexity(tiny, (2, 1, 32, 40)).macs == 2 * c.macs
    # a size that needs padding is counted at the padded size
    assert complexity(tiny, (1, 1, 29, 38)).macs == c.macs


def test_base_backbone_matches_the_paper(paper7):
    _, base = paper7
    assert base.activated_params == BASE_PARAMS
    assert base.macs == BASE_MACS
    assert round(base.gmacs, 2) == 97.45  # paper: 97.46G (thop 2.0.14 on its own run)


def test_every_task_path_counts_as_the_backbone(paper7_plain):
    model, _ = paper7_plain
    for name, _ in TASKS:
        c = complexity(model, PAPER_INPUT, task=name)
        assert (c.activated_params, c.macs) == (BASE_PARAMS, BASE_MACS), name
    assert complexity(model, PAPER_INPUT).macs == BASE_MACS  # the pretrained path


def test_seven_task_total_without_skmm(paper7_plain):
    model, base = paper7_plain
    shared = sum(
        p.numel()
        for m in (model.backbone.stem, model.backbone.bottom, model.backbone.out)
        for p in m.parameters()
    )
    branch = sum(p.numel() for p in model.branches["C"].parameters())
    assert shared == 320 + 262_656 + 289
    # per branch: its convs, plus GroupNorm affines, betas and the skip scales a, b, c
    assert branch == (BASE_PARAMS - shared) + 28_032 + (32 + 128 + 512)
    total = complexity(model, PAPER_INPUT).total_params
    assert total == shared + 7 * branch
    # the paper's total minus the four SKMMs (3 with K=2, 1 with K=3)
    assert total == TOTAL_7_TASKS - N_SKMM_PARAMS == 27_096_897


def test_cbn_path_reference_is_consistent_with_the_branch_counts(paper7):
    """396.97G = CBN branch + the C, B, N branches (stem and out shared) + SKMM(K=3)."""
    _, base = paper7
    by_module = dict(base.macs_by_module)
    stem, out = by_module["backbone.stem"], by_module["backbone.out"]
    assert stem == out == 32 * 9 * 512 * 640
    four_branches = BASE_MACS + 3 * (BASE_MACS - stem - out)
    assert four_branches == 389_252_979_200
    implied_skmm_gmacs = CBN_PATH_GMACS - four_branches / 1e9
    assert abs(implied_skmm_gmacs - SKMM_K3_GMACS) <= 0.01  # both rounded to 0.01G


def test_seven_task_total_with_skmm(paper7):
    model, _ = paper7
    assert complexity(model, PAPER_INPUT).total_params == TOTAL_7_TASKS
    assert sum(p.numel() for p in model.miners.parameters()) == N_SKMM_PARAMS
    assert sorted(model.miners) == ["BN", "CB", "CBN", "CN"]


def test_cbn_path_macs_with_skmm(paper7):
    model, _ = paper7
    c = complexity(model, PAPER_INPUT, task="CBN")
    assert c.macs == CBN_PATH_MACS == 389_252_979_200 + SKMM_MACS[3]
    assert round(c.gmacs, 2) == CBN_PATH_GMACS


def _skmm_macs(c, task):
    return sum(m for name, m in c.macs_by_module if name.startswith(f"miners.{task}."))


@pytest.mark.parametrize(("task", "k"), [("CB", 2), ("CN", 2), ("BN", 2), ("CBN", 3)])
def test_skmm_alone_matches_the_design_page(paper7, task, k):
    """The released SKMM: 101,986 / 103,074 params and 7.38G / 7.72G MACs for K = 2 / 3."""
    model, _ = paper7
    c = complexity(model, PAPER_INPUT, task=task)
    assert sum(p.numel() for p in model.miners[task].parameters()) == SKMM_PARAMS[k]
    assert _skmm_macs(c, task) == SKMM_MACS[k]
    assert round(_skmm_macs(c, task) / 1e9, 2) == SKMM_GMACS[k]
    # a compound path: its branch and K part branches, stem and out counted once
    assert c.macs == BASE_MACS + k * (BASE_MACS - 2 * 32 * 9 * 512 * 640) + SKMM_MACS[k]


def test_released_skmm_sizes_in_closed_form():
    """99,810 + 1,088 K params; 2 + K 1x1 convs of 32 x 32 and two 3x3 ones at H x W."""
    for k in (1, 2, 3, 4):
        with torch.device("meta"):
            skmm = ReleasedSKMM(32, parts=k)
        assert sum(p.numel() for p in skmm.parameters()) == 99_810 + 1_088 * k
        # GAP is a plain mean: a pooling module would add 2 * (H*W + 1) * 32 MACs
        assert not any(isinstance(m, nn.AdaptiveAvgPool2d) for m in skmm.modules())
    hw = 512 * 640
    linears = 128 * 64 + 512 * 128 + 64 * 64 + 1 * 64  # Phi and the gate
    for k in (2, 3):
        assert (2 + k) * hw * 32 * 32 + 2 * hw * 32 * 32 * 9 + linears == SKMM_MACS[k]


def test_paper_skmm_counts():
    """Eqs. 11-14 with 3x3 projections: bigger than the released module (no target)."""
    model, _ = _paper7("paper")
    for task, k in (("CB", 2), ("CBN", 3)):
        c = complexity(model, PAPER_INPUT, task=task)
        assert sum(p.numel() for p in model.miners[task].parameters()) == PAPER_SKMM_PARAMS[k]
        assert PAPER_SKMM_PARAMS[k] == 92_896 + 9_216 * k
        assert _skmm_macs(c, task) == PAPER_SKMM_MACS[k]


def test_counts_on_a_real_model_equal_the_meta_ones(tiny):
    """complexity() runs on meta; a real CPU forward of the same path gives the same shapes."""
    tiny.add_task("C")
    x = images(1, 1, 16, 20)
    with torch.no_grad():
        assert tiny(x, task="C").shape == x.shape
    c = complexity(tiny, tuple(x.shape), task="C")
    convs = [m for m in tiny.branches["C"].modules() if isinstance(m, nn.Conv2d)]
    shared = (tiny.backbone.stem, tiny.backbone.bottom, tiny.backbone.out)
    expected = sum(p.numel() for m in (*convs, *shared) for p in m.parameters())
    assert c.activated_params == expected
