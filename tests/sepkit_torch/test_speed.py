"""Speed switches: every grouped-convolution algorithm equals nn.Conv2d(groups=g), the
other switches leave the results unchanged (or within bf16 rounding)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sepkit_torch import ECMRNet, InvalidInputError
from sepkit_torch.models.backbone import STAGE_NAMES, GroupedConv2d, block_diagonal_weight
from sepkit_torch.speed import (
    autocast,
    loader_options,
    parse_grouped_conv,
    set_grouped_conv,
    to_channels_last,
)
from sepkit_torch.training import make_optimizer

from .conftest import images, pretend_pretrained


def _pair(channels, groups, kernel, padding, bias=True):
    torch.manual_seed(channels + groups + kernel)
    ref = nn.Conv2d(channels, channels, kernel, padding=padding, groups=groups, bias=bias)
    ours = GroupedConv2d(channels, channels, kernel, padding=padding, groups=groups, bias=bias)
    ours.load_state_dict(ref.state_dict())
    return ref.double(), ours.double()


@pytest.mark.parametrize("impl", ["dense", "unfold"])
@pytest.mark.parametrize(
    ("channels", "groups", "kernel", "padding", "bias"),
    [
        (8, 4, 3, 1, True),
        (12, 3, 3, 1, True),
        (16, 16, 3, 1, True),
        (6, 2, 1, 0, False),
        (8, 1, 3, 1, True),
        (10, 5, 3, 0, True),
    ],
)
def test_grouped_conv_algorithms_equal_conv2d(impl, channels, groups, kernel, padding, bias):
    ref, ours = _pair(channels, groups, kernel, padding, bias)
    ours.set_impl(impl)
    x = images(3, channels, 7, 5, seed=1).double().requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    y_ref, y = ref(x), ours(x2)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    grad = images(*y.shape, seed=2).double()
    y_ref.backward(grad)
    y.backward(grad)
    torch.testing.assert_close(x2.grad, x.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours.weight.grad, ref.weight.grad, rtol=1e-12, atol=1e-12)
    if bias:
        torch.testing.assert_close(ours.bias.grad, ref.bias.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("impl", ["dense", "unfold"])
def test_grouped_conv_algorithms_channels_last_and_bf16(impl):
    ref, ours = _pair(16, 4, 3, 1)
    ref, ours = ref.float(), ours.float()
    ours.set_impl(impl)
    x = images(2, 16, 9, 6, seed=3)
    torch.testing.assert_close(
        ours(x.to(memory_format=torch.channels_last)), ref(x), rtol=1e-5, atol=1e-5
    )
    with autocast("cpu", "bf16"):
        y_ref, y = ref(x), ours(x)
    assert y.dtype == y_ref.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), ref(x), rtol=0.05, atol=0.05)


def test_block_diagonal_weight_zero_between_groups():
    w = images(6, 2, 3, 3, seed=4)
    dense = block_diagonal_weight(w, groups=3)
    assert dense.shape == (6, 6, 3, 3)
    for i in range(3):
        for j in range(3):
            block = dense[2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            assert torch.equal(block, w[2 * i : 2 * i + 2] if i == j else torch.zeros_like(block))


def test_grouped_conv_refuses_what_it_does_not_compute():
    with pytest.raises(InvalidInputError, match="stride 1"):
        GroupedConv2d(4, 4, 3, stride=2, groups=2)
    with pytest.raises(InvalidInputError, match="`padding` of GroupedConv2d must be ints"):
        GroupedConv2d(4, 4, 3, padding="same", groups=2)
    with pytest.raises(InvalidInputError, match=r"`impl` must be one of .*got 'cudnn'"):
        GroupedConv2d(4, 4, 3, groups=2).set_impl("cudnn")


@pytest.fixture
def two_task_model():
    torch.manual_seed(0)
    model = pretend_pretrained(ECMRNet.from_preset("tiny"))
    model.add_task("C")
    model.add_task("B")
    pretend_pretrained(model, seed=1)
    return model.double()


@pytest.mark.parametrize(
    "impl", ["dense", "unfold", "dense,unfold,native,native,unfold,dense", {"e3": "dense"}]
)
def test_model_output_equal_for_every_algorithm(two_task_model, impl):
    x = images(2, 1, 12, 10, seed=5).double()
    keys = list(two_task_model.state_dict())
    reference = {t: two_task_model(x, task=t) for t in (None, "C", "B")}
    chosen = set_grouped_conv(two_task_model, impl)
    assert chosen == parse_grouped_conv(impl)
    convs = [getattr(two_task_model.branches["B"], s).blocks[0].conv1 for s in STAGE_NAMES]
    assert tuple(c.impl for c in convs) == chosen
    for task, expected in reference.items():
        torch.testing.assert_close(two_task_model(x, task=task), expected, rtol=1e-10, atol=1e-12)
    assert list(two_task_model.state_dict()) == keys  # the algorithm is not saved


def test_channels_last_model_gives_the_same_output(two_task_model):
    model = two_task_model.float()
    x = images(2, 1, 12, 16, seed=6)
    expected = model(x, task="B")
    to_channels_last(model)
    assert model.branches["B"].e2.entrance.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(model(x, task="B"), expected, rtol=1e-5, atol=1e-5)


def test_bf16_autocast_restores_close_to_float32(two_task_model):
    model = two_task_model.float()
    x = images(1, 1, 16, 16, seed=7)
    expected = model(x, task="C")
    with autocast("cpu", "bf16"):
        y = model(x, task="C")
    assert y.dtype == torch.bfloat16
    assert (y.float() - expected).abs().max() < 0.1
    assert not torch.equal(y.float(), expected)  # it did run in lower precision


@pytest.mark.parametrize("impl", ["foreach", "fused", "for-loop"])
def test_every_adam_implementation_makes_the_same_update(impl):
    def run(which):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.GELU(), nn.Conv2d(4, 1, 1))
        opt = make_optimizer(net.parameters(), 1e-2, impl=which)
        for step in range(3):
            opt.zero_grad()
            F.l1_loss(net(images(2, 1, 6, 6, seed=step)), images(2, 1, 4, 4, seed=9)).backward()
            opt.step()
        return [p.detach() for p in net.parameters()]

    for a, b in zip(run("default"), run(impl), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_switch_errors_name_the_argument():
    with pytest.raises(InvalidInputError, match=r"`grouped_conv` must be one of .*got 'fast'"):
        parse_grouped_conv("fast")
    with pytest.raises(InvalidInputError, match=r"six of them.*got 'dense,native'"):
        parse_grouped_conv("dense,native")
    with pytest.raises(InvalidInputError, match=r"may name the stages .*\['e4'\]"):
        parse_grouped_conv({"e4": "dense"})
    with pytest.raises(InvalidInputError, match=r"`amp` must be one of \['none', 'bf16'\]"):
        autocast("cpu", "fp16")
    with pytest.raises(InvalidInputError, match=r"`impl` must be one of .*got 'sgd'"):
        make_optimizer([nn.Parameter(torch.ones(1))], 1e-3, impl="sgd")
    with pytest.raises(InvalidInputError, match=r"`workers` must be an int >= 0; got -1"):
        loader_options(-1, False, "cpu")


def test_loader_options_pin_memory_on_cuda_only():
    assert loader_options(0, True, "cpu") == {"num_workers": 0, "pin_memory": False}
    assert loader_options(2, True, "cuda")["pin_memory"] is True
    assert loader_options(2, False, "cuda")["num_workers"] == 2


# ----------------------------------------------------------------- the pipeline's switches


def _smoke(tmp_path, name, **overrides):
    from sepkit_torch.pipeline import PipelineConfig

    return PipelineConfig.from_preset(
        "smoke", out=str(tmp_path / name), tasks=("C",), prune=False, **overrides
    )


def test_pipeline_switches_that_keep_the_maths_keep_the_scores(tmp_path):
    from sepkit_torch.pipeline import run

    plain = run(_smoke(tmp_path, "plain"), progress=False)
    switched = run(
        _smoke(
            tmp_path,
            "switched",
            channels_last=True,
            grouped_conv="dense,unfold,native,native,unfold,dense",
            optimizer_impl="for-loop",
            workers=1,
        ),
        progress=False,
    )
    for a, b in zip(plain.metrics[-1], switched.metrics[-1], strict=True):
        assert abs(a["psnr"] - b["psnr"]) < 0.01 and abs(a["ssim"] - b["ssim"]) < 1e-3
    bf16 = run(_smoke(tmp_path, "bf16", amp="bf16", optimizer_impl="fused"), progress=False)
    assert all(math.isfinite(m["psnr"]) for m in bf16.metrics[-1])


def test_resume_may_change_the_switches_that_keep_the_maths(tmp_path):
    from sepkit_torch import TaskStateError
    from sepkit_torch.pipeline import run

    run(_smoke(tmp_path, "run"), progress=False, stop_after="C:train")
    with pytest.raises(TaskStateError, match=r"other settings \(amp"):
        run(_smoke(tmp_path, "run", amp="bf16"), resume=True, progress=False)
    report = run(
        _smoke(tmp_path, "run", channels_last=True, workers=1), resume=True, progress=False
    )
    assert report.tasks == ["C"] and len(report.metrics) == 1


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("amp", "fp16", r"`amp` must be one of \['none', 'bf16'\]; got 'fp16'"),
        ("optimizer_impl", "lion", r"`optimizer_impl` must be one of .*got 'lion'"),
        ("grouped_conv", "cudnn", r"`grouped_conv` must be one of .*got 'cudnn'"),
        ("workers", -2, r"`workers` must be >= 0; got -2"),
        ("compile", "yes", r"`compile` must be bool; got 'yes'"),
    ],
)
def test_pipeline_switch_errors(key, value, message):
    from sepkit_torch.pipeline import PipelineConfig

    with pytest.raises(InvalidInputError, match=message):
        PipelineConfig.from_preset("smoke", **{key: value})
