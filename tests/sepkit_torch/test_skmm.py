"""SKMM: both variants as modules, and compound tasks that mine their parts in ECMRNet."""

from __future__ import annotations

import io
import math

import pytest
import torch

from sepkit_torch import ECMRNet, InvalidInputError, make_optimizer, train_step
from sepkit_torch.continual.mining import mine, skmm_config
from sepkit_torch.models import (
    SKMM_VARIANTS,
    PaperSKMM,
    ReleasedSKMM,
    SKMMConfig,
    make_skmm,
    pad_to_multiple,
)

from .conftest import images

X = images(2, 1, 12, 16, seed=3)
CLEAN = images(2, 1, 12, 16, seed=4)
VARIANTS = sorted(SKMM_VARIANTS)


def _features(k, shape=(2, 8, 6, 7), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), [torch.randn(shape, generator=g) for _ in range(k)]


def _as_if_trained(module, seed=1):
    """Move the released gate's last layer off its zero initialisation (as training would).

    With that weight at 0 the gate's first layer gets an exactly zero gradient, which
    would hide a missing gradient path.
    """
    if isinstance(module, ReleasedSKMM):
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            w = module.gate[-1].weight
            w.copy_(0.1 * torch.randn(w.shape, generator=g))
    return module


# ---------------------------------------------------------------- the modules
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("shape", [(2, 8, 6, 7), (1, 8, 1, 2), (3, 8, 5, 2)])
def test_shapes(variant, k, shape):
    torch.manual_seed(0)
    skmm = make_skmm(variant, channels=8, parts=k)
    compound, parts = _features(k, shape)
    out = skmm(compound, parts)
    assert out.shape == compound.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_parameter_gets_a_gradient_and_the_parts_none(variant):
    torch.manual_seed(0)
    skmm = _as_if_trained(make_skmm(variant, channels=8, parts=3))
    compound, parts = _features(3)
    compound.requires_grad_(True)
    for p in parts:
        p.requires_grad_(True)
    skmm(compound, parts).square().mean().backward()
    for name, p in skmm.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert compound.grad is not None and compound.grad.abs().sum() > 0
    assert all(p.grad is None for p in parts)  # detached: a fixed knowledge bank


def test_released_starts_as_the_public_code_does():
    torch.manual_seed(0)
    skmm = ReleasedSKMM(8, parts=2)
    compound, parts = _features(2)
    a, gate, u, v = skmm.mixing_matrix(compound, parts)
    assert a.shape == (2, 32, 32) and u.shape == v.shape == (2, 32, 6, 7)
    assert torch.allclose(gate, torch.full((2, 1, 1, 1), 1 / (1 + math.exp(3))))
    assert skmm.logit_bias.item() == -4.0
    assert torch.allclose(a.sum(-1), torch.ones(2, 32), atol=1e-5)  # rows normalised
    assert (a > 0).all()
    assert skmm.static_left.shape == skmm.static_right.shape == (32, 8)
    assert 0 < skmm.static_left.std() < 0.05  # small, but not the zero saddle point


def test_paper_mixing_matrix_is_a_sigmoid_of_a_low_rank_product():
    torch.manual_seed(0)
    skmm = PaperSKMM(8, parts=2, mix_channels=16, rank=3)
    compound, parts = _features(2)
    a, f_h = skmm.mixing_matrix(compound, parts)
    assert a.shape == (2, 16, 16) and f_h.shape == (2, 16, 6, 7)
    assert ((a > 0) & (a < 1)).all()
    logits = torch.logit(a.double())
    for b in range(2):  # rank of U V^T is at most R
        assert torch.linalg.matrix_rank(logits[b], atol=1e-4) <= 3
    assert not torch.allclose(a[0], a[1])  # sample-adaptive
    # Eq. 14: F~c = F^c + K_r(sum_j A_ij F^h_j)
    mix = torch.stack([sum(a[b, :, j, None, None] * f_h[b, j] for j in range(16)) for b in (0, 1)])
    expected = compound + skmm.residual(mix)
    assert torch.allclose(skmm(compound, parts), expected, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_output_depends_on_every_part(variant):
    torch.manual_seed(0)
    skmm = _as_if_trained(make_skmm(variant, channels=8, parts=2))
    compound, parts = _features(2)
    out = skmm(compound, parts)
    for i in range(2):
        changed = list(parts)
        changed[i] = parts[i] + torch.randn_like(parts[i])  # not a constant: GroupNorm
        assert not torch.allclose(skmm(compound, changed), out), i


def test_module_errors():
    skmm = ReleasedSKMM(8, parts=2)
    compound, parts = _features(2)
    with pytest.raises(InvalidInputError, match=r"`parts` must be 2 tensors of the shape"):
        skmm(compound, parts[:1])
    with pytest.raises(InvalidInputError, match=r"`parts` must be 2 tensors of the shape"):
        skmm(compound, [parts[0], parts[1][:, :4]])
    with pytest.raises(TypeError, match=r"`parts` must be a list or tuple of 2 tensors"):
        skmm(compound, torch.stack(parts))
    with pytest.raises(InvalidInputError, match=r"`compound` must be a \(batch, 8, H, W\)"):
        skmm(compound[:, :4], parts)
    with pytest.raises(InvalidInputError, match=r"`parts` must be the number of sub-degr"):
        ReleasedSKMM(8, parts=0)
    with pytest.raises(InvalidInputError, match=r"`rank` must be a positive int; got 0"):
        PaperSKMM(8, parts=2, rank=0)
    with pytest.raises(InvalidInputError, match=r"`variant` must be one of \['paper', 'rel"):
        SKMMConfig("gated")
    with pytest.raises(InvalidInputError, match=r"exactly the keys"):
        SKMMConfig.from_dict({"variant": "paper"})
    with pytest.raises(TypeError, match=r"`config` must be an SKMMConfig"):
        make_skmm(3, 8, 2)


def test_skmm_option():
    assert skmm_config(None) is None
    assert skmm_config("released") == SKMMConfig()
    cfg = SKMMConfig("paper", mix_channels=8, rank=2)
    assert skmm_config(cfg) is cfg
    with pytest.raises(InvalidInputError, match=r"`skmm` must be one of \['paper', 'rel"):
        skmm_config("Paper")
    with pytest.raises(TypeError, match=r"`skmm` must be one of .* got True"):
        skmm_config(True)


# ------------------------------------------------------- compound tasks in ECMRNet
def _train(model, task, steps=3, lr=1e-2, degraded=X):
    opt = make_optimizer(model, lr=lr)
    return [train_step(model, opt, degraded, CLEAN, task=task) for _ in range(steps)]


def _with_parts(tiny, names=("C", "B")):
    for i, name in enumerate(names):
        tiny.add_task(name)
        _train(tiny, name, steps=2, degraded=X * (0.5 + 0.2 * i))
    return tiny


@pytest.mark.parametrize("variant", VARIANTS)
def test_compound_path_mines_its_parts(tiny, variant):
    model = _with_parts(tiny)
    info = model.add_task("CB", parts=["C", "B"], skmm=variant)
    assert info.skmm == SKMMConfig(variant) and info.mines
    skmm = model.miners["CB"]
    assert isinstance(skmm, SKMM_VARIANTS[variant]) and skmm.parts == 2 and skmm.channels == 8
    with torch.no_grad():
        bb = model.backbone
        f = bb.stem(pad_to_multiple(X))
        own = model.branches["CB"](f, bb.bottom)
        parts = [model.branches[p](f, bb.bottom) for p in ("C", "B")]
        assert torch.equal(model(X, task="CB"), bb.out(skmm(own, parts)))
        by_mine = mine(f, model.branches["CB"], [model.branches[p] for p in "CB"], bb.bottom, skmm)
        assert torch.equal(by_mine, skmm(own, parts))
        # the parts are mined in the task's order
        assert not torch.equal(model(X, task="CB"), bb.out(skmm(own, parts[::-1])))


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 1, 7, 9), (1, 1, 13, 6)])
def test_compound_path_on_odd_sizes(tiny, shape):
    model = _with_parts(tiny)
    model.add_task("CB", parts=["C", "B"])
    x = images(*shape, seed=5)
    out = model(x, task="CB")
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_reach_the_compound_branch_and_skmm_only(tiny, variant):
    model = _with_parts(tiny, ("C", "B", "N"))
    model.add_task("CBN", parts=("C", "B", "N"), skmm=variant)
    _as_if_trained(model.miners["CBN"])
    trainable = model.trainable_parameters()
    expected = [*model.branches["CBN"].parameters(), *model.miners["CBN"].parameters()]
    assert [id(p) for p in trainable] == [id(p) for p in expected]
    # even with requires_grad forced on, the parts' branches run without gradient
    for name in ("C", "B", "N"):
        model.branches[name].requires_grad_(True)
    model.zero_grad(set_to_none=True)
    model(X, task="CBN").square().mean().backward()
    for name, p in model.named_parameters():
        if name.startswith(("branches.CBN.", "miners.CBN.")):
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name


def test_compound_task_trains_and_forgets_nothing(tiny):
    model = _with_parts(tiny, ("C", "B", "N"))
    model.add_task("CB", parts=("C", "B"))
    with torch.no_grad():
        before = {t: model(X, task=t) for t in (None, "C", "B", "N")}
    states = {
        t: {k: v.clone() for k, v in model.branches[t].state_dict().items()}
        for t in ("C", "B", "N")
    }
    losses = _train(model, "CB", steps=4, lr=1e-3)
    assert losses[-1] < losses[0]

    with torch.no_grad():
        cb_after = model(X, task="CB")
    miner_state = {k: v.clone() for k, v in model.miners["CB"].state_dict().items()}
    model.add_task("CBN", parts=("C", "B", "N"), skmm="paper")
    _train(model, "CBN", steps=2)
    model.add_task("BN", parts=("B", "N"), skmm=None)
    _train(model, "BN", steps=2)

    with torch.no_grad():
        for t, out in before.items():
            assert torch.equal(model(X, task=t), out), t
        assert torch.equal(model(X, task="CB"), cb_after)
    for t, state in states.items():
        for k, v in model.branches[t].state_dict().items():
            assert torch.equal(v, state[k]), (t, k)
    for k, v in model.miners["CB"].state_dict().items():
        assert torch.equal(v, miner_state[k]), k
    assert not any(p.requires_grad for p in model.miners.parameters())


def test_skmm_option_of_add_task(tiny):
    model = _with_parts(tiny)
    assert model.task("C").skmm is None
    assert model.add_task("N", skmm="paper").skmm is None  # single task: ignored
    with pytest.raises(InvalidInputError, match=r"`skmm` must be one of"):
        model.add_task("CB", parts=("C", "B"), skmm="gated")
    with pytest.raises(TypeError, match=r"`skmm` must be one of"):
        model.add_task("CB", parts=("C", "B"), skmm=1)
    assert model.task_names == ("C", "B", "N") and len(model.miners) == 0  # nothing added
    info = model.add_task("CB", parts=("C", "B"), skmm=SKMMConfig("paper", rank=2))
    assert model.miners["CB"].rank == 2 and info.skmm.rank == 2


def test_new_skmm_follows_the_model_dtype(tiny):
    model = _with_parts(tiny).double()
    model.add_task("CB", parts=("C", "B"))
    assert all(p.dtype == torch.float64 for p in model.miners["CB"].parameters())
    assert model(X.double(), task="CB").dtype == torch.float64


def _assert_same(a, b):
    assert a.tasks == b.tasks and a.trainable_task == b.trainable_task
    assert sorted(a.miners) == sorted(b.miners)
    with torch.no_grad():
        for task in (None, *a.task_names):
            assert torch.equal(a(X, task=task), b(X, task=task)), task
    assert [(n, p.requires_grad) for n, p in a.named_parameters()] == [
        (n, p.requires_grad) for n, p in b.named_parameters()
    ]


def test_state_dict_round_trip_with_compound_tasks(tiny):
    model = _with_parts(tiny, ("C", "B", "N"))
    model.add_task("CB", parts=("C", "B"))
    _train(model, "CB", steps=2)
    model.add_task("CN", parts=("C", "N"), skmm=None)
    model.add_task("CBN", parts=("C", "B", "N"), skmm=SKMMConfig("paper", rank=4))
    _train(model, "CBN", steps=2)

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert [t["skmm"] for t in state["_extra_state"]["tasks"]] == [
        None,
        None,
        None,
        {"variant": "released", "mix_channels": 32, "rank": 8},
        None,
        {"variant": "paper", "mix_channels": 32, "rank": 4},
    ]
    rebuilt = ECMRNet.from_state_dict(state)
    _assert_same(model, rebuilt)
    fresh = _with_parts(ECMRNet.from_preset("tiny"), ("C",))  # different tasks: rebuilt
    fresh.load_state_dict(state)
    _assert_same(model, fresh)

    # training goes on after loading; earlier compound tasks stay put
    with torch.no_grad():
        cb = fresh(X, task="CB")
    _train(fresh, "CBN", steps=1)
    with torch.no_grad():
        assert torch.equal(fresh(X, task="CB"), cb)


def test_format_1_checkpoint_loads_without_skmm(tiny):
    """Checkpoints from before SKMM: compound tasks ran their own branch only."""
    model = _with_parts(tiny)
    model.add_task("CB", parts=("C", "B"), skmm=None)
    state = model.state_dict()
    extra = state["_extra_state"]
    state["_extra_state"] = {
        **extra,
        "format": 1,
        "tasks": [{k: v for k, v in t.items() if k != "skmm"} for t in extra["tasks"]],
    }
    _assert_same(model, ECMRNet.from_state_dict(state))


def test_inconsistent_skmm_state_is_refused(tiny):
    tiny.add_task("C")
    state = tiny.state_dict()
    state["_extra_state"]["tasks"][0]["skmm"] = SKMMConfig().to_dict()
    with pytest.raises(InvalidInputError, match=r"single task 'C' has an SKMM"):
        ECMRNet.from_state_dict(state)
