"""The backbone modules: group isolation, padding, shapes, configuration."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import sepkit_torch
from sepkit_torch.models import (
    MODEL_PRESETS,
    STAGE_NAMES,
    Backbone,
    BackboneConfig,
    Branch,
    GResBlock,
    Stage,
    pad_to_multiple,
)

from .conftest import images, pretend_pretrained


def test_public_names_exist():
    for name in sepkit_torch.__all__:
        assert hasattr(sepkit_torch, name), name


def test_gresblock_starts_as_identity():
    block = GResBlock(12, groups=3)
    x = images(2, 12, 7, 5)
    assert torch.equal(block(x), x)


def test_gresblock_keeps_groups_apart():
    torch.manual_seed(0)
    block = GResBlock(12, groups=3)
    with torch.no_grad():
        block.beta.fill_(1.0)
    x = images(1, 12, 6, 6)
    x2 = x.clone()
    x2[:, 4:8] += images(1, 4, 6, 6, seed=1)  # change group 1 only
    y, y2 = block(x), block(x2)
    assert torch.equal(y[:, :4], y2[:, :4])
    assert torch.equal(y[:, 8:], y2[:, 8:])
    assert not torch.equal(y[:, 4:8], y2[:, 4:8])


def test_stage_structure():
    stage = Stage(8, width=12, groups=3, blocks=2)
    assert (stage.entrance.in_channels, stage.entrance.out_channels) == (8, 12)
    assert stage.entrance.kernel_size == stage.exit.kernel_size == (1, 1)
    assert (stage.exit.in_channels, stage.exit.out_channels) == (12, 8)
    assert len(stage.blocks) == 2 and stage.groups == 3


def test_paper_backbone_matches_design_page():
    net = Backbone("paper")
    assert net.stem.kernel_size == (3, 3) and net.out.kernel_size == (3, 3)
    assert net.bottom.kernel_size == (1, 1) and net.bottom.in_channels == 512
    assert net.stages.groups == (8, 16, 32, 32, 16, 8)
    for name, width, groups, blocks in zip(
        STAGE_NAMES,
        (32, 128, 512, 512, 128, 32),
        (8, 16, 32, 32, 16, 8),
        (2, 4, 8, 8, 4, 2),
        strict=True,
    ):
        stage = getattr(net.stages, name)
        assert stage.entrance.out_channels == width
        assert len(stage.blocks) == blocks
        for block in stage.blocks:
            assert block.conv1.groups == block.conv2.groups == block.attn.groups == groups
            assert block.conv1.kernel_size == (3, 3) and block.attn.kernel_size == (1, 1)
            assert block.norm.num_groups == groups
            assert torch.equal(block.beta, torch.zeros(1, width, 1, 1))
    assert net.stages.a.shape == (1, 32, 1, 1)
    assert torch.equal(net.stages.c, torch.ones(1, 512, 1, 1))
    # weights + biases of every conv + GroupNorm affines + betas + skip scales
    assert sum(p.numel() for p in net.parameters()) == 4_067_937 + 28_032 + 672


def test_tiny_preset_groups_have_2_to_4_channels():
    cfg = MODEL_PRESETS["tiny"]
    assert cfg.interface_widths == (8, 32, 128, 128, 32, 8)
    assert all(2 <= m <= 4 for m in cfg.group_widths)


def test_config_round_trips_through_dict():
    for cfg in MODEL_PRESETS.values():
        assert BackboneConfig.from_dict(cfg.to_dict()) == cfg


def test_pruned_branch_keeps_interfaces():
    cfg = MODEL_PRESETS["tiny"]
    branch = Branch(cfg, groups=(2, 4, 16, 16, 4, 2))
    assert branch.groups == (2, 4, 16, 16, 4, 2)
    assert branch.e2.entrance.out_channels == 4 * cfg.group_widths[1]
    net = Backbone(cfg)
    y = net.run(images(1, 1, 8, 8), branch)
    assert y.shape == (1, 1, 8, 8)


def test_pad_is_reflection_where_torch_can_reflect():
    x = images(2, 1, 9, 6)
    assert torch.equal(pad_to_multiple(x), F.pad(x, (0, 2, 0, 3), mode="reflect"))


def test_pad_short_sides_mirror_repeatedly():
    x = torch.tensor([[[[1.0, 2.0]]]])  # 1 x 2
    y = pad_to_multiple(x)
    assert torch.equal(y, torch.tensor([[1.0, 2.0, 1.0, 2.0]]).expand(1, 1, 4, 4))


@settings(max_examples=12, deadline=None)
@given(
    h=st.integers(1, 67),
    w=st.integers(1, 67),
    batch=st.integers(1, 2),
    task=st.sampled_from([None, "C"]),
)
def test_any_size_returns_input_shape(h, w, batch, task):
    model = _tiny_with_task()
    y = model(images(batch, 1, h, w), task=task)
    assert y.shape == (batch, 1, h, w)
    assert torch.isfinite(y).all()


_MODEL = []


def _tiny_with_task():
    if not _MODEL:
        torch.manual_seed(1)
        model = pretend_pretrained(sepkit_torch.ECMRNet.from_preset("tiny"))
        model.add_task("C")
        _MODEL.append(model.eval())
    return _MODEL[0]


def test_crop_keeps_the_top_left_of_the_padded_output():
    model = _tiny_with_task()
    x = images(1, 1, 10, 11)
    with torch.no_grad():
        full = model.backbone.out(
            model.backbone.stages(model.backbone.stem(pad_to_multiple(x)), model.backbone.bottom)
        )
        assert torch.equal(model(x), full[..., :10, :11])
