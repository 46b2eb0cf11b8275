"""The run's configuration: :class:`PipelineConfig`, the presets, and their validation.

Every allowed value comes from the module that owns it (pruning methods, similarity
kinds, SKMM variants, model and NAFNet presets, losses, speed switches).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sepkit_torch._errors import ConfigError, InvalidInputError
from sepkit_torch.continual.pruning import CRITERIA as SEP_CRITERIA
from sepkit_torch.continual.pruning import DEFAULT_RHO, SIMILARITIES, check_selection
from sepkit_torch.continual.pruning import METHODS as SEP_METHODS
from sepkit_torch.continual.pruning import TIES as SEP_TIES
from sepkit_torch.continual.recognition import RECOGNIZER_MODES
from sepkit_torch.data import DEGRADATION_PRESETS, PAPER_TASKS, SCENE_STYLES, parse_task
from sepkit_torch.metrics import LOSSES
from sepkit_torch.models.backbone import MODEL_PRESETS
from sepkit_torch.models.nafnet import NAFNET_PRESETS
from sepkit_torch.models.skmm import SKMM_VARIANTS
from sepkit_torch.pipeline.strategies import STRATEGIES
from sepkit_torch.speed import AMP_MODES, parse_grouped_conv
from sepkit_torch.training import OPTIMIZER_IMPLS, RECIPES

__all__ = ["RUN_PRESETS", "ConfigError", "PipelineConfig", "check_config", "check_processes"]


# the data module's default scene style: a run of a folder's images keeps it
_DEFAULT_STYLE = SCENE_STYLES[0]


@dataclass(frozen=True)
class PipelineConfig:
    """Everything a run depends on (read-only); saved with the run as ``config.json``.

    Sizes are in epochs over the training set: ``train_length`` procedural frames per
    epoch (or every image of a folder). A frame gives ``repeat`` random crops of
    ``crop_size``, or, with a ``stride``, every window of a sliding ``crop_size`` window;
    frames are degraded whole, then cut. Procedural frames are ``frame_size`` (empty: the
    crop size, one item per frame). SEP's pool is ``sep_pool`` whole degraded frames.

    SEP keeps the groups represented in at least ``sep_rho`` of the pool, in every stage
    (the paper's rule). ``sep_budget`` (a share in (0, 1)) instead removes that share of
    each path's stage parameters, the expensive stages first (this project's allocation,
    :func:`~sepkit_torch.continual.pruning.allocate_budget`); ``sep_compensate`` refits
    the pruned path's exit convolutions on the pool by least squares
    (:func:`~sepkit_torch.continual.pruning.compensate_exits`) before fine-tuning
    (``docs/pruning.md``, "A SEP that wins: a budget, and refitted exits").

    The baselines' settings: ``baseline`` is the NAFNet preset; ``strength`` the
    regulariser's strength (None: the best of ``strength_grid``, or of the method's
    default grid, by average PSNR on a validation split after training the first
    ``tune_tasks`` tasks for ``tune_epochs`` epochs each); ``importance_batches`` training
    batches feed EWC's Fisher and MAS's importance at the end of each task.
    """

    preset: str = "demo"
    method: str = "ecmrnet"
    model: str = "tiny"
    tasks: tuple[str, ...] = PAPER_TASKS
    data: str | None = None
    scene_style: str = _DEFAULT_STYLE
    degradation_preset: str = "ecmrnet"
    seed: int = 0
    crop_size: int = 48
    frame_size: tuple[int, ...] = ()
    stride: int = 0
    train_length: int = 640
    test_length: int = 6
    test_size: int = 64
    repeat: int = 1
    batch_size: int = 8
    pretrain_epochs: int = 10
    epochs: int = 4
    finetune_epochs: int = 1
    lr: float = 2e-3
    recipe: str = "paper"
    loss: str | None = None
    prune: bool = True
    sep_pool: int = 16
    sep_rho: float = DEFAULT_RHO
    sep_method: str = "sweep"
    sep_tie: str = "random"
    sep_criterion: str = "published"
    sep_similarity: str = "pearson"
    sep_budget: float | None = None
    sep_compensate: bool = False
    skmm: str = "released"
    device: str = "cpu"
    out: str = "runs/demo"
    examples: str | None = None
    examples_task: str = "CBN"
    baseline: str = "demo"
    strength: float | None = None
    strength_grid: tuple[float, ...] = ()
    tune_tasks: int = 2
    tune_epochs: int = 2
    importance_batches: int = 4
    # speed switches (docs/performance.md); all but `amp` leave the results unchanged
    amp: str = "none"
    channels_last: bool = False
    compile: bool = False
    optimizer_impl: str = "default"
    grouped_conv: str = "native"
    workers: int = 0
    pin_memory: bool = False
    # the degradation recognizer (blind restoration): "context" trains each letter's head
    # around the letters learned before it, "pairs" on its task's pairs only, "mixtures"
    # around every other letter of the tasks (its own strength mild beside them) and
    # calibrates its threshold on validation frames, "none" skips it
    recognizer: str = "context"
    recognizer_epochs: int = 3

    def __post_init__(self):
        for name in _PATHS:  # a pathlib.Path is as good as its text
            if isinstance(getattr(self, name), os.PathLike):
                object.__setattr__(self, name, os.fspath(getattr(self, name)))
        for name, kind in _FIELD_TYPES.items():
            value = getattr(self, name)
            if kind is tuple:
                item = _TUPLES[name]
                what = f"a list of {'strings' if item is str else 'numbers'}"
                if isinstance(value, str) or not isinstance(value, (list, tuple)):
                    raise ConfigError(f"`{name}` must be {what}; got {value!r}")
                if not all(_is_a(v, item) for v in value):
                    raise ConfigError(f"`{name}` must be {what}; got {value!r}")
                object.__setattr__(self, name, tuple(item(v) for v in value))
            elif value is None and name in _OPTIONAL:
                continue
            elif kind is float and _is_a(value, float):
                object.__setattr__(self, name, float(value))
            elif not _is_a(value, kind):
                raise ConfigError(
                    f"`{name}` must be {kind.__name__}; got {value!r} ({type(value).__name__})"
                )
        for name, (low, high) in _INT_RANGES.items():
            value = getattr(self, name)
            if value < low:
                raise ConfigError(f"`{name}` must be >= {low}; got {value!r}")
            if value > high:
                raise ConfigError(f"`{name}` must be <= {high}; got {value!r}")
        for name, (low, high) in _REAL_RANGES.items():
            value = getattr(self, name)
            if not (math.isfinite(value) and low < value <= high):
                raise ConfigError(
                    f"`{name}` must be a number in ({low:g}, {high:g}]; got {value!r}"
                )
        for value in (self.strength, *self.strength_grid):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ConfigError(
                    f"`strength` and `strength_grid` must be finite and >= 0; got {value!r}"
                )
        if self.sep_budget is not None and not (
            math.isfinite(self.sep_budget) and 0 < self.sep_budget < 1
        ):
            raise ConfigError(
                f"`sep_budget` must be None or a share of the path's stage parameters in "
                f"(0, 1); got {self.sep_budget!r}"
            )
        for name, choices in _CHOICES.items():
            _choice(name, getattr(self, name), choices)
        for name in _PATHS:
            if getattr(self, name) is not None and not getattr(self, name).strip():
                raise ConfigError(f"`{name}` must name a folder; got {getattr(self, name)!r}")
        _check_sep(self)
        parse_grouped_conv(self.grouped_conv)
        if not _DEVICE.fullmatch(self.device):
            raise ConfigError(f"`device` must be 'cpu', 'cuda' or 'cuda:N'; got {self.device!r}")
        if self.frame_size and (len(self.frame_size) != 2 or min(self.frame_size) < self.crop_size):
            raise ConfigError(
                f"`frame_size` must be [height, width], each at least `crop_size` "
                f"{self.crop_size}; got {list(self.frame_size)}"
            )
        if self.frame_size and self.data is not None:
            raise ConfigError(
                "`frame_size` sets the size of procedural frames; a folder's frames are its "
                f"images (`data` is {self.data!r})"
            )
        if self.scene_style != _DEFAULT_STYLE and self.data is not None:
            raise ConfigError(
                f"`scene_style` {self.scene_style!r} chooses the generator of procedural "
                f"scenes; a folder's images are its own (`data` is {self.data!r}): leave it "
                f"{_DEFAULT_STYLE!r}"
            )
        if self.stride and self.repeat != 1:
            raise ConfigError(
                f"`stride` cuts every window of a frame: `repeat` must be 1; got {self.repeat}"
            )
        if self.stride and self.data is None and not self.frame_size:
            raise ConfigError("`stride` cuts windows from procedural frames: set `frame_size`")
        regularized = sorted(m for m, s in STRATEGIES.items() if s.regularized)
        if (self.strength is not None or self.strength_grid) and self.method not in regularized:
            raise ConfigError(
                f"`strength` and `strength_grid` apply to the methods {regularized}; "
                f"`method` is {self.method!r}"
            )
        if not self.tasks:
            raise ConfigError("`tasks` must name at least one task; got []")
        _check_sequence(self.tasks)
        if self.examples is not None and self.examples_task not in self.tasks:
            raise ConfigError(
                f"`examples_task` must be one of `tasks` {list(self.tasks)} to score the "
                f"examples; got {self.examples_task!r}"
            )

    @classmethod
    def from_preset(cls, name: str, **overrides) -> PipelineConfig:
        """The preset `name` (see :data:`RUN_PRESETS`) with `overrides` applied."""
        if name not in RUN_PRESETS:
            raise ConfigError(f"`preset` must be one of {sorted(RUN_PRESETS)}; got {name!r}")
        unknown = sorted(set(overrides) - set(_FIELD_TYPES))
        if unknown:
            raise ConfigError(
                f"unknown setting(s) {unknown}; known settings are {sorted(_FIELD_TYPES)}"
            )
        return cls(**{**RUN_PRESETS[name], **overrides, "preset": name})

    @classmethod
    def from_toml(cls, path, **overrides) -> PipelineConfig:
        """Read a TOML file of config keys (``preset = "..."`` picks the base values)."""
        if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
            raise ConfigError(f"`config` must be the path of a TOML file; got {path!r}")
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except IsADirectoryError:
            raise ConfigError(f"`config` must be a TOML file; {str(path)!r} is a folder") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"`config` {str(path)!r} cannot be read: {err}") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"`config` {str(path)!r} is not valid TOML: {err}") from None
        unknown = sorted(set(data) - set(_FIELD_TYPES))
        if unknown:
            raise ConfigError(
                f"`{path}` has unknown key(s) {unknown}; known keys are {sorted(_FIELD_TYPES)}"
            )
        preset = overrides.get("preset", data.get("preset", "demo"))
        return cls.from_preset(preset, **{**data, **overrides})

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for name in _TUPLES:
            data[name] = list(data[name])
        return data


# Fields of several values (and the type of each), and fields that may be None.
_TUPLES = {"tasks": str, "strength_grid": float, "frame_size": int}
_OPTIONAL = {
    "data": str,
    "examples": str,
    "strength": float,
    "loss": str,
    "sep_budget": float,
}
#: The settings that may be None (``--set KEY=none`` on the command line).
OPTIONAL_SETTINGS = tuple(_OPTIONAL)
_FIELD_TYPES = {
    f.name: tuple if f.name in _TUPLES else _OPTIONAL.get(f.name) or type(f.default)
    for f in dataclasses.fields(PipelineConfig)
}


# Integer settings: [smallest, largest] (a seed must fit torch.manual_seed).
_INT_RANGES = {
    **dict.fromkeys(
        (
            "crop_size",
            "train_length",
            "test_length",
            "test_size",
            "repeat",
            "batch_size",
            "sep_pool",
            "tune_tasks",
            "importance_batches",
        ),
        (1, 2**31),
    ),
    **dict.fromkeys(
        (
            "pretrain_epochs",
            "epochs",
            "finetune_epochs",
            "tune_epochs",
            "recognizer_epochs",
            "stride",
            "workers",
        ),
        (0, 2**31),
    ),
    "seed": (0, 2**63 - 1),
}
# Settings that name a folder: an empty name would be the current folder.
_PATHS = ("out", "data", "examples")
# Real settings: (low, high], low excluded.
_REAL_RANGES = {"lr": (0.0, 1.0), "sep_rho": (0.0, 1.0)}
# Settings with named values, each from the module that owns them.
_CHOICES = {
    "method": STRATEGIES,
    "model": tuple(MODEL_PRESETS),
    "baseline": tuple(NAFNET_PRESETS),
    "degradation_preset": DEGRADATION_PRESETS,
    "scene_style": SCENE_STYLES,
    "recipe": tuple(RECIPES),
    "loss": (*LOSSES, None),
    "sep_method": SEP_METHODS,
    "sep_tie": SEP_TIES,
    "sep_criterion": SEP_CRITERIA,
    "sep_similarity": SIMILARITIES,
    "skmm": (*SKMM_VARIANTS, "none"),
    "amp": AMP_MODES,
    "optimizer_impl": OPTIMIZER_IMPLS,
    "recognizer": RECOGNIZER_MODES,
}
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


def _is_a(value, kind) -> bool:
    """`value` is of `kind`, where an int counts as a float and a bool as neither."""
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


#: Named settings. ``demo``: the tiny model on procedural scenes, the whole seven-task
#: sequence in minutes on a CPU. ``cpu``: the tiny model trained for real footage in about
#: an hour on a CPU (the shipped default model). ``paper``: the paper's protocol (a GPU's
#: work). ``smoke``: a few steps of everything, for tests.
RUN_PRESETS: dict[str, dict[str, Any]] = {
    # three short fine-tuning epochs after SEP: with one, B and N ended 0.8 dB below
    # their unpruned scores (docs/pipeline.md, "The demo run")
    "demo": dict(finetune_epochs=3),
    # for real footage without a GPU: scenes that look like thermal footage, degraded whole
    # as frames of 256 x 320 with the ranges that hold both published HM-TIR severities,
    # six random 96-px windows each (960 per epoch). Noise is learned before blur, so that
    # the blur head of the recognizer is trained around noise; the recognizer's heads train
    # on mixtures with calibrated thresholds, which routes real CBN frames to CBN
    # (docs/restore.md).
    "cpu": dict(
        tasks=("C", "N", "B", "CB", "CN", "BN", "CBN"),
        recognizer="mixtures",
        scene_style="detailed",
        degradation_preset="hmtir",
        recipe="code",
        crop_size=96,
        frame_size=(256, 320),
        repeat=6,
        train_length=160,
        test_length=12,
        test_size=256,
        pretrain_epochs=5,
        epochs=9,
        finetune_epochs=3,
        out="runs/cpu",
    ),
    # one epoch: 1,200 frames of 512 x 640 (HM-TIR's training split), 12 windows each
    "paper": dict(
        model="paper",
        crop_size=256,
        frame_size=(512, 640),
        stride=128,
        train_length=1200,
        test_length=300,
        test_size=512,
        batch_size=24,
        pretrain_epochs=100,
        epochs=100,
        finetune_epochs=20,
        lr=1e-4,
        sep_pool=300,
        device="cuda",
        out="runs/paper",
        baseline="paper-baseline",
        tune_epochs=20,
    ),
    "smoke": dict(
        crop_size=16,
        train_length=4,
        test_length=2,
        test_size=24,
        batch_size=2,
        pretrain_epochs=1,
        epochs=1,
        finetune_epochs=1,
        sep_pool=2,
        recognizer_epochs=1,
        out="runs/smoke",
        baseline="tiny",
        tune_epochs=1,
        importance_batches=1,
    ),
}


def _choice(name, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f"`{name}` must be one of {list(choices)}; got {value!r}")


def _sep_settings(config, split: bool = False) -> None:
    """The prune step's own check (:func:`~sepkit_torch.continual.pruning.check_selection`)
    of the SEP settings, its errors naming them."""
    try:
        check_selection(
            rho=config.sep_rho,
            method=config.sep_method,
            tie=config.sep_tie,
            criterion=config.sep_criterion,
            budget=config.sep_budget,
            split=split,
        )
    except InvalidInputError as err:
        settings = ", ".join(
            f"{name}={getattr(config, name)!r}"
            for name in ("sep_rho", "sep_method", "sep_tie", "sep_criterion", "sep_budget")
        )
        where = " on a run of several processes (torchrun)" if split else ""
        raise ConfigError(
            f"the SEP settings {settings}{where} are refused by the prune step "
            f"(select_groups): {err}"
        ) from None


def _check_sep(config) -> None:
    """SEP's settings as the prune step will take them, checked before any training."""
    _sep_settings(config)
    if not config.prune:
        ignored = [n for n in ("sep_budget", "sep_compensate") if getattr(config, n)]
        if ignored:
            raise ConfigError(
                f"`prune` is false, so nothing is pruned: {', '.join(ignored)} would be "
                f"ignored; got {', '.join(f'{n}={getattr(config, n)!r}' for n in ignored)}"
            )


def check_config(config) -> None:
    """`config` is a :class:`PipelineConfig` (a dict of settings is not: build one with
    ``PipelineConfig.from_preset(name, **settings)``)."""
    if not isinstance(config, PipelineConfig):
        raise TypeError(
            f"`config` must be a PipelineConfig (PipelineConfig.from_preset, from_toml); "
            f"got {type(config).__name__}"
        )


def check_processes(config: PipelineConfig, world_size: int) -> None:
    """The settings a run of `world_size` processes (torchrun) cannot take, checked before
    its first stage: a method that runs in one process only, and SEP's budget and exit
    refit, which need the whole pool in one process.

    Examples
    --------
    >>> from sepkit_torch.pipeline.config import PipelineConfig, check_processes
    >>> config = PipelineConfig.from_preset("smoke", sep_budget=0.3)
    >>> check_processes(config, 1)
    >>> check_processes(config, 2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    sepkit_torch.ConfigError: the SEP settings ... sep_budget=0.3 on a run of several processes ...
    """
    if world_size <= 1:
        return
    if not STRATEGIES[config.method].distributed:
        raise ConfigError(
            f"`method` {config.method!r} runs in one process only; several processes "
            f"(torchrun, here {world_size}) need a method that runs in several"
        )
    if not config.prune:
        return
    _sep_settings(config, split=True)
    if config.sep_compensate:
        raise ConfigError(
            f"`sep_compensate` refits the exits on the whole pool in one process; a run of "
            f"{world_size} processes scores the pool in parts: set sep_compensate=false or "
            "run in one process"
        )


def _check_sequence(tasks) -> None:
    """Known degradations, no repeats, and every compound task after its parts."""
    seen: set[str] = set()
    for task in tasks:
        parts = parse_task(task)
        if task in seen:
            raise ConfigError(f"`tasks` lists {task!r} twice")
        missing = [p for p in parts if len(parts) > 1 and p not in seen]
        if missing:
            raise ConfigError(
                f"`tasks`: compound task {task!r} must come after its parts; "
                f"{', '.join(map(repr, missing))} not learned before it in {list(tasks)}"
            )
        seen.add(task)
