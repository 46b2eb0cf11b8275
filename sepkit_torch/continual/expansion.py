"""SCGE, stage-wise channel group expansion: one isolated, trainable branch per task.

The paper appends ``G_s^ori`` new groups to every stage for each task, expands the
stage-head (entrance) convolution to produce them and adds a task-specific stage-tail
(exit) convolution that reads only them. Because the GResBlocks never mix groups and the
new head/tail rows only touch the new groups, that expanded stage is block-diagonal: it
is exactly a separate copy of the stage per task. :class:`ECMRNet` stores it that way, as
one :class:`~sepkit_torch.models.Branch` (six stages and the skip scales) per task,
sharing the frozen stem, bottom and out. A compound task also gets an SKMM
(:mod:`sepkit_torch.continual.mining`) that mines its parts' branches.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from sepkit_torch._errors import InvalidInputError, TaskStateError, UnknownTaskError
from sepkit_torch.continual.mining import build_miner, mine, skmm_config
from sepkit_torch.models.backbone import (
    Backbone,
    BackboneConfig,
    Branch,
    check_images,
    pad_to_multiple,
)
from sepkit_torch.models.skmm import SKMMConfig

__all__ = ["ECMRNet", "TaskInfo"]

_STATE_FORMAT = 2  # 2: tasks carry "skmm"; a format-1 checkpoint (no SKMM yet) still loads
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
    skmm : SKMMConfig or None, default None
        The SKMM of a compound task; None for a single task and for a compound task
        built with ``skmm=None`` (its path is then its own branch only).
    kept : tuple of 6 tuples of int, or None
        After pruning: per stage, the indices (among the branch's original groups) of
        the groups kept; None for an unpruned branch.
    """

    name: str
    parts: tuple[str, ...]
    groups: tuple[int, ...]
    skmm: SKMMConfig | None = None
    kept: tuple[tuple[int, ...], ...] | None = None

    @property
    def compound(self) -> bool:
        """True for a compound task (``parts`` not empty), with or without SKMM."""
        return bool(self.parts)

    @property
    def mines(self) -> bool:
        """True for a compound task whose path runs an SKMM over its parts' branches."""
        return self.skmm is not None


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
    ``add_task`` freezes the previous task's branch (and SKMM); only the newest task trains.

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
    miners : ModuleDict
        Compound task name -> its SKMM (:class:`~sepkit_torch.models.ReleasedSKMM` or
        :class:`~sepkit_torch.models.PaperSKMM`), for the compound tasks that mine.

    Notes
    -----
    The task list (names, parts, groups per stage, SKMM config) and the frozen/trainable
    state are the module's extra state (``state_dict()["_extra_state"]``, plain ints,
    strings and lists, loadable with ``torch.load(weights_only=True)``).
    ``load_state_dict`` rebuilds the branches and SKMMs to match the checkpoint (the
    backbone config must match; build an optimizer afterwards); :meth:`from_state_dict`
    builds the whole model from it.

    A compound task's path (``add_task(name, parts=...)``) runs its parts' branches
    without gradient and mines their outputs into its own branch's output with its SKMM,
    before ``out`` (:func:`sepkit_torch.continual.mining.mine`); with ``skmm=None`` it is
    its own branch only.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch import ECMRNet
    >>> model = ECMRNet.from_preset("tiny")
    >>> for name in ("C", "B"):
    ...     info = model.add_task(name)
    >>> model.add_task("CB", parts=["C", "B"]).skmm
    SKMMConfig(variant='released', mix_channels=32, rank=8)
    >>> model.task_names, model.trainable_task
    (('C', 'B', 'CB'), 'CB')
    >>> x = torch.rand(1, 1, 10, 13)
    >>> model(x, task="CB").shape
    torch.Size([1, 1, 10, 13])
    >>> torch.equal(model(x, task="C"), model(x))  # a new branch starts as the pretrained path
    True
    """

    def __init__(self, config: BackboneConfig | str):
        super().__init__()
        self.backbone = Backbone(config)
        self.config = self.backbone.config
        self.branches = nn.ModuleDict()
        self.miners = nn.ModuleDict()
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

    @staticmethod
    def is_state_dict(state_dict) -> bool:
        """True if `state_dict` is an ECMRNet's (it holds the model's extra state).

        Examples
        --------
        >>> from sepkit_torch import ECMRNet
        >>> ECMRNet.is_state_dict(ECMRNet.from_preset("tiny").state_dict())
        True
        >>> ECMRNet.is_state_dict({"conv.weight": None})
        False
        """
        return isinstance(state_dict, dict) and "_extra_state" in state_dict

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

        Before any task: the whole backbone. After: the newest task's branch and, for a
        compound task that mines, its SKMM.
        """
        if not self._tasks:
            return list(self.backbone.parameters())
        name = self._tasks[-1].name
        miner = list(self.miners[name].parameters()) if name in self.miners else []
        return list(self.branches[name].parameters()) + miner

    def _task_index(self, name) -> int:
        for i, t in enumerate(self._tasks):
            if t.name == name:
                return i
        raise UnknownTaskError(
            f"`task` must be one of the model's tasks {list(self.task_names)} "
            f"(or None for the pretrained path); got {name!r}"
        )

    # ------------------------------------------------------------- expansion
    def add_task(
        self,
        name: str,
        parts: Sequence[str] | None = None,
        *,
        skmm: SKMMConfig | str | None = "released",
    ) -> TaskInfo:
        """Add a task branch (SCGE): a trainable copy of the pretrained six stages.

        Freezes the backbone's stem, bottom and out (on the first call) and every
        earlier branch and SKMM. Build the optimizer again afterwards
        (:func:`sepkit_torch.make_optimizer`).

        Parameters
        ----------
        name : str
            Letters, digits and underscores, e.g. ``"C"`` or ``"CBN"``; new.
        parts : sequence of str, optional
            For a compound task: at least two distinct single-degradation tasks already
            added, whose branches its SKMM mines.
        skmm : {"released", "paper"}, SKMMConfig or None, default "released"
            The compound task's SKMM (:mod:`sepkit_torch.models.skmm`): the public code's
            variant, Eqs. 11-14 as printed, or explicit sizes; None for a compound task
            without mining (its own branch only, e.g. for an ablation). A new SKMM is
            randomly initialised (torch's global generator) and trains with the branch.
            Ignored for a single task (no `parts`).

        Returns
        -------
        TaskInfo

        Raises
        ------
        TaskStateError
            If `name` exists already, or a part has not been added yet.
        InvalidInputError
            For a malformed name, fewer than two parts, a repeated part, a part that is
            itself compound, or an unknown `skmm` variant.
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
        config = skmm_config(skmm) if parts else None

        if not self._tasks:
            _parameters_to_buffers(self.backbone.stages)
        branch = copy.deepcopy(self.backbone.stages)
        _buffers_to_parameters(branch, requires_grad=True)
        info = TaskInfo(name=name, parts=parts, groups=branch.groups, skmm=config)
        self.branches[name] = branch
        if config is not None:
            self.miners[name] = self._new_miner(info)
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
            if task.name in self.miners:
                self.miners[task.name].requires_grad_(task.name == self.trainable_task)

    def _new_miner(self, info: TaskInfo) -> nn.Module:
        return build_miner(
            info.skmm, self.config.base_width, len(info.parts), self.backbone.stem.weight
        )

    # --------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor, task: str | None = None) -> torch.Tensor:
        """Restore `x` (B, 1, H, W), any B, H, W >= 1, along `task`'s path.

        ``task=None`` is the pretrained reconstruction path. A compound task that mines
        also runs its parts' branches (without gradient) and its SKMM.
        """
        if task is None:
            return self.backbone.run(x, self.backbone.stages)
        info = self.task(task)
        branch = self.branches[info.name]
        if not info.mines:
            return self.backbone.run(x, branch)
        backbone = self.backbone
        check_images(x, self.config.in_channels)
        h, w = x.shape[-2:]
        features = backbone.stem(pad_to_multiple(x))
        parts = [self.branches[p] for p in info.parts]
        y = mine(features, branch, parts, backbone.bottom, self.miners[info.name])
        return backbone.out(y)[..., :h, :w]

    # ---------------------------------------------------------- checkpoints
    def get_extra_state(self) -> dict:
        return {
            "format": _STATE_FORMAT,
            "config": self.config.to_dict(),
            "tasks": [
                {
                    "name": t.name,
                    "parts": list(t.parts),
                    "groups": list(t.groups),
                    "skmm": None if t.skmm is None else t.skmm.to_dict(),
                    "kept": None if t.kept is None else [list(k) for k in t.kept],
                }
                for t in self._tasks
            ],
            "backbone_frozen": self.backbone_frozen,
            "trainable_task": self.trainable_task,
        }

    def set_extra_state(self, state) -> None:
        # Called by load_state_dict before the submodules load, so the branches and
        # SKMMs built here receive the checkpoint's tensors next.
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
        for name in list(self.miners):
            del self.miners[name]
        device, dtype = self.backbone.stem.weight.device, self.backbone.stem.weight.dtype
        for task in tasks:
            if task.groups == stages.groups:
                branch = copy.deepcopy(stages)
                _buffers_to_parameters(branch, requires_grad=True)
            else:  # a pruned branch: its tensors come from the checkpoint
                with torch.device(device):
                    branch = Branch(self.config, task.groups).to(dtype)
            self.branches[task.name] = branch
            if task.mines:  # its tensors come from the checkpoint
                self.miners[task.name] = self._new_miner(task)
        self._tasks = list(tasks)
        self._apply_freezing()

    def replace_branch(self, name: str, branch: Branch, kept) -> TaskInfo:
        """Put a pruned `branch` in place of task `name`'s (see :func:`~sepkit_torch.prune`).

        `kept` lists, per stage, the indices of the groups kept among the branch's
        current ones; they are composed with earlier prunings and stored in the task.
        Rebuild the optimizer afterwards.
        """
        info = self.task(name)
        if branch.groups != tuple(len(k) for k in kept):
            raise InvalidInputError(
                f"`kept` must list {branch.groups} groups per stage (the branch's); "
                f"got {tuple(len(k) for k in kept)}"
            )
        before = info.kept or tuple(tuple(range(g)) for g in info.groups)
        composed = tuple(tuple(before[s][i] for i in k) for s, k in enumerate(kept))
        device = next(self.branches[name].parameters()).device
        self.branches[name] = branch.to(device)
        new = dataclasses.replace(info, groups=branch.groups, kept=composed)
        self._tasks[self._task_index(name)] = new
        self._apply_freezing()
        return new

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
    if not isinstance(state, dict) or state.get("format") not in (1, _STATE_FORMAT):
        raise InvalidInputError(
            f"ECMRNet extra state must be a dict with format 1 or {_STATE_FORMAT}; got {state!r}"
        )
    config = BackboneConfig.from_dict(state["config"])
    tasks = [
        TaskInfo(
            name=t["name"],
            parts=tuple(t["parts"]),
            groups=tuple(t["groups"]),
            # format 1 predates SKMM: its compound tasks ran their own branch only
            skmm=None if t.get("skmm") is None else SKMMConfig.from_dict(t["skmm"]),
            kept=None if t.get("kept") is None else tuple(tuple(k) for k in t["kept"]),
        )
        for t in state["tasks"]
    ]
    for t in tasks:
        if t.mines and not t.compound:
            raise InvalidInputError(
                f"ECMRNet extra state is inconsistent: single task {t.name!r} has an SKMM "
                f"({t.skmm}); only a compound task (with parts) can"
            )
    expected = (bool(tasks), tasks[-1].name if tasks else None)
    if (state["backbone_frozen"], state["trainable_task"]) != expected:
        raise InvalidInputError(
            "ECMRNet extra state is inconsistent: with tasks "
            f"{[t.name for t in tasks]} expected backbone_frozen={expected[0]} and "
            f"trainable_task={expected[1]!r}; got {state['backbone_frozen']} and "
            f"{state['trainable_task']!r}"
        )
    return config, tasks
