"""The pipeline's ``<task>:recognize`` stage: grow and score the degradation recognizer.

The algorithms (training a letter's head, routing, scoring) are in
:mod:`sepkit_torch.continual.recognition`; this module decides when they run in a task
sequence and where their results go.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sepkit_torch.complexity import COUNT_SHAPE, complexity
from sepkit_torch.continual.recognition import (
    RECOGNIZER_MODES,
    evaluate_recognition,
    train_letter,
)
from sepkit_torch.data import parse_task
from sepkit_torch.distributed import ShardedBatchSampler
from sepkit_torch.models.recognizer import DegradationRecognizer

__all__ = [
    "RECOGNIZER_MODES",
    "RECOGNIZE",
    "is_recognizer_stage",
    "recognizer_stage",
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

    A single degradation without a head gets one, trained on `train_set` for
    ``config.recognizer_epochs`` (with the letters learned before it as contexts when
    ``config.recognizer == "context"``). Then the recognizer is scored on the test sets of
    every task learned so far (the routing table has grown by `task`), into
    ``report.recognizer["after"][task]``.
    """
    recognizer = recognizer if recognizer is not None else DegradationRecognizer()
    info = report.recognizer or {"mode": config.recognizer, "loss": {}, "after": {}}
    parts = parse_task(task)
    if len(parts) == 1 and task not in recognizer.letters:
        contexts = recognizer.letters if config.recognizer == "context" else ()
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
