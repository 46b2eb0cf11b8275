"""The pipeline's ``<task>:recognize`` stage: grow and score the degradation recognizer.

The algorithms (training a letter's head, routing, scoring) are in
:mod:`sepkit_torch.continual.recognition`; this module decides when they run in a task
sequence and where their results go.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sepkit_torch._errors import InvalidInputError
from sepkit_torch.complexity import COUNT_SHAPE, complexity
from sepkit_torch.continual.recognition import (
    MILD_SHARE,
    RECOGNIZER_MODES,
    calibrate_letter,
    evaluate_recognition,
    train_letter,
)
from sepkit_torch.data import parse_task
from sepkit_torch.data.sampling import mix_seed
from sepkit_torch.distributed import ShardedBatchSampler
from sepkit_torch.models.recognizer import DegradationRecognizer
from sepkit_torch.pipeline import data as run_data

__all__ = [
    "RECOGNIZER_MODES",
    "RECOGNIZE",
    "grow_recognizer",
    "is_recognizer_stage",
    "recognizer_stage",
    "retrain_recognizer",
    "window_batches",
]


#: The step of the pipeline's ``"<task>:recognize"`` stages.
RECOGNIZE = "recognize"


def is_recognizer_stage(stage) -> bool:
    """True for the pipeline's ``"<task>:recognize"`` stages (a :class:`Stage`)."""
    return stage.step == RECOGNIZE


def recognizer_stage(
    config,
    recognizer: DegradationRecognizer | None,
    task: str,
    report,
    *,
    train_set,
    test_sets: Mapping[str, Any],
    seed: int,
    device,
    progress: bool = True,
) -> DegradationRecognizer:
    """The pipeline's ``<task>:recognize`` stage; returns the (grown) recognizer.

    A single degradation without a head gets one (:func:`grow_recognizer`). Then the
    recognizer is scored on the test sets of every task learned so far (the routing
    table has grown by `task`), into ``report.recognizer["after"][task]``.
    """
    recognizer = recognizer if recognizer is not None else DegradationRecognizer()
    info = report.recognizer or {"mode": config.recognizer, "loss": {}, "after": {}}
    grow_recognizer(
        config,
        recognizer,
        task,
        info,
        train_set=train_set,
        seed=seed,
        device=device,
        progress=progress,
    )
    size = complexity(recognizer, COUNT_SHAPE)
    info["letters"] = list(recognizer.letters)
    info["params"] = size.total_params
    info["macs"] = size.macs
    routable = [t for t in report.tasks if all(p in recognizer.letters for p in parse_task(t))]
    info["after"][task] = evaluate_recognition(
        recognizer, {t: test_sets[t] for t in routable}, routable, device=device
    )
    report.recognizer = info
    return recognizer


def grow_recognizer(
    config,
    recognizer: DegradationRecognizer,
    task: str,
    info: dict[str, Any],
    *,
    train_set,
    seed: int,
    device="cpu",
    progress: bool = False,
) -> None:
    """The training part of a ``<task>:recognize`` stage, on `recognizer` in place.

    A single degradation without a head gets one, trained on `train_set` for
    ``config.recognizer_epochs``: by ``config.recognizer`` ``"context"``, around the
    letters learned before it; ``"pairs"``, on the pairs alone; ``"mixtures"``, around
    every other letter of the run's tasks, with its own strength at the mild end of its
    ranges when others are present (:data:`MILD_SHARE`), then its threshold is calibrated
    on :func:`~sepkit_torch.pipeline.data.calibration_frames`. The last loss goes to
    ``info["loss"][task]``, a calibration to ``info["calibration"][task]``. Anything
    else (a compound task, a letter with a head) trains nothing.
    """
    if len(parse_task(task)) != 1 or task in recognizer.letters:
        return
    mode = config.recognizer
    if mode == "mixtures":
        contexts = tuple(dict.fromkeys(p for t in config.tasks for p in parse_task(t)))
        contexts = tuple(c for c in contexts if c != task)
    else:
        contexts = recognizer.letters if mode == "context" else ()
    mild = MILD_SHARE if mode == "mixtures" else None
    info["loss"][task] = train_letter(
        recognizer,
        task,
        train_set,
        epochs=config.recognizer_epochs,
        contexts=contexts,
        preset=config.degradation_preset,
        batch_size=config.batch_size,
        seed=seed,
        device=device,
        progress=progress,
        desc=f"{task}:recognize",
        batch_sampler=window_batches(train_set, config.batch_size),
        mild=mild,
    )
    if mode == "mixtures":
        info.setdefault("calibration", {})[task] = calibrate_letter(
            recognizer,
            task,
            run_data.calibration_frames(config),
            contexts=contexts,
            preset=config.degradation_preset,
            mild=mild,
            seed=mix_seed(seed, 1),
            device=device,
        )


def retrain_recognizer(
    config,
    *,
    device="cpu",
    progress: bool = False,
    evaluate: bool = True,
) -> tuple[DegradationRecognizer, dict[str, Any]]:
    """The recognizer of a run with `config`, trained again by all its ``recognize``
    stages (the run's training data and stage seeds; no restorer is trained or needed).

    Change ``config.recognizer`` or ``config.recognizer_epochs`` (``dataclasses.replace``)
    to retrain another way; retraining a run's own settings gives its heads bit for bit.

    Returns
    -------
    (DegradationRecognizer, dict)
        The recognizer (eval mode) and its info as in a run's report: ``mode``, ``loss``,
        ``calibration`` (``"mixtures"``), and with `evaluate` ``after``: the scores on the
        run's fixed test sets of all its tasks (:func:`evaluate_recognition`).
    """
    if config.recognizer not in RECOGNIZER_MODES or config.recognizer == "none":
        modes = [m for m in RECOGNIZER_MODES if m != "none"]
        raise InvalidInputError(
            f"`config.recognizer` must be one of {modes} to retrain; got {config.recognizer!r}"
        )
    recognizer = DegradationRecognizer()
    info: dict[str, Any] = {"mode": config.recognizer, "loss": {}, "after": {}}
    for task in config.tasks:
        stage = f"{task}:{RECOGNIZE}"
        if len(parse_task(task)) != 1:
            continue
        grow_recognizer(
            config,
            recognizer,
            task,
            info,
            train_set=run_data.train_set(config, task, stage),
            seed=run_data.stage_seed(config, stage, "recognizer"),
            device=device,
            progress=progress,
        )
    recognizer.eval()
    if evaluate:
        tasks = list(config.tasks)
        info["after"][tasks[-1]] = evaluate_recognition(
            recognizer, {t: run_data.test_set(config, t) for t in tasks}, tasks, device=device
        )
    return recognizer, info


def window_batches(data, batch_size: int):
    """The recognizer's batches of `data` from a seeded generator: a plain shuffle, except
    that the windows of whole frames are visited `batch_size` frames at a time, so that
    each frame is made once per epoch (as in the restorer's training)."""

    def batches(generator):
        return ShardedBatchSampler(
            len(data),
            batch_size,
            generator=generator,
            drop_last=len(data) > batch_size,
            frame_items=data.frame_items,
        )

    return batches
