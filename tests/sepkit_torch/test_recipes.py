"""The training recipes of `training.fit`: each part of the public code's recipe."""

import copy

import pytest
import torch

from sepkit_torch import ECMRNet
from sepkit_torch._fit_state import STATE_KEYS
from sepkit_torch.metrics import code_loss, l1_loss
from sepkit_torch.training import RECIPES, InvalidInputError, fit
from sepkit_torch.training import _schedule as schedule


def _model():
    torch.manual_seed(0)
    model = ECMRNet.from_preset("tiny")
    model.add_task("C")
    return model


def _batches(n=2, scale=0.5):
    g = torch.Generator().manual_seed(1)
    clean = torch.rand(4 * n, 1, 16, 16, generator=g)
    return [(scale * clean[i : i + 4], clean[i : i + 4]) for i in range(0, 4 * n, 4)]


def test_code_recipe_uses_adamw_with_its_weight_decay():
    result = fit(_model(), _batches(), lr=1e-3, steps=2, task="C", recipe="code")
    group = result.optimizer["param_groups"][0]
    assert group["weight_decay"] == 1e-5
    assert "decoupled_weight_decay" not in group or group["decoupled_weight_decay"]
    paper = fit(_model(), _batches(), lr=1e-3, steps=2, task="C")
    assert paper.optimizer["param_groups"][0]["weight_decay"] == 0


def test_code_recipe_warms_up_linearly_then_cosine_to_its_floor():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=1e-3)
    sched = schedule(opt, 1e-3, total=10, warmup=4, how=RECIPES["code"])
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(10):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(1e-5)  # lr / 100 at the start of the ramp
    assert lrs[:5] == sorted(lrs[:5]) and lrs[4] == pytest.approx(1e-3)
    assert lrs[4:] == sorted(lrs[4:], reverse=True)
    assert lrs[-1] == pytest.approx(1e-6)  # the public code's floor, not lr / 100
    paper = torch.optim.Adam([param], lr=1e-3)
    flat = schedule(paper, 1e-3, total=10, warmup=0, how=RECIPES["paper"])
    for _ in range(10):
        paper.step()
        flat.step()
    assert paper.param_groups[0]["lr"] == pytest.approx(1e-5)


def test_code_recipe_averages_the_weights_and_leaves_the_raw_ones_in_the_model():
    model = _model()
    params = model.trainable_parameters()
    expected = [p.detach().clone() for p in params]

    def follow(step, loss):
        for e, p in zip(expected, params, strict=True):
            e.mul_(0.999).add_(p.detach(), alpha=0.001)

    result = fit(model, _batches(), lr=1e-3, steps=5, task="C", recipe="code", on_step=follow)
    for e, a in zip(expected, result.averaged, strict=True):
        torch.testing.assert_close(a, e)
    raw = [p.detach().clone() for p in params]
    assert any(not torch.equal(r, a) for r, a in zip(raw, result.averaged, strict=True))
    result.use_averaged()
    assert all(torch.equal(p, a) for p, a in zip(params, result.averaged, strict=True))
    assert fit(_model(), _batches(), lr=1e-3, steps=1, task="C").averaged is None


def test_code_recipe_clips_the_gradient_norm():
    def grad_norm(recipe):
        model = _model()
        fit(model, _batches(scale=1000.0), lr=1e-3, steps=1, task="C", recipe=recipe, loss="paper")
        grads = [p.grad for p in model.trainable_parameters() if p.grad is not None]
        return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))

    assert grad_norm("paper") > 2.0  # large inputs make the raw gradient large
    assert grad_norm("code") <= 1.0 + 1e-5


def test_code_recipe_trains_on_the_public_loss():
    model = _model()
    before = copy.deepcopy(model)
    degraded, clean = _batches(1)[0]
    losses = []
    fit(
        model,
        [(degraded, clean)],
        lr=1e-3,
        steps=1,
        task="C",
        recipe="code",
        on_step=lambda s, v: losses.append(v),
    )
    with torch.no_grad():
        restored = before(degraded, task="C")
    assert losses[0] == pytest.approx(float(code_loss(restored, clean)), rel=1e-5)
    assert losses[0] != pytest.approx(float(l1_loss(restored, clean)), rel=1e-3)


def test_early_stopping_keeps_the_best_average_and_stops_after_the_patience():
    model = _model()
    scores = iter([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    seen = []

    def validate():
        seen.append([p.detach().clone() for p in model.trainable_parameters()])
        return next(scores)

    result = fit(
        model,
        _batches(),
        lr=1e-3,
        steps=20,
        task="C",
        recipe="code",
        validate=validate,
        validate_every=1,
    )
    assert result.stopped_early and result.steps == 4  # best at 1, then 3 worse
    assert result.best_step == 1 and [s for s, _ in result.scores] == [1, 2, 3, 4]
    # validation saw the average, the best one is kept, and the raw weights are back
    for a, s in zip(result.averaged, seen[0], strict=True):
        assert torch.equal(a, s)
    assert any(
        not torch.equal(p, s) for p, s in zip(model.trainable_parameters(), seen[-1], strict=True)
    )
    # the paper's recipe validates but never stops early
    again = fit(
        _model(),
        _batches(),
        lr=1e-3,
        steps=6,
        task="C",
        validate=iter([3.0, 2.0, 4.0, 5.0, 6.0, 7.0]).__next__,
        validate_every=1,
    )
    assert not again.stopped_early and again.steps == 6 and again.best_step == 2


def test_unknown_recipe_names_the_known_ones():
    with pytest.raises(InvalidInputError, match=r"`recipe` must be one of \['code', 'paper'\]"):
        fit(_model(), _batches(), lr=1e-3, steps=1, task="C", recipe="sgd")


def _shuffled(generator):
    clean = torch.rand(12, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    data = torch.utils.data.TensorDataset(0.5 * clean, clean)
    return torch.utils.data.DataLoader(data, batch_size=4, shuffle=True, generator=generator)


class _Stop(Exception):
    pass


def test_a_training_stopped_after_a_pass_resumes_to_the_same_weights():
    # the code recipe: warm-up, EMA, validation with early stopping, shuffled batches
    options = dict(lr=1e-3, steps=14, task="C", recipe="code", validate_every=2)
    full_model = _model()
    probe = _batches(1)[0]

    def validate(model):
        @torch.no_grad()
        def score():
            return float(l1_loss(model(probe[0], task="C"), probe[1]))

        return score

    full = fit(
        full_model,
        _shuffled(torch.Generator().manual_seed(3)),
        validate=validate(full_model),
        **options,
    )

    saved = {}
    model, g = _model(), torch.Generator().manual_seed(3)

    def stop_after_two_passes(state):
        saved.update(state=state, generator=g.get_state())
        if state["epoch"] == 2:
            raise _Stop

    with pytest.raises(_Stop):
        fit(
            model, _shuffled(g), validate=validate(model), on_epoch=stop_after_two_passes, **options
        )
    assert saved["state"]["step"] == 6
    model, g = _model(), torch.Generator()  # a new process: nothing but the saved state
    g.set_state(saved["generator"])
    ran = []
    resumed = fit(
        model,
        _shuffled(g),
        validate=validate(model),
        resume=saved["state"],
        on_step=lambda step, loss: ran.append(step),
        **options,
    )
    assert ran == list(range(7, 15))  # only the steps after the second pass
    assert resumed.steps == full.steps == 14 and resumed.scores == full.scores
    for a, b in zip(model.trainable_parameters(), full_model.trainable_parameters(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(resumed.averaged, full.averaged, strict=True):
        assert torch.equal(a, b)


def test_a_state_of_another_training_is_refused_by_name():
    saved = {}
    fit(_model(), _batches(), lr=1e-3, steps=5, task="C", recipe="code", on_epoch=saved.update)
    assert saved["step"] == 4 and set(saved) == STATE_KEYS  # what resume checks is all there is
    with pytest.raises(InvalidInputError, match="stopped at step 4, past this training's 3"):
        fit(_model(), _batches(), lr=1e-3, steps=3, task="C", recipe="code", resume=saved)
    with pytest.raises(InvalidInputError, match="from a recipe with a weight average"):
        fit(_model(), _batches(), lr=1e-3, steps=5, task="C", recipe="paper", resume=saved)
    with pytest.raises(InvalidInputError, match="must be a state given to `on_epoch`"):
        fit(_model(), _batches(), lr=1e-3, steps=5, task="C", resume={"step": 1})
