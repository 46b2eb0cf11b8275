"""The state :func:`~sepkit_torch.training.fit` keeps beside the model (the weight
average of a recipe that has one, the learning-rate schedule), and the checks of fit's
arguments, of a recipe, of a saved state it resumes from and of its validation scores,
all made before any step."""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Sized

import torch

from sepkit_torch._checks import check_callable, check_finite, check_int, check_real
from sepkit_torch._errors import InvalidInputError

#: What a training's state (given to ``on_epoch``, taken back by ``resume``) holds.
STATE_KEYS = frozenset(
    {"step", "epoch", "loss", "weights", "optimizer", "scheduler", "average", "averaged"}
    | {"scores", "best", "best_step"}
)


def check_fit(batches, epochs, steps, validate_every, warmup_steps, callbacks) -> tuple:
    """fit's counts and callbacks; returns ``(len(batches), total steps)``."""
    if not isinstance(batches, Sized):
        raise InvalidInputError(
            "`batches` must be a sized iterable (a list, a DataLoader) so that the schedule "
            f"knows an epoch's length; got {type(batches).__name__}"
        )
    per_epoch = len(batches)
    if per_epoch == 0:
        raise InvalidInputError(f"`batches` must hold at least one batch; got {batches!r:.80}")
    total = check_int("epochs", epochs, 0) * per_epoch
    if steps is not None:
        total = check_int("steps", steps, 0)
    if validate_every is not None:
        check_int("validate_every", validate_every, 1)
    if warmup_steps is not None:
        check_int("warmup_steps", warmup_steps, 0)
    for name, value in callbacks.items():
        check_callable(name, value)
    return per_epoch, total


def check_recipe(recipe, optimizers, losses) -> None:
    """A :class:`~sepkit_torch.training.Recipe`'s fields, each in its range."""
    if recipe.optimizer not in optimizers:
        raise InvalidInputError(
            f"`optimizer` must be one of {sorted(optimizers)}; got {recipe.optimizer!r}"
        )
    if recipe.loss not in losses:
        raise InvalidInputError(f"`loss` must be one of {sorted(losses)}; got {recipe.loss!r}")
    check_real("weight_decay", recipe.weight_decay, low=0)
    check_int("warmup_epochs", recipe.warmup_epochs, 0)
    if recipe.min_lr is not None:
        check_real("min_lr", recipe.min_lr, low=0, high=1, low_open=True)
    if recipe.ema_decay is not None:
        check_real("ema_decay", recipe.ema_decay, low=0, high=1, high_open=True)
    if recipe.clip_norm is not None:
        check_real("clip_norm", recipe.clip_norm, low=0, low_open=True)
    if recipe.patience is not None:
        check_int("patience", recipe.patience, 1)


def check_score(score, step: int) -> float:
    """A validation score: a finite real number (lower is better), or a one-element tensor."""
    value = score
    if isinstance(score, torch.Tensor) and score.numel() == 1 and score.is_floating_point():
        value = score.item()
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise InvalidInputError(
        f"`validate` must return a finite number (lower is better); got {score!r} at step {step}"
    )


def check_resume(resume, params, total, average) -> None:
    """`resume` is a state of a training of these parameters, this length and recipe."""
    if not isinstance(resume, dict) or not STATE_KEYS <= set(resume):
        got = sorted(resume) if isinstance(resume, dict) else type(resume).__name__
        raise InvalidInputError(f"`resume` must be a state given to `on_epoch`; got {got}")
    _check_tensors("resume['weights']", resume["weights"], params)
    step = resume["step"]
    check_int("resume['step']", step, 0)
    if step > total:
        raise InvalidInputError(
            f"`resume` stopped at step {step}, past this training's {total} steps"
        )
    check_int("resume['epoch']", resume["epoch"], 0)
    check_real("resume['loss']", resume["loss"])
    if (resume["average"] is None) != (average is None):
        raise InvalidInputError(
            "`resume` comes from a recipe "
            + ("without" if resume["average"] is None else "with")
            + " a weight average; this one differs"
        )
    for key in ("average", "averaged"):
        if resume[key] is not None:
            _check_tensors(f"resume[{key!r}]", resume[key], params)
    scores = resume["scores"]
    if not isinstance(scores, (list, tuple)) or not all(
        isinstance(s, (list, tuple)) and len(s) == 2 for s in scores
    ):
        raise InvalidInputError(
            f"`resume['scores']` must be a list of (step, score) pairs; got {scores!r:.80}"
        )
    for s, score in scores:
        check_int("resume['scores'] step", s, 1, step)
        check_real("resume['scores']", score)
    if resume["best"] != math.inf:  # inf: nothing validated yet
        check_real("resume['best']", resume["best"])
    if resume["best_step"] is not None:
        check_int("resume['best_step']", resume["best_step"], 1, step)


def schedule(optimizer, lr, total, warmup, how):
    """Linear warm-up from ``lr / 100`` over `warmup` steps, then cosine to the recipe's
    floor over the rest."""
    floor = lr / 100 if how.min_lr is None else min(how.min_lr, lr)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(1, total - warmup), eta_min=floor
    )
    if warmup == 0:
        return cosine
    ramp = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=warmup)
    return torch.optim.lr_scheduler.SequentialLR(
        optimizer, schedulers=[ramp, cosine], milestones=[warmup]
    )


def load_schedule(resume, optimizer, scheduler) -> None:
    """Load `resume`'s optimizer and schedule states, or name the one that does not fit."""
    for key, target in (("optimizer", optimizer), ("scheduler", scheduler)):
        try:
            target.load_state_dict(resume[key])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            raise InvalidInputError(
                f"`resume[{key!r}]` must be the state of this training's {key}; loading it "
                f"failed: {err}"
            ) from err


def non_finite_batch(batch) -> str | None:
    """Where a batch whose loss is not finite holds a NaN or infinite value, if it does: bad
    data, not a bad learning rate."""
    tensors = batch if isinstance(batch, (tuple, list)) else (batch,)
    for i, t in enumerate(tensors):
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            bad = ~torch.isfinite(t)
            if bool(bad.any()):
                index = tuple(int(j) for j in torch.nonzero(bad)[0])
                return f"the batch holds {t[index].item()} at index {index} of its tensor {i}"
    return None


def _check_tensors(name: str, tensors, params) -> None:
    """One finite tensor per parameter, of its shape."""
    if not isinstance(tensors, (list, tuple)) or not all(
        isinstance(t, torch.Tensor) for t in tensors
    ):
        raise InvalidInputError(f"`{name}` must be a list of tensors; got {tensors!r:.80}")
    shapes = [tuple(w.shape) for w in tensors]
    if shapes != [tuple(p.shape) for p in params]:
        raise InvalidInputError(
            f"`{name}` holds weights of another set of parameters "
            f"({len(shapes)} tensors; these are {len(params)})"
        )
    for i, t in enumerate(tensors):
        check_finite(name, t, where=f" (tensor {i})")


class Average:
    """An exponential moving average of `params` (as timm's ModelEmaV2: no warm-up)."""

    def __init__(self, params, decay: float):
        self.params = list(params)
        self.decay = decay
        self.values = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self.values, [p.detach() for p in self.params], 1.0 - self.decay)

    def copy(self) -> list[torch.Tensor]:
        return [v.clone() for v in self.values]

    @contextlib.contextmanager
    def swapped(self):
        """The average in the parameters for the duration; the raw weights after."""
        with torch.no_grad():
            raw = [p.detach().clone() for p in self.params]
            torch._foreach_copy_(self.params, self.values)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.params, raw)
