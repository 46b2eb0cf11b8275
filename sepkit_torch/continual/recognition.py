"""Blind restoration's first step: train the recognizer's heads, route images to tasks.

A single-degradation task ``L`` adds and trains the head of letter ``L``
(:func:`train_letter`) on that task's synthetic pairs: the degraded image is a positive,
its clean image a negative. Nothing else is seen: the head of C, trained when C was the
only task, has never seen a blurred or noisy image. :func:`evaluate_recognition` measures
what that costs on the fixed test sets of every task learned so far.

:func:`route` maps the heads' probabilities to the best learned task: the learned task
whose set of letters is most probable when the heads are read as independent
probabilities (the maximum-likelihood learned task; see its Notes). When the thresholded
set of letters is itself a learned task, that is the task chosen.

The ``"mixtures"`` mode trains each head around every other letter of the run's task list
at realistic relative strengths (the head's own letter at the mild end of its ranges when
others are present: :data:`MILD_ENDS`), then :func:`calibrate_letter` sets the head's
threshold on procedural validation frames (:func:`calibrate_threshold`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler

from sepkit_torch._errors import InvalidInputError
from sepkit_torch.data import degrade, get_degradation, parse_task, quantize, task_name
from sepkit_torch.models.recognizer import DegradationRecognizer
from sepkit_torch.training import fit

__all__ = [
    "CLEAN",
    "MILD_ENDS",
    "MILD_SHARE",
    "RECOGNIZER_MODES",
    "Recognition",
    "calibrate_letter",
    "calibrate_threshold",
    "evaluate_recognition",
    "mild_kwargs",
    "recognize",
    "route",
    "train_letter",
    "verdicts",
]

#: How a task sequence grows the recognizer (the pipeline's ``recognizer`` setting):
#: ``"context"`` trains each letter's head around the letters learned before it,
#: ``"pairs"`` on its task's pairs only, ``"mixtures"`` around every other letter of the
#: task list at realistic relative strengths and calibrates its threshold on validation
#: frames, ``"none"`` leaves the recognizer out.
RECOGNIZER_MODES = ("context", "pairs", "mixtures", "none")

#: Which end of each range of a built-in degradation is the mild one: ``"low"`` (a smaller
#: value degrades less: blur sigma, noise levels, brightness offset) or ``"high"`` (the
#: contrast gain, 1 being no loss). A registered degradation not listed keeps its ranges.
MILD_ENDS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "C": MappingProxyType({"contrast": "high", "brightness": "low"}),
        "B": MappingProxyType({"sigma": "low"}),
        "N": MappingProxyType(
            {"delta": "low", "gain_std": "low", "offset_std": "low", "sigma": "low"}
        ),
    }
)

#: In the ``"mixtures"`` mode, the share of each of its ranges (at the mild end) a letter's
#: strength is drawn from when other letters are present: mild blur beside strong noise.
MILD_SHARE = 0.5

#: The name of "no degradation recognized" in routes and confusion matrices; such an image
#: is passed through unchanged.
CLEAN = "clean"

_EPS = 1e-6


@dataclass(frozen=True)
class Recognition:
    """The recognizer's verdict on one image (read-only).

    Attributes
    ----------
    task : str or None
        The learned task the image is routed to; None when no degradation is recognized
        (the image is left as it is).
    letters : tuple of str
        The degradations whose probability is at least the threshold, canonical order.
    probabilities : dict of str to float
        Per letter, the head's probability that the degradation is present.
    """

    task: str | None
    letters: tuple[str, ...]
    probabilities: dict[str, float]


def route(
    probabilities: torch.Tensor,
    letters: Sequence[str],
    tasks: Sequence[str],
) -> list[str | None]:
    """The learned task of each image, from its per-letter probabilities.

    Parameters
    ----------
    probabilities : torch.Tensor
        ``(B, len(letters))``, the heads' probabilities (``sigmoid`` of the logits).
    letters : sequence of str
        The recognizer's letters, in the columns' order.
    tasks : sequence of str
        The learned tasks (``"C"``, ``"CB"``, ...), in the order learned (ties go to the
        earlier one).

    Returns
    -------
    list of (str or None)
        Per image, a task of `tasks`, or None when "no degradation" is the most probable.

    Notes
    -----
    With ``p_l`` the probability of letter ``l``, a candidate set of letters ``S`` (a
    learned task's parts, or the empty set for a clean image) has the log-likelihood
    ``sum_{l in S} log p_l + sum_{l not in S} log(1 - p_l)``; the most likely candidate
    wins. When the thresholded set ``{l : p_l >= 0.5}`` is a learned task (or empty) it is
    the most likely of all sets, so it is chosen: exact matches route to themselves.
    Otherwise the closest learned task is the one that disagrees with the heads on the
    fewest letters, each disagreement weighed by how confident that head is: an image
    read as ``{C, B, N}`` by a model that learned ``CB`` and ``CN`` goes to ``CB`` if the
    noise head is less sure than the blur head.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.continual.recognition import route
    >>> p = torch.tensor([[0.9, 0.8, 0.1], [0.9, 0.8, 0.6], [0.1, 0.2, 0.3], [0.9, 0.7, 0.8]])
    >>> route(p, ["C", "B", "N"], ["C", "B", "N", "CB", "CN"])
    ['CB', 'CB', None, 'CN']
    """
    letters = tuple(letters)
    if not isinstance(probabilities, torch.Tensor) or probabilities.ndim != 2:
        raise InvalidInputError(
            "`probabilities` must be a (batch, letters) tensor; got "
            f"{getattr(probabilities, 'shape', type(probabilities).__name__)}"
        )
    if probabilities.shape[1] != len(letters):
        raise InvalidInputError(
            f"`probabilities` must have one column per letter {list(letters)}; got "
            f"shape {tuple(probabilities.shape)}"
        )
    candidates: list[str | None] = [None]
    masks = [[False] * len(letters)]
    for task in tasks:
        parts = parse_task(task)
        missing = [p for p in parts if p not in letters]
        if missing:
            raise InvalidInputError(
                f"`tasks`: task {task!r} needs a head for {missing}; the recognizer's "
                f"letters are {list(letters)}"
            )
        candidates.append(task)
        masks.append([letter in parts for letter in letters])
    p = probabilities.detach().double().cpu().clamp(_EPS, 1 - _EPS)
    member = torch.tensor(masks, dtype=torch.float64)  # (candidates, letters)
    score = p.log() @ member.T + (1 - p).log() @ (1 - member).T  # (B, candidates)
    return [candidates[i] for i in score.argmax(1).tolist()]


def recognize(
    recognizer: DegradationRecognizer,
    images: torch.Tensor,
    tasks: Sequence[str],
    *,
    threshold: float = 0.5,
) -> list[Recognition]:
    """Recognize a batch ``(B, 1, H, W)`` and route each image to one of `tasks`."""
    with torch.no_grad():
        p = recognizer.probabilities(images).cpu()
    return verdicts(p, recognizer.letters, tasks, threshold)


def verdicts(p, letters, tasks, threshold) -> list[Recognition]:
    """One :class:`Recognition` per row of probabilities `p` (images x `letters`): the
    letters at or above `threshold` and the :func:`route` to one of `tasks`."""
    routes = route(p, letters, tasks)
    out = []
    for row, task in zip(p.tolist(), routes, strict=True):
        present = [letter for letter, v in zip(letters, row, strict=True) if v >= threshold]
        # canonical order, whatever order the heads were learned in
        present = tuple(sorted(present, key=lambda name: get_degradation(name).order))
        out.append(
            Recognition(
                task=task,
                letters=present,
                probabilities={letter: round(v, 4) for letter, v in zip(letters, row, strict=True)},
            )
        )
    return out


def train_letter(
    recognizer: DegradationRecognizer,
    letter: str,
    data,
    *,
    epochs: int,
    contexts: Sequence[str] = (),
    preset: str = "ecmrnet",
    batch_size: int = 8,
    lr: float = 3e-3,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
    desc: str = "recognize",
    batch_sampler: Callable[[torch.Generator], Sampler[list[int]]] | None = None,
    mild: float | None = None,
) -> float:
    """Add the head of `letter` to `recognizer` and train it; returns the last loss.

    Parameters
    ----------
    recognizer : DegradationRecognizer
    letter : str
        A single degradation without a head yet.
    data : Dataset
        ``(degraded, clean)`` pairs of the task `letter` (and ``set_epoch``), e.g. the
        restorer's training set of that task.
    epochs : int
        Passes over `data`.
    contexts : sequence of str
        Other degradations to show the head around its own (see Notes); ``()`` trains on
        the pairs of `data` alone.
    preset : str
        Degradation parameters of the contexts (as the data's).
    batch_size, lr, seed, device
        Pairs per step, Adam's learning rate (cosine to 1/100 of it:
        :func:`~sepkit_torch.training.fit`'s ``"paper"`` recipe), the seed of the head's
        initial weights, the batch order and the contexts (no global random state is used
        or changed).
    progress : bool
        A progress bar named `desc`.
    batch_sampler : callable, optional
        ``batch_sampler(generator)``: the batches of `data` (lists of item indices), drawn
        from the seeded `generator` (e.g. visiting the windows of whole frames a few frames
        at a time); default: a plain shuffle of `batch_size` items.
    mild : float, optional
        With `contexts` chosen for a pair, draw `letter`'s own parameters from this share
        of each of its ranges, at the mild end (:func:`mild_kwargs`); the contexts keep
        their full ranges. None (default): `letter` at its full ranges too.

    Notes
    -----
    Every batch holds the degraded images (target 1) and their clean images (target 0):
    balanced classes and the same scenes on both sides, so the head has to look at the
    degradation, not at the content. The clean images are rounded to 8-bit grey levels
    like the degraded ones, so that rounding is no clue. With `contexts`, each pair gets
    a random subset ``S`` of them (each with probability 1/2): the positive becomes the
    clean image degraded by ``S`` and `letter`, the negative the clean image degraded by
    ``S`` alone. Those are made with the registered degradation functions on the current
    task's clean images; no earlier task's data is used. Binary cross-entropy on logits.
    """
    contexts = tuple(c for c in contexts if c != letter)
    for c in contexts:
        parse_task(c)
    if mild is not None:
        mild_kwargs(letter, preset, mild)  # checks `mild` before any training
    with torch.random.fork_rng(devices=[]):  # the new head's initial weights from `seed`
        torch.manual_seed(seed)
        recognizer.add_letter(letter)
    recognizer.to(device)
    if epochs < 1:
        return float("nan")
    g = torch.Generator().manual_seed(seed)
    context_g = torch.Generator().manual_seed(seed + 1)
    if batch_sampler is None:
        loader = DataLoader(
            data, batch_size=batch_size, shuffle=True, generator=g, drop_last=len(data) > batch_size
        )
    else:
        loader = DataLoader(data, batch_sampler=batch_sampler(g), generator=g)
    head = recognizer.heads[letter]

    def objective(batch) -> torch.Tensor:
        degraded, clean = batch
        positives, negatives = _with_contexts(
            degraded, clean, letter, contexts, preset, context_g, mild
        )
        x = torch.cat([positives, negatives]).to(device)
        target = torch.cat([torch.ones(len(positives)), torch.zeros(len(negatives))])
        return F.binary_cross_entropy_with_logits(head(x), target.to(device))

    modes = [(m, m.training) for m in recognizer.modules()]
    try:
        result = fit(
            recognizer,
            loader,
            lr=lr,
            epochs=epochs,
            parameters=recognizer.trainable_parameters(),
            objective=objective,
            set_epoch=data.set_epoch,
            progress=progress,
            desc=desc,
        )
    finally:
        for module, mode in modes:
            module.train(mode)
    head.eval()
    return round(result.loss, 6)


def _with_contexts(degraded, clean, letter, contexts, preset, g, mild=None):
    positives, negatives = [], []
    for d, c in zip(degraded, clean, strict=True):
        chosen = [x for x in contexts if float(torch.rand((), generator=g)) < 0.5]
        if chosen:
            positives.append(quantize(_degrade_around(c, letter, chosen, preset, g, mild)))
            negatives.append(quantize(degrade(c, task_name(chosen), g, preset=preset)))
        else:
            positives.append(quantize(d))
            negatives.append(quantize(c))
    return torch.stack(positives), torch.stack(negatives)


def _degrade_around(clean, letter, chosen, preset, g, mild):
    """`clean` degraded by `chosen` and `letter` in canonical order, one generator running
    through them; with `mild`, `letter` at the mild end of its ranges."""
    if mild is None:
        return degrade(clean, task_name([*chosen, letter]), g, preset=preset)
    y = clean
    for name in parse_task(task_name([*chosen, letter])):
        degradation = get_degradation(name)
        if name == letter:
            y = degradation.fn(y, g, **mild_kwargs(letter, preset, mild))
        else:
            y = degradation(y, g, preset=preset)
    return y


def mild_kwargs(letter: str, preset: str, share: float) -> dict[str, Any]:
    """The keyword arguments of degradation `letter` under `preset`, each range listed in
    :data:`MILD_ENDS` cut to its mildest `share` (integer ranges stay integer).

    Examples
    --------
    >>> from sepkit_torch.continual.recognition import mild_kwargs
    >>> mild_kwargs("B", "broad", 0.5)  # sigma 1-3 -> 1-2; the kernel sizes kept
    {'kernel_size': (7, 23), 'sigma': (1.0, 2.0)}
    >>> mild_kwargs("N", "broad", 0.5)["sigma"], mild_kwargs("N", "broad", 0.5)["delta"]
    ((5.0, 12.5), (15, 45))
    >>> mild_kwargs("C", "broad", 0.5)["contrast"]  # mild = a gain near 1
    (0.5, 0.8)
    """
    if (
        not isinstance(share, (int, float))
        or isinstance(share, bool)
        or not 0.0 < float(share) <= 1.0
    ):
        raise InvalidInputError(f"`mild` must be a share of the ranges in (0, 1]; got {share!r}")
    kwargs = get_degradation(letter).kwargs(preset)
    for key, end in MILD_ENDS.get(letter, {}).items():
        value = kwargs.get(key)
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            continue  # a fixed value (or none under this preset): nothing to cut
        lo, hi = value
        span = (hi - lo) * float(share)
        if isinstance(lo, int) and isinstance(hi, int):
            span = int(round(span))
        # (clamped: in floats, hi - (hi - lo) may fall below lo)
        kwargs[key] = (lo, min(hi, lo + span)) if end == "low" else (max(lo, hi - span), hi)
    return kwargs


def calibrate_threshold(logits, labels) -> float:
    """The threshold (a probability) that best separates `labels` by `logits`: the one of
    largest balanced accuracy (the mean of the hit rates on positives and on negatives).

    Parameters
    ----------
    logits : sequence of float or 1-D tensor
        A head's logits on validation images.
    labels : sequence of {0, 1} or 1-D tensor
        1 where the letter is present; both classes must occur.

    Returns
    -------
    float
        ``sigmoid(t)``, with ``t`` the cut (midway between two neighbouring logits, or
        beyond the extremes) whose rule ``logit >= t`` has the largest balanced accuracy;
        among equally good cuts, the one closest to logit 0 (threshold 0.5).

    Examples
    --------
    >>> from sepkit_torch.continual.recognition import calibrate_threshold
    >>> round(calibrate_threshold([-3.0, -2.0, -1.5, 0.5], [0, 0, 1, 1]), 4)  # cut at -1.75
    0.148
    """
    x = torch.as_tensor(logits, dtype=torch.float64).flatten()
    y = torch.as_tensor(labels).flatten()
    if x.numel() != y.numel() or x.numel() == 0:
        raise InvalidInputError(
            f"`logits` and `labels` must be non-empty and of one length; got {x.numel()} "
            f"and {y.numel()}"
        )
    if not torch.isfinite(x).all():
        raise InvalidInputError("`logits` must be finite; got inf or nan")
    if not bool(((y == 0) | (y == 1)).all()) or not (bool((y == 1).any()) and bool((y == 0).any())):
        raise InvalidInputError(
            f"`labels` must be 0 or 1, with both present; got values {sorted(set(y.tolist()))}"
        )
    y = y.bool()
    values = torch.unique(x)  # sorted
    cuts = torch.cat([values[:1] - 1.0, (values[1:] + values[:-1]) / 2, values[-1:] + 1.0])
    predicted = x[None, :] >= cuts[:, None]  # (cuts, images)
    hit_positive = (predicted & y).sum(1).double() / y.sum()
    hit_negative = (~predicted & ~y).sum(1).double() / (~y).sum()
    balanced = (hit_positive + hit_negative) / 2
    best = balanced >= balanced.max() - 1e-12
    cut = cuts[best][cuts[best].abs().argmin()]
    return float(torch.sigmoid(cut).clamp(1e-6, 1 - 1e-6))


def calibrate_letter(
    recognizer: DegradationRecognizer,
    letter: str,
    frames: Sequence[torch.Tensor],
    *,
    contexts: Sequence[str] = (),
    preset: str = "ecmrnet",
    mild: float | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Set the threshold of `letter`'s head on validation frames; returns what was found.

    Every clean frame of `frames` (``(1, H, W)``, e.g. procedural scenes of a split
    distinct from training and test) gives one positive and one negative, drawn as in
    :func:`train_letter` with the same `contexts`, `preset` and `mild` (the positive
    without contexts is the frame degraded by `letter` at its full ranges). The head's
    threshold is the :func:`calibrate_threshold` of its logits on them.

    Returns
    -------
    dict
        ``threshold``; ``n`` (validation images); ``balanced_accuracy`` at 0.5 and at the
        threshold (``before`` and ``after``).
    """
    if letter not in recognizer.letters:
        raise InvalidInputError(
            f"`letter` must be one of the recognizer's letters {list(recognizer.letters)}; "
            f"got {letter!r}"
        )
    if len(frames) < 1:
        raise InvalidInputError(f"`frames` must hold at least one frame; got {len(frames)}")
    contexts = tuple(c for c in contexts if c != letter)
    g = torch.Generator().manual_seed(seed)
    head = recognizer.heads[letter]
    logits, labels = [], []
    mode = head.training
    head.eval()
    try:
        with torch.no_grad():
            for frame in frames:  # one at a time: frames may differ in size
                clean = frame.unsqueeze(0)
                degraded = degrade(clean, letter, g, preset=preset)
                pos, neg = _with_contexts(degraded, clean, letter, contexts, preset, g, mild)
                logits += head(torch.cat([pos, neg]).to(device)).cpu().tolist()
                labels += [1, 0]
    finally:
        head.train(mode)
    threshold = calibrate_threshold(logits, labels)
    recognizer.set_threshold(letter, threshold)
    x, y = torch.tensor(logits), torch.tensor(labels).bool()

    def balanced(cut: float) -> float:
        hit = x >= cut
        return round(float(((hit & y).sum() / y.sum() + (~hit & ~y).sum() / (~y).sum()) / 2), 4)

    cut = math.log(threshold / (1 - threshold))
    return {
        "threshold": threshold,
        "n": len(labels),
        "balanced_accuracy": {"before": balanced(0.0), "after": balanced(cut)},
    }


def evaluate_recognition(
    recognizer: DegradationRecognizer,
    test_sets: Mapping[str, Any],
    tasks: Sequence[str],
    *,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Score the recognizer on fixed test sets, with the clean images as one more row.

    Parameters
    ----------
    recognizer : DegradationRecognizer
    test_sets : mapping of str to Dataset
        Task -> its fixed ``(degraded, clean)`` test set; the clean images of the first
        one make the ``"clean"`` row.
    tasks : sequence of str
        The learned tasks to route to.

    Returns
    -------
    dict
        ``letters``; ``rows`` (the true tasks, then ``"clean"``); ``columns`` (the learned
        tasks, then ``"clean"``); ``confusion`` (counts, rows x columns: true task by routed
        task); ``per_task``: per row ``n``, ``routed`` (share routed to its own task),
        ``exact`` (share whose thresholded letters are exactly its letters) and ``letter``
        (per letter, the share of images on which that head is right); ``accuracy``: the
        mean of ``routed`` over the degraded rows.
    """
    letters = recognizer.letters
    columns = [*tasks, CLEAN]
    rows: dict[str, list[tuple[str | None, tuple[str, ...]]]] = {}
    samples = {}
    first = next(iter(test_sets))
    for task, data in test_sets.items():
        samples[task] = [data[i][0] for i in range(len(data))]
    # rounded to 8 bits like the degraded images (and a real image file)
    samples[CLEAN] = [quantize(test_sets[first][i][1]) for i in range(len(test_sets[first]))]
    recognizer.eval()
    for name, images in samples.items():
        verdicts = []
        for image in images:  # one at a time: test images may differ in size
            (v,) = recognize(recognizer, image.unsqueeze(0).to(device), tasks)
            verdicts.append((v.task, v.letters))
        rows[name] = verdicts
    confusion = []
    per_task = {}
    for name, verdicts in rows.items():
        truth = () if name == CLEAN else parse_task(name)
        own = None if name == CLEAN else name
        counts = [0] * len(columns)
        for task, _ in verdicts:
            counts[columns.index(CLEAN if task is None else task)] += 1
        confusion.append(counts)
        n = len(verdicts)
        per_task[name] = {
            "n": n,
            "routed": round(sum(task == own for task, _ in verdicts) / n, 4),
            "exact": round(sum(set(found) == set(truth) for _, found in verdicts) / n, 4),
            "letter": {
                letter: round(
                    sum((letter in found) == (letter in truth) for _, found in verdicts) / n, 4
                )
                for letter in letters
            },
        }
    degraded = [per_task[t]["routed"] for t in rows if t != CLEAN]
    return {
        "letters": list(letters),
        "rows": list(rows),
        "columns": columns,
        "confusion": confusion,
        "per_task": per_task,
        "accuracy": round(float(np.mean(degraded)), 4) if degraded else math.nan,
    }
