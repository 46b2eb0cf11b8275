"""SCGE, stage-wise channel group expansion: one isolated, trainable branch per task.

The paper appends ``G_s^ori`` new groups to every stage for each task, expands the
stage-head (entrance) convolution to produce them and adds a task-specific stage-tail
(exit) convolution that reads only them. Because the GResBlocks never mix groups and the
new head/tail rows only touch the new groups, that expanded stage is block-diagonal: it
is exactly a separate copy of the stage per task. :class:`ECMRNet` stores it that way, as
one :class:`~sepkit_torch.models.Branch` (six stages and the skip scales) per task,
sharing the frozen stem, bottom and out.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from sepkit_torch._errors import InvalidInputError, TaskStateError, UnknownTaskError
from sepkit_torch.models.backbone import Backbone, BackboneConfig, Branch

__all__ = ["ECMRNet", "TaskInfo"]

_STATE_FORMAT = 1
_TASK_NAME = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True)
class TaskInfo:
    """One task of an :class:`ECMRNet` (read-only).

    Attributes
    ----------
    name : str
    parts : tuple of str
        The earlier single-degradation tasks a compound task mines (SKMM); ``()`` for a
        single-degradation task.
    groups : tuple of 6 int
        Channel groups of the task's branch per stage ``e1 .. d3`` (fewer after pruning).
    """

    name: str
    parts: tuple[str, ...]
    groups: tuple[int, ...]

    @property
    def compound(self) -> bool:
        """True for a task that mines earlier tasks (``parts`` not empty)."""
        return bool(self.parts)


def _parameters_to_buffers(module: nn.Module) -> None:
    """Turn every parameter of `module` (recursively) into a persistent buffer, same name."""
    for m in module.modules():
        for name, p in list(m._parameters.items()):
            del m._parameters[name]
            m.register_buffer(name, p.detach())


def _buffers_to_parameters(module: nn.Module, requires_grad: bool) -> None:
    """Inverse of :func:`_parameters_to_buffers` (a Branch holds no other buffers)."""
    for m in module.modules():
        for name, b in list(m._buffers.items()):
            del m._buffers[name]
            m.register_parameter(name, nn.Parameter(b, requires_grad=requires_grad))


class ECMRNet(nn.Module):
    """The continual ECMRNet: a pretrained backbone plus one SCGE branch per task.

    Life cycle: build it (:meth:`from_preset`), pretrain the backbone on clean-to-clean
    reconstruction (``model(x)``, everything trainable), then :meth:`add_task` once per
    degradation. The first ``add_task`` freezes stem, bottom and out for good and keeps
    the pretrained stages as buffers: they initialise every later task and run the
    ``task=None`` path, but are not parameters (so not in ``total_params``). Each
    ``add_task`` freezes the previous task's branch; only the newest branch trains.

    Parameters
    ----------
    config : BackboneConfig or str
        Backbone sizes, or a preset name (``"paper"``, ``"tiny"``).

    Attributes
    ----------
    config : BackboneConfig
    backbone : Backbone
        Shared ``stem``, ``bottom``, ``out`` and the pretrained ``stages``.
    branches : ModuleDict
        Task name -> :class:`~sepkit_torch.models.Branch`, in the order added.

    Notes
    -----
    The task list (names, parts, groups per stage) and the frozen/trainable state are
    the module's extra state (``state_dict()["_extra_state"]``, plain ints, strings and
    lists, loadable with ``torch.load(weights_only=True)``). ``load_state_dict`` rebuilds
    the branches to match the checkpoint (the backbone config must match; build an
    optimizer afterwards); :meth:`from_state_dict` builds the whole model from it.

    Until SKMM exists (issue 7), a compound task's path is its own branch only; its
    ``parts`` are checked and stored.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch import ECMRNet
    >>> model = ECMRNet.from_preset("tiny")
    >>> for name in ("C", "B"):
    ...     info = model.add_task(name)
    >>> model.add_task("CB", parts=["C", "B"])
    TaskInfo(name='CB', parts=('C', 'B'), groups=(4, 8, 32, 32, 8, 4))
    >>> model.task_names, model.trainable_task
    (('C', 'B', 'CB'), 'CB')
    >>> x = torch.rand(1, 1, 10, 13)
    >>> model(x, task="CB").shape
    torch.Size([1, 1, 10, 13])
    >>> torch.equal(model(x, task="CB"), model(x))  # a new branch starts as the pretrained path
    True
    """

    def __init__(self, config: BackboneConfig | str):
        super().__init__()
        self.backbone = Backbone(config)
        self.config = self.backbone.config
        self.branches = nn.ModuleDict()
        self._tasks: list[TaskInfo] = []

    @classmethod
    def from_preset(cls, name: str) -> ECMRNet:
        """A fresh (unpretrained, task-less) model of the preset `name`: "paper" or "tiny"."""
        return cls(BackboneConfig.from_preset(name))

    @classmethod
    def from_state_dict(cls, state_dict, *, strict: bool = True) -> ECMRNet:
        """Build a model with the config and tasks stored in `state_dict` and load it.

        Examples
        --------
        >>> from sepkit_torch import ECMRNet
        >>> model = ECMRNet.from_preset("tiny")
        >>> _ = model.add_task("N")
        >>> ECMRNet.from_state_dict(model.state_dict()).task_names
        ('N',)
        """
        state = _extra_state_of(state_dict)
        config = BackboneConfig.from_dict(state["config"])
        device = state_dict["backbone.stem.weight"].device
        with torch.device(device):
            model = cls(config)
        model.load_state_dict(state_dict, strict=strict)
        return model

    # ----------------------------------------------------------------- state
    @property
    def tasks(self) -> tuple[TaskInfo, ...]:
        """Every task in the order added."""
        return tuple(self._tasks)

    @property
    def task_names(self) -> tuple[str, ...]:
        """Task names in the order added."""
        return tuple(t.name for t in self._tasks)

    @property
    def backbone_frozen(self) -> bool:
        """True once a task exists (stem, bottom, out and the pretrained stages are fixed)."""
        return bool(self._tasks)

    @property
    def trainable_task(self) -> str | None:
        """The task whose branch trains (the newest); None while pretraining the backbone."""
        return self._tasks[-1].name if self._tasks else None

    def task(self, name: str) -> TaskInfo:
        """The :class:`TaskInfo` of `name` (:class:`UnknownTaskError` if there is none)."""
        return self._tasks[self._task_index(name)]

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Exactly the parameters the current state trains.

        Before any task: the whole backbone. After: the newest task's branch only.
        """
        if not self._tasks:
            return list(self.backbone.parameters())
        return list(self.branches[self._tasks[-1].name].parameters())

    def _task_index(self, name) -> int:
        for i, t in enumerate(self._tasks):
            if t.name == name:
                return i
        raise UnknownTaskError(
            f"`task` must be one of the model's tasks {list(self.task_names)} "
            f"(or None for the pretrained path); got {name!r}"
        )

    # ------------------------------------------------------------- expansion
    def add_task(self, name: str, parts: Sequence[str] | None = None) -> TaskInfo:
        """Add a task branch (SCGE): a trainable copy of the pretrained six stages.

        Freezes the backbone's stem, bottom and out (on the first call) and every
        earlier branch. Build the optimizer again afterwards
        (:func:`sepkit_torch.make_optimizer`).

        Parameters
        ----------
        name : str
            Letters, digits and underscores, e.g. ``"C"`` or ``"CBN"``; new.
        parts : sequence of str, optional
            For a compound task: at least two distinct single-degradation tasks already
            added, whose branches its SKMM will mine (SKMM itself: issue 7).

        Returns
        -------
        TaskInfo

        Raises
        ------
        TaskStateError
            If `name` exists already, or a part has not been added yet.
        InvalidInputError
            For a malformed name, fewer than two parts, a repeated part, or a part that
            is itself compound.
        """
        if not isinstance(name, str) or not _TASK_NAME.fullmatch(name):
            raise InvalidInputError(
                f"`name` must be a non-empty string of letters, digits and underscores; "
                f"got {name!r}"
            )
        if name in self.task_names:
            raise TaskStateError(
                f"task {name!r} was added already; the model's tasks are {list(self.task_names)}"
            )
        if hasattr(self.branches, name):
            raise InvalidInputError(
                f"`name` {name!r} is reserved (an attribute of nn.ModuleDict); choose another"
            )
        parts = self._check_parts(name, parts)

        if not self._tasks:
            _parameters_to_buffers(self.backbone.stages)
        branch = copy.deepcopy(self.backbone.stages)
        _buffers_to_parameters(branch, requires_grad=True)
        info = TaskInfo(name=name, parts=parts, groups=branch.groups)
        self.branches[name] = branch
        self._tasks.append(info)
        self._apply_freezing()
        return info

    def _check_parts(self, name: str, parts) -> tuple[str, ...]:
        if parts is None:
            return ()
        if isinstance(parts, str) or not isinstance(parts, Sequence):
            raise TypeError(
                f"`parts` must be a list or tuple of task names, e.g. ['C', 'B']; got {parts!r}"
            )
        parts = tuple(parts)
        single = [t.name for t in self._tasks if not t.compound]
        if len(parts) < 2 or len(set(parts)) != len(parts):
            raise InvalidInputError(
                f"`parts` of compound task {name!r} must be at least two distinct tasks "
                f"from {single}; got {list(parts)}"
            )
        missing = [p for p in parts if p not in self.task_names]
        if missing:
            raise TaskStateError(
                f"`parts` of compound task {name!r} must be tasks added before it; "
                f"{missing} not added yet (the model's tasks are {list(self.task_names)})"
            )
        compound = [p for p in parts if self.task(p).compound]
        if compound:
            raise InvalidInputError(
                f"`parts` of compound task {name!r} must be single-degradation tasks "
                f"{single}; got compound {compound}"
            )
        return parts

    def _apply_freezing(self) -> None:
        """Set every requires_grad flag from the task state."""
        frozen = self.backbone_frozen
        for module in (self.backbone.stem, self.backbone.bottom, self.backbone.out):
            module.requires_grad_(not frozen)
        self.backbone.stages.requires_grad_(not frozen)  # no-op once they are buffers
        for task in self._tasks:
            self.branches[task.name].requires_grad_(task.name == self.trainable_task)

    # --------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor, task: str | None = None) -> torch.Tensor:
        """Restore `x` (B, 1, H, W), any B, H, W >= 1, along `task`'s path.

        ``task=None`` is the pretrained reconstruction path.
        """
        branch = self.backbone.stages if task is None else self.branches[self.task(task).name]
        return self.backbone.run(x, branch)

    # ---------------------------------------------------------- checkpoints
    def get_extra_state(self) -> dict:
        return {
            "format": _STATE_FORMAT,
            "config": self.config.to_dict(),
            "tasks": [
                {"name": t.name, "parts": list(t.parts), "groups": list(t.groups)}
                for t in self._tasks
            ],
            "backbone_frozen": self.backbone_frozen,
            "trainable_task": self.trainable_task,
        }

    def set_extra_state(self, state) -> None:
        # Called by load_state_dict before the submodules load, so the branches built
        # here receive the checkpoint's tensors next.
        config, tasks = _parse_state(state)
        if config != self.config:
            raise InvalidInputError(
                f"the checkpoint's backbone config {config} differs from this model's "
                f"{self.config}; build the model with ECMRNet.from_state_dict"
            )
        if tasks == self._tasks:
            self._apply_freezing()
            return
        stages = self.backbone.stages
        if tasks and not self._tasks:
            _parameters_to_buffers(stages)
        elif self._tasks and not tasks:
            _buffers_to_parameters(stages, requires_grad=True)
        for name in list(self.branches):
            del self.branches[name]
        device, dtype = self.backbone.stem.weight.device, self.backbone.stem.weight.dtype
        for task in tasks:
            if task.groups == stages.groups:
                branch = copy.deepcopy(stages)
                _buffers_to_parameters(branch, requires_grad=True)
            else:  # a pruned branch: its tensors come from the checkpoint
                with torch.device(device):
                    branch = Branch(self.config, task.groups).to(dtype)
            self.branches[task.name] = branch
        self._tasks = list(tasks)
        self._apply_freezing()

    def extra_repr(self) -> str:
        return f"tasks={list(self.task_names)}, trainable_task={self.trainable_task!r}"


def _extra_state_of(state_dict) -> dict:
    try:
        return state_dict["_extra_state"]
    except (KeyError, TypeError):
        raise InvalidInputError(
            "`state_dict` must be an ECMRNet state_dict with an '_extra_state' entry; "
            f"got {type(state_dict).__name__} without one"
        ) from None


def _parse_state(state) -> tuple[BackboneConfig, list[TaskInfo]]:
    if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
        raise InvalidInputError(
            f"ECMRNet extra state must be a dict with format {_STATE_FORMAT}; got {state!r}"
        )
    config = BackboneConfig.from_dict(state["config"])
    tasks = [
        TaskInfo(name=t["name"], parts=tuple(t["parts"]), groups=tuple(t["groups"]))
        for t in state["tasks"]
    ]
    expected = (bool(tasks), tasks[-1].name if tasks else None)
    if (state["backbone_frozen"], state["trainable_task"]) != expected:
        raise InvalidInputError(
            "ECMRNet extra state is inconsistent: with tasks "
            f"{[t.name for t in tasks]} expected backbone_frozen={expected[0]} and "
            f"trainable_task={expected[1]!r}; got {state['backbone_frozen']} and "
            f"{state['trainable_task']!r}"
        )
    return config, tasks
