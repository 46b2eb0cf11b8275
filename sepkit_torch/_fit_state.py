"""The state :func:`~sepkit_torch.training.fit` keeps beside the model: the weight
average of a recipe that has one, and the check of a saved state it resumes from."""

from __future__ import annotations

import contextlib

import torch

from sepkit_torch._errors import InvalidInputError

#: What a training's state (given to ``on_epoch``, taken back by ``resume``) holds.
STATE_KEYS = frozenset(
    {"step", "epoch", "loss", "weights", "optimizer", "scheduler", "average", "averaged"}
    | {"scores", "best", "best_step"}
)


def check_resume(resume, params, total, average) -> None:
    """`resume` is a state of a training of these parameters, this length and recipe."""
    if not isinstance(resume, dict) or not STATE_KEYS <= set(resume):
        got = sorted(resume) if isinstance(resume, dict) else type(resume).__name__
        raise InvalidInputError(f"`resume` must be a state given to `on_epoch`; got {got}")
    shapes = [tuple(w.shape) for w in resume["weights"]]
    if shapes != [tuple(p.shape) for p in params]:
        raise InvalidInputError(
            "`resume` holds weights of another set of parameters "
            f"({len(shapes)} tensors; these are {len(params)})"
        )
    if not 0 <= resume["step"] <= total:
        raise InvalidInputError(
            f"`resume` stopped at step {resume['step']}, past this training's {total} steps"
        )
    if (resume["average"] is None) != (average is None):
        raise InvalidInputError(
            "`resume` comes from a recipe "
            + ("without" if resume["average"] is None else "with")
            + " a weight average; this one differs"
        )


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
