"""Regularisation-based continual learning for a plain ``nn.Module``: EWC, SI, MAS and LwF.

These are the baselines ECMRNet is compared with: one network (NAFNet in the paper) is
trained on task after task, and a penalty added to the task loss keeps it close to what
it learnt before. Every regulariser follows the same protocol, so a training loop can
hold any of them (or none)::

    reg = EWC(strength=100.0)
    for task in tasks:
        for inputs, targets in task.train_batches:
            optimizer.zero_grad()
            outputs = model(inputs)
            loss = task_loss(outputs, targets) + reg.penalty(model, inputs, outputs)
            loss.backward()
            reg.before_step(model)                    # SI reads the gradient here
            optimizer.step()
            reg.after_step(model)                     # SI integrates the step here
        reg.end_task(model, task.few_batches)         # consolidate: importance, anchors

Before the first :meth:`Regularizer.end_task` every penalty is a zero tensor, so the first
task is plain fine-tuning. The parameter penalties (EWC, SI, MAS) track the parameters
with ``requires_grad`` at the first call, by name; a model whose parameters later differ
in names or shapes is refused. Nothing here touches the optimizer or the model's
``.grad`` fields (gradients for the importances come from :func:`torch.autograd.grad`).

References
----------
EWC: Kirkpatrick et al., "Overcoming catastrophic forgetting in neural networks", PNAS 2017.
SI: Zenke, Poole and Ganguli, "Continual Learning Through Synaptic Intelligence", ICML 2017.
MAS: Aljundi et al., "Memory Aware Synapses: Learning what (not) to forget", ECCV 2018.
LwF: Li and Hoiem, "Learning without Forgetting", ECCV 2016 (here with an L1 distillation
loss on restored images instead of a softened cross-entropy on class scores).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from sepkit_torch._errors import InvalidInputError, TaskStateError
from sepkit_torch.metrics import l1_loss

__all__ = [
    "BASELINES",
    "DEFAULT_STRENGTH_GRIDS",
    "EWC",
    "MAS",
    "REGULARIZED",
    "SI",
    "LwF",
    "Regularizer",
    "make_regularizer",
]

Params = dict[str, torch.Tensor]


def _check_strength(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a real number; got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise InvalidInputError(f"`{name}` must be a finite number >= 0; got {value!r}")
    return value


def _check_model(model) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module; got {type(model).__name__}")
    return model


def _inputs_of(batch) -> torch.Tensor:
    """The input tensor of a batch given as a tensor or as an ``(inputs, targets, ...)`` pair."""
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            "each batch must be an input tensor or an (inputs, targets) pair of tensors; "
            f"got {type(x).__name__}"
        )
    return x


class Regularizer:
    """Protocol shared by the continual-learning regularisers (base class; no penalty).

    Parameters
    ----------
    strength : float, default 1.0
        Multiplies the penalty; must be finite and >= 0 (0 turns the regulariser off).

    Attributes
    ----------
    tasks_seen : int
        How many times :meth:`end_task` has consolidated a task.
    """

    def __init__(self, strength: float = 1.0):
        self.strength = _check_strength("strength", strength)
        self.tasks_seen = 0

    def penalty(
        self,
        model: nn.Module,
        inputs: torch.Tensor | None = None,
        outputs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The scalar term to add to the task loss (differentiable w.r.t. ``model``).

        `inputs` and `outputs` (the model's outputs on `inputs`) are used by LwF only;
        the parameter penalties ignore them.
        """
        raise NotImplementedError

    def before_step(self, model: nn.Module) -> None:
        """Call after ``(task loss + penalty).backward()`` and before ``optimizer.step()``."""

    def after_step(self, model: nn.Module) -> None:
        """Call right after ``optimizer.step()``."""

    def end_task(self, model: nn.Module, batches: Iterable | None = None) -> None:
        """Consolidate the task just trained: compute importances and set the anchors."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Everything the regulariser has learnt, as tensors and plain values (for a
        checkpoint); :meth:`load_state_dict` puts it back."""
        return {
            "kind": type(self).__name__,
            "strength": self.strength,
            "tasks_seen": self.tasks_seen,
        }

    def load_state_dict(self, state: dict, model: nn.Module | None = None) -> None:
        """Restore :meth:`state_dict` of a regulariser of the same class.

        `model` is the network it regularises (LwF rebuilds its teacher from it).
        """
        if not isinstance(state, dict) or state.get("kind") != type(self).__name__:
            got = state.get("kind") if isinstance(state, dict) else type(state).__name__
            raise InvalidInputError(
                f"`state` must be a {type(self).__name__}.state_dict(); got one of {got!r}"
            )
        self.strength = _check_strength("strength", state["strength"])
        self.tasks_seen = int(state["tasks_seen"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(strength={self.strength!r})"


class _ParameterPenalty(Regularizer):
    """``scale * strength * sum_i importance_i (theta_i - anchor_i)^2`` over named parameters.

    Importances of successive tasks are summed; the anchors are the parameters at the end
    of the latest task.
    """

    #: Constant factor in front of ``strength`` (1/2 for EWC, 1 for SI and MAS).
    _scale = 1.0

    def __init__(self, strength: float = 1.0):
        super().__init__(strength)
        self._names: dict[str, torch.Size] | None = None
        self._importance: Params = {}
        self._anchors: Params = {}

    @property
    def importance(self) -> Params:
        """Per-parameter importance, same names and shapes as the parameters (>= 0)."""
        return dict(self._importance)

    @property
    def anchors(self) -> Params:
        """The parameters after the latest consolidated task (detached copies)."""
        return dict(self._anchors)

    def _params(self, model: nn.Module) -> dict[str, nn.Parameter]:
        """The tracked parameters of `model`, checked against those seen first."""
        _check_model(model)
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        shapes = {n: p.shape for n, p in params.items()}
        if self._names is None:
            if not params:
                raise InvalidInputError(
                    "`model` must have at least one parameter with requires_grad; got none"
                )
            self._names = shapes
        elif shapes != self._names:
            missing = sorted(set(self._names) - set(shapes))
            extra = sorted(set(shapes) - set(self._names))
            changed = sorted(
                n for n in set(shapes) & set(self._names) if shapes[n] != self._names[n]
            )
            raise InvalidInputError(
                "`model` must have the trainable parameters it had when the regulariser "
                f"first saw it; missing {missing[:3]}, new {extra[:3]}, reshaped {changed[:3]}"
            )
        return params

    def _consolidate(self, model: nn.Module, new_importance: Params) -> None:
        params = self._params(model)
        for n, imp in new_importance.items():
            imp = imp.detach().clamp_min(0)
            old = self._importance.get(n)
            self._importance[n] = imp if old is None else old + imp
        self._anchors = {n: p.detach().clone() for n, p in params.items()}
        self.tasks_seen += 1

    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "names": None if self._names is None else {n: list(v) for n, v in self._names.items()},
            "importance": _cloned(self._importance),
            "anchors": _cloned(self._anchors),
        }

    def load_state_dict(self, state: dict, model: nn.Module | None = None) -> None:
        super().load_state_dict(state, model)
        names = state["names"]
        self._names = None if names is None else {n: torch.Size(v) for n, v in names.items()}
        self._importance = _cloned(state["importance"])
        self._anchors = _cloned(state["anchors"])

    def penalty(self, model, inputs=None, outputs=None) -> torch.Tensor:
        params = self._params(model)
        first = next(iter(params.values()))
        total = first.new_zeros(())
        if not self._anchors or self.strength == 0:
            return total
        for n, p in params.items():
            total = total + (self._importance[n] * (p - self._anchors[n]).pow(2)).sum()
        return (self._scale * self.strength) * total


class EWC(_ParameterPenalty):
    """Elastic weight consolidation with a diagonal empirical Fisher.

    Parameters
    ----------
    strength : float, default 100.0
        ``lambda`` of the penalty. A starting point for NAFNet with the L1 loss; choose it
        on a validation split.
    loss_fn : callable, default :func:`sepkit_torch.metrics.l1_loss`
        ``loss_fn(outputs, targets) -> scalar``, the task loss whose gradients give the
        Fisher.

    Notes
    -----
    At the end of task ``t``, over the ``B`` batches given to :meth:`end_task`,

    .. math:: F^{(t)}_i = \\frac{1}{B} \\sum_b \\Big(\\frac{\\partial L(f(x_b), y_b)}
              {\\partial \\theta_i}\\Big)^2

    (squared batch gradients of the task loss, the model in its current train/eval mode).
    Fishers of successive tasks are summed, ``F = sum_t F^(t)``, and the anchors are the
    parameters after the latest task, ``theta*``; the penalty is

    .. math:: \\frac{\\lambda}{2} \\sum_i F_i (\\theta_i - \\theta^*_i)^2 .

    (Summing the Fishers with one anchor is "online EWC" without decay; the original keeps
    one anchor per task.)

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from sepkit_torch.continual.regularizers import EWC
    >>> model = nn.Linear(2, 1)
    >>> batches = [(torch.ones(4, 2), torch.zeros(4, 1))]
    >>> ewc = EWC(strength=10.0, loss_fn=nn.functional.mse_loss)
    >>> ewc.end_task(model, batches)
    >>> ewc.penalty(model).item()
    0.0
    """

    _scale = 0.5

    def __init__(
        self,
        strength: float = 100.0,
        *,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = l1_loss,
    ):
        super().__init__(strength)
        if not callable(loss_fn):
            raise TypeError(
                f"`loss_fn` must be callable (outputs, targets) -> loss; got {loss_fn!r}"
            )
        self.loss_fn = loss_fn

    def fisher(self, model: nn.Module, batches: Iterable) -> Params:
        """Mean squared gradient of the task loss over `batches` of ``(inputs, targets)``."""
        params = self._params(model)
        names, tensors = list(params), list(params.values())
        fisher = {n: torch.zeros_like(p) for n, p in params.items()}
        count = 0
        for batch in batches:
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                raise TypeError(
                    "EWC needs batches of (inputs, targets); got "
                    f"{type(batch).__name__}"
                    + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
                )
            x, y = batch[0], batch[1]
            with torch.enable_grad():
                loss = self.loss_fn(model(x), y)
                grads = torch.autograd.grad(loss, tensors, allow_unused=True)
            for n, g in zip(names, grads, strict=True):
                if g is not None:
                    fisher[n] += g.detach().pow(2)
            count += 1
        if count == 0:
            raise InvalidInputError(
                "`batches` must yield at least one (inputs, targets) batch; got none"
            )
        return {n: f / count for n, f in fisher.items()}

    def end_task(self, model: nn.Module, batches: Iterable | None = None) -> None:
        """Add the Fisher of the task just trained (on `batches`) and anchor at `model`."""
        if batches is None:
            raise InvalidInputError("`batches` must be given to EWC.end_task; got None")
        self._consolidate(model, self.fisher(model, batches))


class SI(_ParameterPenalty):
    """Synaptic intelligence: importance from the path integral of the task gradient.

    Parameters
    ----------
    strength : float, default 1.0
        ``c`` of the penalty (Zenke et al. used 0.1 to 1); choose it on a validation split.
    damping : float, default 1e-3
        ``xi`` > 0, keeps the importance finite for parameters that barely moved.

    Notes
    -----
    During a task, for every optimizer step ``k``, with ``g_k`` the gradient of the task
    loss alone and ``Delta_k`` the step's parameter change (seen by :meth:`after_step`),

    .. math:: w_i \\mathrel{+}= -g_{k,i} \\, \\Delta_{k,i} .

    At :meth:`end_task`, with ``delta_i = theta_i(end) - theta_i(start of the task)``,

    .. math:: \\Omega_i \\mathrel{+}= \\frac{\\max(w_i, 0)}{\\delta_i^2 + \\xi}

    and ``w`` restarts at 0. A negative ``w_i`` (steps that raised the task loss on
    balance, e.g. from momentum overshoot) is clipped to 0 so the penalty stays a
    non-negative quadratic. The penalty is ``c sum_i Omega_i (theta_i - theta*_i)^2``.
    Parameters whose ``.grad`` is ``None`` at a step contribute nothing for it.

    :meth:`before_step` reads ``.grad`` after ``(task loss + penalty).backward()`` and
    subtracts the penalty's own gradient, ``2 c Omega_i (theta_i - theta*_i)``, so ``g``
    is the task gradient as in Zenke et al. This assumes the loss that was backpropagated
    held this regulariser's penalty exactly once (the protocol of the module docstring).
    """

    def __init__(self, strength: float = 1.0, *, damping: float = 1e-3):
        super().__init__(strength)
        self.damping = _check_strength("damping", damping)
        if self.damping == 0:
            raise InvalidInputError(f"`damping` must be > 0 (it divides); got {damping!r}")
        self._path: Params = {}
        self._start: Params = {}
        self._pending: tuple[Params, Params] | None = None

    def state_dict(self) -> dict:
        if self._pending is not None:
            raise TaskStateError("SI.state_dict called between before_step and after_step")
        return {
            **super().state_dict(),
            "damping": self.damping,
            "path": _cloned(self._path),
            "start": _cloned(self._start),
        }

    def load_state_dict(self, state: dict, model: nn.Module | None = None) -> None:
        super().load_state_dict(state, model)
        self.damping = _check_strength("damping", state["damping"])
        self._path, self._start = _cloned(state["path"]), _cloned(state["start"])
        self._pending = None

    @property
    def path_integral(self) -> Params:
        """The running ``w`` of the current task."""
        return dict(self._path)

    def _begin_task_if_needed(self, params: dict[str, nn.Parameter]) -> None:
        if not self._start:
            self._start = {n: p.detach().clone() for n, p in params.items()}
            self._path = {n: torch.zeros_like(p) for n, p in params.items()}

    def before_step(self, model: nn.Module) -> None:
        """Record the parameters and the task-loss gradients before the step.

        The task gradient is ``.grad`` minus the gradient of this regulariser's penalty.
        """
        params = self._params(model)
        self._begin_task_if_needed(params)
        theta = {n: p.detach().clone() for n, p in params.items()}
        grads = {n: p.grad.detach().clone() for n, p in params.items() if p.grad is not None}
        if self._anchors and self.strength:
            for n, g in grads.items():
                g -= 2 * self.strength * self._importance[n] * (theta[n] - self._anchors[n])
        self._pending = (theta, grads)

    def after_step(self, model: nn.Module) -> None:
        """Add ``-g * Delta theta`` of the step just taken to the path integral."""
        if self._pending is None:
            raise TaskStateError(
                "SI.after_step needs a matching SI.before_step (called after the task "
                "loss's backward and before optimizer.step()); got none"
            )
        params = self._params(model)
        theta, grads = self._pending
        self._pending = None
        for n, g in grads.items():
            self._path[n] -= g * (params[n].detach() - theta[n])

    def end_task(self, model: nn.Module, batches: Iterable | None = None) -> None:
        """Turn the task's path integral into importance and anchor at `model`.

        `batches` is not used (SI needs no extra pass over data).
        """
        params = self._params(model)
        if not self._start:
            raise TaskStateError(
                "SI.end_task needs at least one before_step/after_step during the task; got none"
            )
        if self._pending is not None:
            raise TaskStateError("SI.end_task called between before_step and after_step")
        omega = {
            n: self._path[n].clamp_min(0) / ((p.detach() - self._start[n]).pow(2) + self.damping)
            for n, p in params.items()
        }
        self._consolidate(model, omega)
        self._start, self._path = {}, {}


class MAS(_ParameterPenalty):
    """Memory aware synapses: importance from the sensitivity of the output norm.

    Parameters
    ----------
    strength : float, default 1.0
        ``lambda`` of the penalty (Aljundi et al. used 1); choose it on a validation split.

    Notes
    -----
    Unsupervised: over the ``N`` images of the batches given to :meth:`end_task` (targets,
    if any, are ignored), one gradient per image,

    .. math:: \\Omega^{(t)}_i = \\frac{1}{N} \\sum_n \\Big| \\frac{\\partial \\,
              \\lVert f(x_n) \\rVert_2^2}{\\partial \\theta_i} \\Big|

    with the squared L2 norm over every output element of the image (so its scale grows
    with the image size; ``strength`` absorbs that). Importances of successive tasks are
    summed; the penalty is ``lambda sum_i Omega_i (theta_i - theta*_i)^2``.
    """

    def importance_on(self, model: nn.Module, batches: Iterable) -> Params:
        """Mean absolute per-image gradient of ``||f(x)||_2^2`` over `batches`."""
        params = self._params(model)
        names, tensors = list(params), list(params.values())
        total = {n: torch.zeros_like(p) for n, p in params.items()}
        count = 0
        for batch in batches:
            x = _inputs_of(batch)
            for k in range(x.shape[0]):
                with torch.enable_grad():
                    out = model(x[k : k + 1])
                    grads = torch.autograd.grad(out.pow(2).sum(), tensors, allow_unused=True)
                for n, g in zip(names, grads, strict=True):
                    if g is not None:
                        total[n] += g.detach().abs()
                count += 1
        if count == 0:
            raise InvalidInputError("`batches` must yield at least one input image; got none")
        return {n: t / count for n, t in total.items()}

    def end_task(self, model: nn.Module, batches: Iterable | None = None) -> None:
        """Add the importance measured on `batches` (inputs of the task) and anchor."""
        if batches is None:
            raise InvalidInputError("`batches` must be given to MAS.end_task; got None")
        self._consolidate(model, self.importance_on(model, batches))


class LwF(Regularizer):
    """Learning without forgetting: L1 distillation to a frozen copy of the previous model.

    Parameters
    ----------
    strength : float, default 1.0
        Weight of the distillation term; choose it on a validation split.

    Notes
    -----
    :meth:`end_task` stores ``teacher = deepcopy(model)`` in eval mode with
    ``requires_grad = False`` on every parameter. While training the next task, the
    penalty on the new task's `inputs` is

    .. math:: \\lambda \\, \\operatorname{mean} | f_\\theta(x) - f_{teacher}(x) |

    where the teacher's outputs are computed without gradient. Each :meth:`end_task`
    replaces the teacher with the model just trained (which was itself distilled from the
    earlier ones).
    """

    def __init__(self, strength: float = 1.0):
        super().__init__(strength)
        self.teacher: nn.Module | None = None

    def target(self, inputs: torch.Tensor) -> torch.Tensor:
        """The frozen previous model's outputs on `inputs` (no gradient)."""
        if self.teacher is None:
            raise TaskStateError("LwF.target needs a finished task (call end_task first)")
        with torch.no_grad():
            return self.teacher(inputs)

    def penalty(self, model, inputs=None, outputs=None) -> torch.Tensor:
        _check_model(model)
        if self.teacher is None or self.strength == 0:
            first = next(model.parameters(), None)
            return torch.zeros(()) if first is None else first.new_zeros(())
        if not isinstance(inputs, torch.Tensor):
            raise TypeError(
                "`inputs` must be the batch's input tensor for LwF.penalty; got "
                f"{type(inputs).__name__}"
            )
        if outputs is None:
            outputs = model(inputs)
        target = self.target(inputs)
        if outputs.shape != target.shape:
            raise InvalidInputError(
                "`outputs` must have the shape of the frozen model's outputs; got "
                f"{tuple(outputs.shape)} and {tuple(target.shape)}"
            )
        return self.strength * F.l1_loss(outputs, target)

    def end_task(self, model: nn.Module, batches: Iterable | None = None) -> None:
        """Freeze a deep copy of `model` as the teacher (`batches` is not used)."""
        self.teacher = _frozen_copy(model)
        self.tasks_seen += 1

    def state_dict(self) -> dict:
        teacher = None if self.teacher is None else _cloned(self.teacher.state_dict())
        return {**super().state_dict(), "teacher": teacher}

    def load_state_dict(self, state: dict, model: nn.Module | None = None) -> None:
        """Restore the teacher's weights into a frozen copy of `model` (same architecture)."""
        super().load_state_dict(state, model)
        if state["teacher"] is None:
            self.teacher = None
            return
        if model is None:
            raise InvalidInputError(
                "`model` must be given to LwF.load_state_dict (its architecture holds the "
                "teacher's weights); got None"
            )
        teacher = _frozen_copy(model)
        teacher.load_state_dict(state["teacher"])
        self.teacher = teacher


def _frozen_copy(model: nn.Module) -> nn.Module:
    teacher = copy.deepcopy(_check_model(model)).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def _cloned(tensors: Params) -> Params:
    """Detached copies: a saved state must not alias the live tensors."""
    return {n: t.detach().clone() for n, t in tensors.items()}


#: The baselines these algorithms serve (the pipeline's strategies of the same names).
BASELINES = ("finetune", "ewc", "si", "mas", "lwf", "joint")

#: The strategies with a regulariser, and its class.
REGULARIZED: dict[str, type[Regularizer]] = {"ewc": EWC, "si": SI, "mas": MAS, "lwf": LwF}

#: Strengths tried on the validation split when none is given (decades around each
#: method's usual value for an L1-trained restorer; the pick is reported, and one at the
#: edge of its grid is flagged in the report).
DEFAULT_STRENGTH_GRIDS: dict[str, tuple[float, ...]] = {
    "ewc": (10.0, 100.0, 1000.0),
    "si": (0.1, 1.0, 10.0),
    "mas": (0.0001, 0.001, 0.01, 0.1),
    "lwf": (0.01, 0.1, 1.0),
}


def make_regularizer(method: str, strength: float) -> Regularizer | None:
    """The regulariser of `method` at `strength` (None for ``finetune``/``joint``)."""
    if method not in BASELINES:
        raise InvalidInputError(
            f"`method` must be one of the baselines {list(BASELINES)}; got {method!r}"
        )
    cls = REGULARIZED.get(method)
    return None if cls is None else cls(strength)
