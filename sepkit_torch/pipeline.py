"""The ECMRNet task sequence: pretrain, then expand, train, SEP-prune, fine-tune, evaluate.

``run(config)`` does the whole loop and writes, under ``config.out``, a checkpoint after
every stage (atomically), the resolved configuration and the report (``report.json``,
``report.md`` and PNG plots). A killed run continues with ``resume=True`` from its last
completed stage and ends with the same report: every stage draws its randomness from
seeds derived from ``(config.seed, stage)``, never from state left by earlier stages.

``python -m sepkit_torch.pipeline`` is the command line (:mod:`sepkit_torch.cli`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomllib
import torch
from torch.utils.data import DataLoader

from sepkit_torch._errors import InvalidInputError, TaskStateError
from sepkit_torch.checkpoint import load_checkpoint, rng_state, save_checkpoint
from sepkit_torch.complexity import complexity
from sepkit_torch.continual.expansion import ECMRNet
from sepkit_torch.continual.pruning import PruneReport, prune, select_groups
from sepkit_torch.continual.recognition import (
    RECOGNIZER_MODES,
    is_recognizer_stage,
    load_recognizer,
    recognizer_stage,
)
from sepkit_torch.data import PAPER_TASKS, list_images, make_dataset, parse_task, read_image
from sepkit_torch.data.synthetic import mix_seed
from sepkit_torch.metrics import LOSSES, psnr, ssim
from sepkit_torch.models.backbone import STAGE_NAMES
from sepkit_torch.report import write_report

__all__ = ["PRESETS", "PipelineConfig", "Report", "run"]

log = logging.getLogger("sepkit_torch.pipeline")

CHECKPOINT = "checkpoint.pt"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class PipelineConfig:
    """Everything a run depends on (read-only); saved with the run as ``config.json``.

    Sizes are in epochs over the training set: ``train_length`` items per epoch for the
    procedural data (or every image ``repeat`` times for a folder).
    """

    preset: str = "demo"
    model: str = "tiny"
    tasks: tuple[str, ...] = PAPER_TASKS
    data: str | None = None
    degradation_preset: str = "ecmrnet"
    seed: int = 0
    crop_size: int = 48
    train_length: int = 640
    test_length: int = 6
    test_size: int = 64
    repeat: int = 1
    batch_size: int = 8
    pretrain_epochs: int = 10
    epochs: int = 4
    finetune_epochs: int = 1
    lr: float = 2e-3
    loss: str = "paper"
    prune: bool = True
    sep_pool: int = 16
    sep_rho: float = 0.1
    sep_method: str = "game"
    sep_similarity: str = "pearson"
    skmm: str = "released"
    device: str = "cpu"
    out: str = "runs/demo"
    examples: str | None = None
    examples_task: str = "CBN"
    # the degradation recognizer (blind restoration): "context" trains each letter's head
    # around the letters learned before it, "pairs" on its task's pairs only, "none" skips it
    recognizer: str = "context"
    recognizer_epochs: int = 3

    def __post_init__(self):
        for name, kind in _FIELD_TYPES.items():
            value = getattr(self, name)
            if kind is tuple:
                if isinstance(value, str) or not isinstance(value, (list, tuple)):
                    raise InvalidInputError(f"`{name}` must be a list of strings; got {value!r}")
                object.__setattr__(self, name, tuple(value))
                if not all(isinstance(v, str) for v in self.tasks):
                    raise InvalidInputError(f"`{name}` must be a list of strings; got {value!r}")
            elif kind is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
            elif value is None and name in ("data", "examples"):
                continue
            elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise InvalidInputError(
                    f"`{name}` must be {kind.__name__}; got {value!r} ({type(value).__name__})"
                )
        for name in (
            "crop_size",
            "train_length",
            "test_length",
            "test_size",
            "repeat",
            "batch_size",
            "sep_pool",
        ):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"`{name}` must be >= 1; got {getattr(self, name)!r}")
        for name in ("pretrain_epochs", "epochs", "finetune_epochs", "recognizer_epochs", "seed"):
            if getattr(self, name) < 0:
                raise InvalidInputError(f"`{name}` must be >= 0; got {getattr(self, name)!r}")
        _choice("loss", self.loss, tuple(LOSSES))
        _choice("sep_method", self.sep_method, ("game", "multilevel"))
        _choice("sep_similarity", self.sep_similarity, ("pearson", "cosine"))
        _choice("skmm", self.skmm, ("released", "paper", "none"))
        _choice("model", self.model, ("tiny", "paper"))
        _choice("recognizer", self.recognizer, RECOGNIZER_MODES)
        if not 0 < self.sep_rho <= 1:
            raise InvalidInputError(f"`sep_rho` must be in (0, 1]; got {self.sep_rho!r}")
        if not self.tasks:
            raise InvalidInputError("`tasks` must name at least one task; got []")
        _check_sequence(self.tasks)
        if self.examples is not None and self.examples_task not in self.tasks:
            raise InvalidInputError(
                f"`examples_task` must be one of `tasks` {list(self.tasks)} to score the "
                f"examples; got {self.examples_task!r}"
            )

    @classmethod
    def from_preset(cls, name: str, **overrides) -> PipelineConfig:
        """The preset `name` (see :data:`PRESETS`) with `overrides` applied."""
        if name not in PRESETS:
            raise InvalidInputError(f"`preset` must be one of {sorted(PRESETS)}; got {name!r}")
        unknown = sorted(set(overrides) - set(_FIELD_TYPES))
        if unknown:
            raise InvalidInputError(
                f"unknown setting(s) {unknown}; known settings are {sorted(_FIELD_TYPES)}"
            )
        return cls(**{**PRESETS[name], **overrides, "preset": name})

    @classmethod
    def from_toml(cls, path, **overrides) -> PipelineConfig:
        """Read a TOML file of config keys (``preset = "..."`` picks the base values)."""
        with open(path, "rb") as f:
            data = tomllib.load(f)
        unknown = sorted(set(data) - set(_FIELD_TYPES))
        if unknown:
            raise InvalidInputError(
                f"`{path}` has unknown key(s) {unknown}; known keys are {sorted(_FIELD_TYPES)}"
            )
        preset = overrides.get("preset", data.get("preset", "demo"))
        return cls.from_preset(preset, **{**data, **overrides})

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["tasks"] = list(self.tasks)
        return data


_FIELD_TYPES = {
    f.name: (tuple if f.name == "tasks" else type(f.default) if f.default is not None else str)
    for f in dataclasses.fields(PipelineConfig)
}

#: Named settings. ``demo``: the tiny model on procedural scenes, the whole seven-task
#: sequence in minutes on a CPU. ``paper``: the paper's protocol (a GPU's work).
#: ``smoke``: a few steps of everything, for tests.
PRESETS: dict[str, dict[str, Any]] = {
    "demo": {},
    "paper": dict(
        model="paper",
        crop_size=256,
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
    ),
}


@dataclass
class Report:
    """What a run measured; ``report.json`` holds the same as plain data."""

    config: dict[str, Any]
    tasks: list[str] = field(default_factory=list)
    # metrics[i][j]: task j evaluated after learning task i (j <= i), {"psnr", "ssim"}
    metrics: list[list[dict[str, float]]] = field(default_factory=list)
    degraded: dict[str, dict[str, float]] = field(default_factory=dict)
    pruning: dict[str, dict[str, Any]] = field(default_factory=dict)
    size: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    pretrain: dict[str, float] = field(default_factory=dict)
    # real degraded/clean pairs (config.examples): per image, degraded input, our
    # restoration and, where present, the peer's restoration (PSNR/SSIM)
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the degradation recognizer: letters, size, and its scores after each task
    recognizer: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        return cls(**data)

    def forgetting(self) -> dict[str, float]:
        """Per task: PSNR right after learning it minus PSNR at the end (0 = no forgetting)."""
        out = {}
        for j, name in enumerate(self.tasks):
            out[name] = self.metrics[j][j]["psnr"] - self.metrics[-1][j]["psnr"]
        return out


def run(
    config: PipelineConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    stop_after: str | None = None,
) -> Report:
    """Run (or continue) the task sequence of `config`; returns the report.

    Parameters
    ----------
    config : PipelineConfig
    resume : bool
        Continue the run in ``config.out`` from its last completed stage. Its saved
        configuration must equal `config`, except that `config` may append tasks.
    overwrite : bool
        Start afresh even if ``config.out`` holds a run.
    progress : bool
        Show progress bars (tqdm).
    stop_after : str, optional
        Stop after the stage of this name (e.g. ``"C:train"``): what a crash would do,
        for tests of resuming.
    """
    out = Path(config.out)
    _quiet_numba_threads()
    state = _start(config, out, resume=resume, overwrite=overwrite)
    device = _device(config.device)
    model, report, done = state["model"].to(device), state["report"], state["done"]
    stages = _stages(config)
    if stop_after is not None and stop_after not in stages:
        raise InvalidInputError(f"`stop_after` must be one of {stages}; got {stop_after!r}")
    runner = _Runner(config, model, report, device, progress)
    runner.recognizer = load_recognizer(state.get("recognizer"), device)
    # the restorer's stages keep their seeds whether or not the recognizer's are there
    seed_index = {s: i for i, s in enumerate(s for s in stages if not is_recognizer_stage(s))}
    for index, stage in enumerate(stages):
        if stage in done:
            continue
        log.info("stage %d/%d: %s", index + 1, len(stages), stage)
        start = time.perf_counter()
        torch.manual_seed(mix_seed(config.seed, seed_index.get(stage, index)))
        runner.do(stage)
        report.seconds[stage] = round(time.perf_counter() - start, 3)
        done.append(stage)
        save_checkpoint(
            out / CHECKPOINT,
            {
                "config": config.to_dict(),
                "done": list(done),
                "model": model.state_dict(),
                "report": report.to_dict(),
                "rng": rng_state(),
                # the last training stage's optimizer and schedule, for inspection: every
                # stage builds its own, so resuming at a stage boundary does not need them
                "optimizer": runner.optimizer_state,
                "recognizer": None if runner.recognizer is None else runner.recognizer.state_dict(),
            },
        )
        if stage == stop_after:
            log.info("stopping after %s as asked", stage)
            return report
    if config.examples is not None:
        report.examples = runner.real_examples(Path(config.examples))
    write_report(report, out, strip=runner.strip())
    log.info("report written to %s", out / "report.md")
    return report


# ----------------------------------------------------------------------------- stages


def _stages(config: PipelineConfig) -> list[str]:
    stages = ["pretrain"]
    for task in config.tasks:
        stages.append(f"{task}:train")
        if config.prune:
            stages.append(f"{task}:prune")
            if config.finetune_epochs > 0:
                stages.append(f"{task}:finetune")
        stages.append(f"{task}:evaluate")
        if config.recognizer != "none":
            stages.append(f"{task}:recognize")
    return stages


class _Runner:
    """Carries out one stage at a time on the model and the report."""

    def __init__(self, config, model, report, device, progress):
        self.config = config
        self.model = model
        self.report = report
        self.device = device
        self.progress = progress
        self.optimizer_state: dict[str, Any] | None = None
        self.recognizer = None

    def do(self, stage: str) -> None:
        if stage == "pretrain":
            self.report.pretrain = {"loss": self._fit(None, self.config.pretrain_epochs, stage)}
            return
        task, step = stage.rsplit(":", 1)
        if step == "train":
            self._add(task)
            self._fit(task, self.config.epochs, stage)
        elif step == "prune":
            self._prune(task, stage)
        elif step == "finetune":
            self._fit(task, self.config.finetune_epochs, stage)
            self.report.pruning[task]["after_finetuning"] = self._evaluate_one(task)
        elif step == "recognize":
            self.recognizer = recognizer_stage(
                self.config,
                self.recognizer,
                task,
                self.report,
                train_set=self._train_set(task, stage),
                test_sets={t: self._test_set(t) for t in self.report.tasks},
                seed=mix_seed(self.config.seed, _hash(stage), 2),
                device=self.device,
                progress=self.progress,
            )
        else:
            self._evaluate(task)

    def _add(self, task: str) -> None:
        parts = parse_task(task)
        if len(parts) > 1:
            skmm = None if self.config.skmm == "none" else self.config.skmm
            self.model.add_task(_model_name(task), parts=parts, skmm=skmm)
        else:
            self.model.add_task(_model_name(task))
        self.model.to(self.device)
        self.report.tasks.append(task)

    def _fit(self, task: str | None, epochs: int, stage: str) -> float:
        """Train the trainable part (the backbone, or `task`'s branch) for `epochs`."""
        cfg = self.config
        clean_only = task is None
        data = self._train_set(task or "C", stage)
        g = torch.Generator().manual_seed(mix_seed(cfg.seed, _hash(stage), 1))
        loader = DataLoader(
            data,
            batch_size=cfg.batch_size,
            shuffle=True,
            generator=g,
            drop_last=len(data) >= cfg.batch_size,
        )
        optimizer = torch.optim.Adam(self.model.trainable_parameters(), lr=cfg.lr)
        total = max(1, epochs * len(loader))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=total, eta_min=cfg.lr / 100
        )
        loss_fn = LOSSES[cfg.loss]
        name = None if task is None else _model_name(task)
        last = float("nan")
        bar = _bar(epochs * len(loader), stage, self.progress)
        self.model.train()
        for epoch in range(epochs):
            data.set_epoch(epoch)
            for degraded, clean in loader:
                degraded, clean = degraded.to(self.device), clean.to(self.device)
                source = clean if clean_only else degraded
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(self.model(source, task=name), clean)
                loss.backward()
                optimizer.step()
                scheduler.step()
                last = loss.item()
                bar.set_postfix(loss=f"{last:.4f}")
                bar.update()
        bar.close()
        self.optimizer_state = {
            "stage": stage,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
        }
        log.info("%s: final training loss %.4f", stage, last)
        return round(last, 6)

    def _prune(self, task: str, stage: str) -> None:
        cfg = self.config
        data = self._train_set(task, stage)
        n = min(cfg.sep_pool, len(data))
        pool = torch.stack([data[i][0] for i in range(n)]).to(self.device)
        name = _model_name(task)
        before = {**self._size(task), **self._evaluate_one(task)}
        groups_before = list(self.model.task(name).groups)
        selection = select_groups(
            self.model,
            name,
            pool,
            similarity_kind=cfg.sep_similarity,
            method=cfg.sep_method,
            rho=cfg.sep_rho,
            seed=cfg.seed,
        )
        prune(self.model, name, selection.keep)
        self.model.to(self.device)
        self.report.pruning[task] = PruneReport(
            task=task,
            groups_before=groups_before,
            groups_after=list(selection.kept_counts),
            pool=n,
            frequency={s: selection.frequency[s].round(4).tolist() for s in STAGE_NAMES},
            seconds={k: round(v, 4) for k, v in selection.seconds.items()},
            before=before,
            after_pruning={**self._size(task), **self._evaluate_one(task)},
        ).to_dict()
        log.info("%s: groups %s -> %s", stage, groups_before, list(selection.kept_counts))

    def _evaluate(self, task: str) -> None:
        self.report.metrics.append([self._evaluate_one(t) for t in self.report.tasks])
        self.report.degraded[task] = self._evaluate_one(task, identity=True)
        self.report.size.append(
            {
                "after": task,
                "total_params": sum(p.numel() for p in self.model.parameters()),
                "paths": {t: self._size(t) for t in self.report.tasks},
            }
        )

    def real_examples(self, folder: Path) -> dict[str, dict[str, Any]]:
        """Score the task ``examples_task`` on real pairs: ``folder/hard`` against
        ``folder/imgs`` (same file names), beside the peer's ``folder/enh_hard`` if any."""
        task = self.config.examples_task
        if task not in self.report.tasks:
            raise InvalidInputError(
                f"`examples_task` {task!r} is not one of the run's tasks {self.report.tasks}"
            )
        clean_dir, hard_dir, peer_dir = folder / "imgs", folder / "hard", folder / "enh_hard"
        if not (clean_dir.is_dir() and hard_dir.is_dir()):
            raise InvalidInputError(
                f"`examples` must hold the folders imgs/ and hard/; got {folder}"
            )
        out: dict[str, dict[str, Any]] = {}
        self.model.eval()
        with torch.no_grad():
            for path in list_images(hard_dir):
                clean = read_image(clean_dir / path.name).unsqueeze(0)
                hard = read_image(path).unsqueeze(0)
                ours = self.model(hard.to(self.device), task=_model_name(task)).clamp(0, 1)
                row = {"degraded": _scores(hard, clean), "ours": _scores(ours.cpu(), clean)}
                if (peer_dir / path.name).is_file():
                    row["peer"] = _scores(read_image(peer_dir / path.name).unsqueeze(0), clean)
                out[path.stem] = row
        self.model.train()
        return out

    def strip(self) -> list[tuple]:
        """The first test image of every task: degraded, restored, clean."""
        rows = []
        self.model.eval()
        with torch.no_grad():
            for task in self.report.tasks:
                degraded, clean = self._test_set(task)[0]
                restored = self.model(
                    degraded.unsqueeze(0).to(self.device), task=_model_name(task)
                ).clamp(0, 1)[0]
                rows.append((task, degraded, restored.cpu(), clean))
        self.model.train()
        return rows

    # -- helpers
    def _train_set(self, task: str, stage: str):
        cfg = self.config
        return make_dataset(
            cfg.data,
            task,
            split="train",
            crop_size=cfg.crop_size,
            preset=cfg.degradation_preset,
            seed=mix_seed(cfg.seed, _hash(stage)),
            **({"length": cfg.train_length} if cfg.data is None else {"repeat": cfg.repeat}),
        )

    @functools.cache  # noqa: B019 (one runner per run; the sets are fixed and reused)
    def _test_set(self, task: str):
        cfg = self.config
        extra = {"length": cfg.test_length, "crop_size": cfg.test_size} if cfg.data is None else {}
        return make_dataset(
            cfg.data, task, split="test", preset=cfg.degradation_preset, seed=cfg.seed, **extra
        )

    def _size(self, task: str) -> dict[str, int]:
        c = complexity(self.model, (1, 1, 512, 640), task=_model_name(task))
        return {"activated_params": c.activated_params, "macs": c.macs}

    def _evaluate_one(self, task: str, *, identity: bool = False) -> dict[str, float]:
        data = self._test_set(task)
        values: dict[str, list[float]] = {"psnr": [], "ssim": []}
        self.model.eval()
        with torch.no_grad():
            for i in range(len(data)):
                degraded, clean = (t.unsqueeze(0).to(self.device) for t in data[i])
                if identity:
                    restored = degraded
                else:
                    restored = self.model(degraded, task=_model_name(task)).clamp(0, 1)
                values["psnr"].append(float(psnr(restored, clean)))
                values["ssim"].append(float(ssim(restored, clean)))
        self.model.train()
        return {k: round(float(np.mean(v)), 4) for k, v in values.items()}


def _scores(restored: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    return {
        "psnr": round(float(psnr(restored, clean)), 4),
        "ssim": round(float(ssim(restored, clean)), 4),
    }


def _model_name(task: str) -> str:
    """The model's name of a task: ``"C+haze"`` becomes ``"C_haze"``."""
    return task.replace("+", "_")


def _hash(stage: str) -> int:
    return int.from_bytes(stage.encode()[:8].ljust(8, b"\0"), "little") ^ len(stage)


# ----------------------------------------------------------------------------- run state


def _start(config: PipelineConfig, out: Path, *, resume: bool, overwrite: bool) -> dict:
    checkpoint = out / CHECKPOINT
    saved_config = out / CONFIG_FILE
    if resume:
        if not checkpoint.is_file():
            raise TaskStateError(f"`resume` needs a run in {out}; found no {CHECKPOINT} there")
        data = load_checkpoint(checkpoint)
        _check_resumable(PipelineConfig(**data["config"]), config, out)
        model = ECMRNet.from_state_dict(data["model"])
        report = Report.from_dict(data["report"])
        report.config = config.to_dict()
        _save_config(config, saved_config)
        log.info("resuming %s after %s", out, data["done"][-1] if data["done"] else "nothing")
        return {
            "model": model,
            "report": report,
            "done": list(data["done"]),
            "recognizer": data.get("recognizer"),
        }
    if (checkpoint.exists() or saved_config.exists()) and not overwrite:
        raise TaskStateError(
            f"{out} already holds a run; continue it with resume=True (--resume) or "
            "replace it with overwrite=True (--overwrite)"
        )
    out.mkdir(parents=True, exist_ok=True)
    checkpoint.unlink(missing_ok=True)
    _save_config(config, saved_config)
    torch.manual_seed(config.seed)
    return {
        "model": ECMRNet.from_preset(config.model),
        "report": Report(config.to_dict()),
        "done": [],
    }


def _check_resumable(saved: PipelineConfig, new: PipelineConfig, out: Path) -> None:
    a, b = saved.to_dict(), new.to_dict()
    differ = sorted(k for k in a if k != "tasks" and a[k] != b[k])
    if differ:
        raise TaskStateError(
            f"the run in {out} was made with other settings ({', '.join(differ)}: "
            f"{[a[k] for k in differ]} there, {[b[k] for k in differ]} now); resume with the "
            "same configuration, or start a new run"
        )
    if list(new.tasks[: len(saved.tasks)]) != list(saved.tasks):
        raise TaskStateError(
            f"`tasks` must extend the run's tasks {list(saved.tasks)}; got {list(new.tasks)}"
        )


def _save_config(config: PipelineConfig, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    tmp.replace(path)


def _quiet_numba_threads() -> None:
    """Use numba's workqueue threads unless the user chose a threading layer.

    sepkit's parallel kernels (SEP's batched partitions) otherwise start OpenMP
    workers that keep spinning after each call; on a busy CPU that slowed every later
    torch operation of the process about 15-fold. It must be set before numba's first
    parallel call, so the pipeline, an application, decides it here.
    """
    if os.environ.get("NUMBA_THREADING_LAYER"):
        return
    import numba
    from numba.np.ufunc import parallel

    if not getattr(parallel, "_is_initialized", True):
        numba.config.THREADING_LAYER = "workqueue"


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("`device` is 'cuda' but no CUDA device is available; use 'cpu'")
    return torch.device(name)


def _choice(name, value, choices) -> None:
    if value not in choices:
        raise InvalidInputError(f"`{name}` must be one of {list(choices)}; got {value!r}")


def _check_sequence(tasks) -> None:
    """Known degradations, no repeats, and every compound task after its parts."""
    seen: set[str] = set()
    for task in tasks:
        parts = parse_task(task)
        if task in seen:
            raise InvalidInputError(f"`tasks` lists {task!r} twice")
        missing = [p for p in parts if len(parts) > 1 and p not in seen]
        if missing:
            raise InvalidInputError(
                f"`tasks`: compound task {task!r} must come after its parts; "
                f"{', '.join(map(repr, missing))} not learned before it in {list(tasks)}"
            )
        seen.add(task)


def _bar(total: int, desc: str, enabled: bool):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress bars are optional
        enabled = False
    if not enabled:
        return _NoBar()
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


class _NoBar:
    def set_postfix(self, **kwargs):
        pass

    def update(self, n=1):
        pass

    def close(self):
        pass


if __name__ == "__main__":  # python -m sepkit_torch.pipeline
    from sepkit_torch.cli import main

    raise SystemExit(main())
