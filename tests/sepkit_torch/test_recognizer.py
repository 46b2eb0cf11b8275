"""The degradation recognizer: isolation of the letters' heads, routing, evaluation."""

from __future__ import annotations

import itertools

import pytest
import torch

from sepkit_torch import InvalidInputError, TaskStateError
from sepkit_torch.continual.recognition import (
    CLEAN,
    evaluate_recognition,
    route,
    train_letter,
    verdicts,
)
from sepkit_torch.data import make_dataset, parse_task
from sepkit_torch.models import DegradationRecognizer
from sepkit_torch.pipeline.recognition_stage import window_batches

from .conftest import images

X = images(5, 1, 24, 20, seed=1)


def _train_set(task):
    return make_dataset(None, task, split="train", crop_size=16, length=8, seed=3)


def test_a_new_letter_leaves_earlier_logits_bit_identical():
    torch.manual_seed(0)
    recognizer = DegradationRecognizer(width=4)
    train_letter(recognizer, "C", _train_set("C"), epochs=1, batch_size=4)
    before = recognizer(X)[:, 0].clone()
    c_weights = {k: v.clone() for k, v in recognizer.heads["C"].state_dict().items()}
    train_letter(recognizer, "B", _train_set("B"), epochs=2, batch_size=4, contexts=["C"])
    train_letter(recognizer, "N", _train_set("N"), epochs=1, batch_size=4, contexts=["C", "B"])
    after = recognizer(X)
    assert recognizer.letters == ("C", "B", "N") and after.shape == (5, 3)
    assert torch.equal(after[:, 0], before)
    for k, v in recognizer.heads["C"].state_dict().items():
        assert torch.equal(v, c_weights[k]), k
    # the B head did train (its logits are not a fresh head's)
    fresh = DegradationRecognizer(width=4)
    fresh.add_letter("B")
    assert not torch.equal(fresh(X)[:, 0], after[:, 1])


def test_training_a_head_depends_on_its_seed_only():
    heads = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        state = torch.get_rng_state()
        recognizer = DegradationRecognizer(width=4)
        train_letter(recognizer, "N", _train_set("N"), epochs=1, batch_size=4, seed=5)
        assert torch.equal(torch.get_rng_state(), state)  # the global generator untouched
        heads.append(recognizer(X))
    assert torch.equal(heads[0], heads[1])


def test_window_batches_make_each_frame_once_per_epoch(monkeypatch):
    # one item per frame: the plain shuffle's batches, so the same head
    data = _train_set("N")
    heads = []
    for sampler in (None, window_batches(data, 4)):
        recognizer = DegradationRecognizer(width=4)
        train_letter(recognizer, "N", data, epochs=2, batch_size=4, seed=5, batch_sampler=sampler)
        heads.append(recognizer(X))
    assert torch.equal(heads[0], heads[1])
    # windows of whole frames, and room for a batch's frames only: each frame is made once
    # per epoch with window_batches, several times with a plain shuffle
    made = []
    for sampler in (window_batches, None):
        windows = make_dataset(
            None, "N", crop_size=16, length=12, frame_size=(32, 40), repeat=3, seed=3
        )
        windows._frames.capacity = 4
        make = windows._degraded_frame
        monkeypatch.setattr(
            windows, "_degraded_frame", lambda f, e, make=make: made.append((f, e)) or make(f, e)
        )
        made.clear()
        train_letter(
            DegradationRecognizer(width=4),
            "N",
            windows,
            epochs=2,
            batch_size=4,
            batch_sampler=None if sampler is None else sampler(windows, 4),
        )
        if sampler is not None:
            assert sorted(made) == [(f, e) for f in range(12) for e in (0, 1)]
    assert len(made) > 24


def test_letters_are_named_in_canonical_order_whatever_order_they_were_learned():
    p = torch.tensor([[0.9, 0.8, 0.7], [0.9, 0.8, 0.2]])  # heads learned as C, N, B
    found = verdicts(p, ("C", "N", "B"), ["C", "N", "B", "CN", "CBN"], 0.5)
    assert [(v.letters, v.task) for v in found] == [(("C", "B", "N"), "CBN"), (("C", "N"), "CN")]


def test_only_the_newest_head_trains_and_gets_gradients():
    recognizer = DegradationRecognizer(width=4)
    recognizer.add_letter("C")
    recognizer.add_letter("B")
    assert {id(p) for p in recognizer.trainable_parameters()} == {
        id(p) for p in recognizer.heads["B"].parameters()
    }
    recognizer(X).sum().backward()
    for name, p in recognizer.named_parameters():
        if name.startswith("heads.B."):
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        else:
            assert not p.requires_grad and p.grad is None, name


def test_state_dict_round_trip_and_odd_sizes():
    recognizer = DegradationRecognizer(width=4)
    for letter in ("C", "N"):
        recognizer.add_letter(letter)
    copy = DegradationRecognizer.from_state_dict(recognizer.state_dict())
    assert copy.letters == ("C", "N") and copy.width == 4
    for shape in ((2, 1, 24, 20), (1, 1, 1, 1), (1, 1, 7, 13)):
        x = images(*shape, seed=2)
        assert torch.equal(copy(x), recognizer(x))
        assert torch.isfinite(copy(x)).all()
    with pytest.raises(TaskStateError, match="has a head for 'C' already"):
        recognizer.add_letter("C")
    with pytest.raises(TaskStateError, match="no letter yet"):
        DegradationRecognizer()(X)
    with pytest.raises(InvalidInputError, match="`width` must be a positive int; got 0"):
        DegradationRecognizer(width=0)


def _reference_route(p, letters, tasks):
    """Brute force: the probability of each candidate letter set, the largest wins."""
    best, best_p = None, -1.0
    for candidate in [None, *tasks]:
        parts = () if candidate is None else parse_task(candidate)
        prob = 1.0
        for letter, q in zip(letters, p, strict=True):
            q = min(max(q, 1e-6), 1 - 1e-6)
            prob *= q if letter in parts else 1 - q
        if prob > best_p * (1 + 1e-12):
            best, best_p = candidate, prob
    return best


LETTERS = ("C", "B", "N")
SEQUENCE = ("C", "B", "N", "CB", "CN", "BN", "CBN")


@pytest.mark.parametrize(
    "present, tasks, expected",
    [
        ("CB", SEQUENCE, "CB"),  # exact match
        ("CBN", SEQUENCE, "CBN"),
        ("", SEQUENCE, None),  # nothing recognized: left as is
        ("N", SEQUENCE, "N"),
        ("CBN", ("C", "B", "N", "CB"), "CB"),  # N least sure: drop it
        ("BN", ("C", "B", "N", "CB"), "B"),  # N least sure; CB would add C too
        ("CN", ("C", "B", "N"), "C"),  # C surer than N
    ],
)
def test_routing_table(present, tasks, expected):
    # confidence differs per letter: C surest, then B, then N
    confidence = {"C": 0.95, "B": 0.85, "N": 0.75}
    p = [confidence[x] if x in present else 1 - confidence[x] for x in LETTERS]
    assert route(torch.tensor([p]), LETTERS, tasks) == [expected]
    assert _reference_route(p, LETTERS, tasks) == expected


def test_route_matches_the_brute_force_and_routes_exact_sets_to_themselves():
    g = torch.Generator().manual_seed(0)
    p = torch.rand(400, 3, generator=g)
    for tasks in (SEQUENCE, ("C", "B", "N", "CB"), ("B", "N", "BN")):
        routed = route(p, LETTERS, tasks)
        for row, got in zip(p.tolist(), routed, strict=True):
            assert got == _reference_route(row, LETTERS, tasks)
            present = "".join(x for x, q in zip(LETTERS, row, strict=True) if q >= 0.5)
            if present in tasks:
                assert got == present
            elif not present:
                assert got is None


def test_route_errors():
    with pytest.raises(InvalidInputError, match=r"one column per letter \['C', 'B'\]"):
        route(torch.rand(2, 3), ["C", "B"], ["C"])
    with pytest.raises(InvalidInputError, match=r"task 'CN' needs a head for \['N'\]"):
        route(torch.rand(2, 2), ["C", "B"], ["C", "CN"])


def test_evaluation_counts_every_test_image_once():
    recognizer = DegradationRecognizer(width=4)
    for letter in ("C", "B"):
        recognizer.add_letter(letter)
    tests = {
        t: make_dataset(None, t, split="test", crop_size=16, length=3, seed=0)
        for t in ("C", "B", "CB")
    }
    result = evaluate_recognition(recognizer, tests, ["C", "B", "CB"])
    assert result["rows"] == ["C", "B", "CB", CLEAN]
    assert result["columns"] == ["C", "B", "CB", CLEAN]
    assert [sum(r) for r in result["confusion"]] == [3, 3, 3, 3]
    for i, row in enumerate(result["rows"]):
        own = result["columns"].index(row)
        assert result["per_task"][row]["routed"] == pytest.approx(result["confusion"][i][own] / 3)
    # an image whose recognized letters are exactly its learned task is routed to it
    for row in ("C", "B", "CB"):
        assert result["per_task"][row]["exact"] <= result["per_task"][row]["routed"]
    assert set(itertools.chain.from_iterable(r["letter"] for r in result["per_task"].values())) == {
        "C",
        "B",
    }
