"""EWC, SI, MAS and LwF: zero at the anchors, importances, hand computations, training pull."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from sepkit_torch import InvalidInputError
from sepkit_torch._errors import TaskStateError
from sepkit_torch.continual.regularizers import EWC, MAS, SI, LwF, Regularizer
from sepkit_torch.metrics import l1_loss
from sepkit_torch.models import NAFNet

from .conftest import images


def tiny_nafnet(seed: int = 0) -> NAFNet:
    """A tiny NAFNet whose residual scales (beta, gamma) and ending are random.

    In a new NAFNet every block's scales are exactly zero, so no gradient reaches the
    blocks' convolutions and their importances would be trivially zero.
    """
    torch.manual_seed(seed)
    net = NAFNet.from_preset("tiny")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith((".beta", ".gamma")) or name.startswith("ending."):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return net


def task_batches(seed: int, scale: float, n: int = 2) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` batches of 2 random 8x8 images; the task maps ``x`` to ``scale * x``."""
    out = []
    for k in range(n):
        x = images(2, 1, 8, 8, seed=100 * seed + k)
        out.append((x, scale * x))
    return out


def perturb(model: nn.Module, seed: int = 1, size: float = 0.05) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(size * torch.randn(p.shape, generator=g))


def train(model: nn.Module, reg: Regularizer | None, batches, steps: int, lr: float) -> None:
    """The documented protocol: (task loss + penalty) backward, before_step, step, after_step."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for k in range(steps):
        x, y = batches[k % len(batches)]
        opt.zero_grad()
        out = model(x)
        loss = l1_loss(out, y)
        if reg is not None:
            loss = loss + reg.penalty(model, x, out)
        loss.backward()
        if reg is not None:
            reg.before_step(model)
        opt.step()
        if reg is not None:
            reg.after_step(model)


def consolidated(kind: str, model: nn.Module) -> Regularizer:
    """A regulariser of `kind` after one short task on `model`."""
    batches = task_batches(0, 0.5)
    reg = {"ewc": EWC(), "si": SI(), "mas": MAS(), "lwf": LwF()}[kind]
    train(model, reg, batches, steps=4, lr=0.05)
    reg.end_task(model, batches)
    return reg


# ---------------------------------------------------------------- zero at the anchors


@pytest.mark.parametrize("kind", ["ewc", "si", "mas", "lwf"])
def test_penalty_zero_at_anchor_positive_away(kind):
    model = tiny_nafnet()
    reg = consolidated(kind, model)
    x = images(2, 1, 8, 8, seed=7)
    at_anchor = reg.penalty(model, x)
    assert at_anchor.shape == ()
    assert at_anchor.item() == 0.0
    perturb(model)
    away = reg.penalty(model, x)
    assert away.item() > 0
    away.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("reg", [EWC(), SI(), MAS(), LwF()], ids=repr)
def test_penalty_is_zero_before_any_task(reg):
    model = tiny_nafnet()
    assert reg.penalty(model, images(1, 1, 8, 8)).item() == 0.0
    assert reg.tasks_seen == 0


@pytest.mark.parametrize("kind", ["ewc", "si", "mas"])
def test_importances_have_parameter_shapes_and_are_non_negative(kind):
    model = tiny_nafnet()
    reg = consolidated(kind, model)
    params = dict(model.named_parameters())
    assert set(reg.importance) == set(params) == set(reg.anchors)
    for n, imp in reg.importance.items():
        assert imp.shape == params[n].shape
        assert bool((imp >= 0).all())
        assert torch.equal(reg.anchors[n], params[n].detach())
    assert sum(float(imp.sum()) for imp in reg.importance.values()) > 0
    assert reg.tasks_seen == 1


# ---------------------------------------------------------------- hand computations


def test_ewc_fisher_matches_hand_computation_on_linear_model():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    batches = [(torch.randn(4, 3), torch.randn(4, 2)) for _ in range(3)]
    ewc = EWC(strength=2.0, loss_fn=nn.functional.mse_loss)
    fisher = ewc.fisher(model, batches)

    w, b = model.weight.detach().double(), model.bias.detach().double()
    fw, fb = torch.zeros_like(w), torch.zeros_like(b)
    for x, y in batches:
        x, y = x.double(), y.double()
        r = x @ w.T + b - y  # mse = sum(r^2) / (N * 2)
        scale = 2.0 / r.numel()
        fw += (scale * r.T @ x) ** 2
        fb += (scale * r.sum(0)) ** 2
    torch.testing.assert_close(fisher["weight"].double(), fw / 3)
    torch.testing.assert_close(fisher["bias"].double(), fb / 3)

    ewc.end_task(model, batches)
    with torch.no_grad():
        model.weight.add_(0.1)
    expected = 0.5 * 2.0 * float((fisher["weight"] * 0.01).sum())
    assert ewc.penalty(model).item() == pytest.approx(expected, rel=1e-5)
    # the model's own .grad fields are left alone
    assert model.weight.grad is None


def test_ewc_sums_fishers_over_tasks():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    a = [(torch.randn(4, 3), torch.randn(4, 1))]
    b = [(torch.randn(4, 3), torch.randn(4, 1))]
    ewc = EWC(loss_fn=nn.functional.mse_loss)
    fa, fb = ewc.fisher(model, a), ewc.fisher(model, b)
    ewc.end_task(model, a)
    ewc.end_task(model, b)
    torch.testing.assert_close(ewc.importance["weight"], fa["weight"] + fb["weight"])
    assert ewc.tasks_seen == 2


def test_si_importance_of_one_parameter_quadratic_matches_formula():
    a, c, lr, xi, theta0, steps = 3.0, 2.0, 0.05, 0.1, -1.0, 6
    model = nn.Module()
    model.theta = nn.Parameter(torch.tensor([theta0], dtype=torch.float64))
    si = SI(strength=1.0, damping=xi)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        ((0.5 * a * (model.theta - c) ** 2).sum() + si.penalty(model)).backward()
        si.before_step(model)
        opt.step()
        si.after_step(model)

    theta, w = theta0, 0.0
    for _ in range(steps):
        g = a * (theta - c)
        new = theta - lr * g
        w += -g * (new - theta)
        theta = new
    assert si.path_integral["theta"].item() == pytest.approx(w, rel=1e-12)
    si.end_task(model)
    omega = w / ((theta - theta0) ** 2 + xi)
    assert si.importance["theta"].item() == pytest.approx(omega, rel=1e-12)
    assert si.anchors["theta"].item() == pytest.approx(theta, rel=1e-12)
    assert si.path_integral == {}  # restarts for the next task


def test_mas_importance_matches_hand_computation_on_linear_model():
    torch.manual_seed(0)
    model = nn.Linear(3, 2, bias=False)
    x = torch.randn(5, 3)
    mas = MAS()
    imp = mas.importance_on(model, [x[:2], (x[2:], torch.zeros(3, 2))])
    w = model.weight.detach()
    # d ||W x||^2 / dW = 2 (W x) x^T, per image
    expected = sum((2 * torch.outer(w @ xn, xn)).abs() for xn in x) / 5
    torch.testing.assert_close(imp["weight"], expected)


# ---------------------------------------------------------------- LwF


def test_lwf_target_comes_from_a_frozen_copy():
    model = tiny_nafnet()
    lwf = LwF(strength=1.0)
    lwf.end_task(model)
    x = images(2, 1, 8, 8, seed=3)
    before = lwf.target(x)
    assert torch.equal(before, model(x).detach())
    assert lwf.teacher is not model
    assert all(not p.requires_grad for p in lwf.teacher.parameters())
    assert not lwf.teacher.training
    perturb(model, size=0.2)
    assert not torch.equal(model(x), before)
    assert torch.equal(lwf.target(x), before)
    loss = lwf.penalty(model, x)
    loss.backward()
    assert all(p.grad is None for p in lwf.teacher.parameters())
    with torch.no_grad():
        expected = float((model(x) - before).abs().mean())
    assert loss.item() == pytest.approx(expected, rel=1e-6)


# ---------------------------------------------------------------- the pull toward the anchors


def _distance(model: nn.Module, anchors: dict[str, torch.Tensor]) -> float:
    return sum(float((p.detach() - anchors[n]).pow(2).sum()) for n, p in model.named_parameters())


# Strengths keep ``lr * strength * max(importance)`` below 1 so plain SGD stays stable.
@pytest.mark.parametrize(
    ("kind", "strength"), [("ewc", 200.0), ("si", 1.0), ("mas", 0.1), ("lwf", 1.0)]
)
def test_training_with_regularizer_stays_closer_to_previous_task(kind, strength):
    model = tiny_nafnet()
    first = task_batches(0, 0.5)
    train(model, None, first, steps=6, lr=0.05)
    reg = {"ewc": EWC, "si": SI, "mas": MAS, "lwf": LwF}[kind](strength)
    if kind == "si":  # SI needs the path of the first task
        train(model, reg, first, steps=6, lr=0.05)
    reg.end_task(model, first)
    anchors = {n: p.detach().clone() for n, p in model.named_parameters()}
    probe = images(2, 1, 8, 8, seed=9)
    old_out = model(probe).detach()

    second = task_batches(1, 1.5)
    free, held = copy.deepcopy(model), copy.deepcopy(model)
    train(free, None, second, steps=10, lr=0.05)
    train(held, reg, second, steps=10, lr=0.05)

    with torch.no_grad():
        if kind == "lwf":  # LwF holds the outputs, not the parameters
            out_free = float((free(probe) - old_out).abs().mean())
            out_held = float((held(probe) - old_out).abs().mean())
            assert out_held < 0.5 * out_free
        else:
            # the importance-weighted distance (the penalty) at least halves, and the
            # plain distance to the anchors shrinks too
            assert float(reg.penalty(held)) < 0.5 * float(reg.penalty(free))
            assert _distance(held, anchors) < _distance(free, anchors)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("cls", [EWC, SI, MAS, LwF])
def test_negative_strength_is_refused(cls):
    with pytest.raises(InvalidInputError, match=r"`strength` must be a finite number >= 0; got -1"):
        cls(-1.0)
    with pytest.raises(InvalidInputError, match=r"`strength` .* got nan"):
        cls(float("nan"))
    with pytest.raises(TypeError, match=r"`strength` must be a real number; got '1'"):
        cls("1")


def test_si_damping_must_be_positive():
    with pytest.raises(InvalidInputError, match=r"`damping` must be > 0 \(it divides\); got 0"):
        SI(damping=0.0)
    with pytest.raises(InvalidInputError, match=r"`damping` must be a finite number >= 0"):
        SI(damping=-1e-3)


@pytest.mark.parametrize("cls", [EWC, MAS])
def test_empty_batches_are_refused(cls):
    with pytest.raises(InvalidInputError, match=r"`batches` must yield at least one"):
        cls().end_task(nn.Linear(2, 1), [])
    with pytest.raises(InvalidInputError, match=r"`batches` must be given .* got None"):
        cls().end_task(nn.Linear(2, 1))


def test_ewc_needs_input_target_pairs():
    with pytest.raises(TypeError, match=r"EWC needs batches of \(inputs, targets\); got Tensor"):
        EWC().end_task(nn.Linear(2, 1), [torch.ones(1, 2)])


def test_model_must_be_a_module_with_the_same_parameters():
    ewc = EWC(loss_fn=nn.functional.mse_loss)
    with pytest.raises(TypeError, match=r"`model` must be a torch.nn.Module; got str"):
        ewc.penalty("net")
    ewc.end_task(nn.Linear(2, 1), [(torch.ones(1, 2), torch.ones(1, 1))])
    with pytest.raises(InvalidInputError, match=r"reshaped \['bias', 'weight'\]"):
        ewc.penalty(nn.Linear(3, 2))


def test_si_steps_out_of_order_are_refused():
    model = nn.Linear(2, 1)
    si = SI()
    with pytest.raises(TaskStateError, match=r"SI.after_step needs a matching SI.before_step"):
        si.after_step(model)
    with pytest.raises(TaskStateError, match=r"SI.end_task needs at least one before_step"):
        si.end_task(model)
    si.before_step(model)
    with pytest.raises(TaskStateError, match=r"between before_step and after_step"):
        si.end_task(model)


def test_lwf_errors():
    lwf = LwF()
    with pytest.raises(TaskStateError, match=r"LwF.target needs a finished task"):
        lwf.target(torch.ones(1, 1))
    lwf.end_task(nn.Linear(2, 1))
    with pytest.raises(TypeError, match=r"`inputs` must be the batch's input tensor"):
        lwf.penalty(nn.Linear(2, 1))
    with pytest.raises(InvalidInputError, match=r"`outputs` must have the shape"):
        lwf.penalty(nn.Linear(2, 1), torch.ones(3, 2), torch.ones(3, 5))


def test_si_path_integral_uses_the_task_gradient_not_the_penalty():
    """Second task of the quadratic: w integrates -g_task * Delta, the penalty only moves theta."""
    a, lr, xi, strength = 3.0, 0.05, 0.1, 0.7
    model = nn.Module()
    model.theta = nn.Parameter(torch.tensor([-1.0], dtype=torch.float64))
    si = SI(strength=strength, damping=xi)
    opt = torch.optim.SGD(model.parameters(), lr=lr)

    def run(c: float, steps: int) -> None:
        for _ in range(steps):
            opt.zero_grad()
            ((0.5 * a * (model.theta - c) ** 2).sum() + si.penalty(model)).backward()
            si.before_step(model)
            opt.step()
            si.after_step(model)

    run(2.0, 5)
    si.end_task(model)
    anchor, omega = si.anchors["theta"].item(), si.importance["theta"].item()
    run(-3.0, 5)

    theta, w = anchor, 0.0
    for _ in range(5):
        g_task = a * (theta + 3.0)
        new = theta - lr * (g_task + 2 * strength * omega * (theta - anchor))
        w += -g_task * (new - theta)
        theta = new
    assert model.theta.item() == pytest.approx(theta, rel=1e-12)
    assert si.path_integral["theta"].item() == pytest.approx(w, rel=1e-12)
