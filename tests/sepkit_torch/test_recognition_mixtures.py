"""The ``mixtures`` recognizer: mild-strength mixtures, calibrated thresholds, retraining."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import sepkit_torch
import sepkit_torch.continual.recognition as recognition
from sepkit_torch import ECMRNet, InvalidInputError
from sepkit_torch.checkpoint import load_checkpoint, save_checkpoint
from sepkit_torch.continual.recognition import (
    MILD_ENDS,
    calibrate_letter,
    calibrate_threshold,
    mild_kwargs,
    route,
    train_letter,
    verdicts,
)
from sepkit_torch.data import (
    degrade,
    make_dataset,
    quantize,
    register_degradation,
    task_name,
)
from sepkit_torch.data.registry import BUILTIN_PRESETS
from sepkit_torch.inference import Restorer
from sepkit_torch.models import DegradationRecognizer
from sepkit_torch.pipeline import PipelineConfig, run
from sepkit_torch.pipeline.cli import main
from sepkit_torch.pipeline.data import calibration_frames
from sepkit_torch.pipeline.recognition_stage import retrain_recognizer
from sepkit_torch.pipeline.weights import retrain_weights

from .conftest import images

X = images(6, 1, 24, 20, seed=1)


def _logit(p):
    return math.log(p / (1 - p))


# ----------------------------------------------------------------------------- calibration


def test_calibration_picks_the_cut_that_separates_a_constructed_set():
    negatives = [-5.0, -4.0, -3.5, -3.0]
    positives = [-2.0, -1.0, 0.5, 3.0]  # all below 0: an uncalibrated head says "absent"
    threshold = calibrate_threshold(negatives + positives, [0] * 4 + [1] * 4)
    assert _logit(threshold) == pytest.approx(-2.5)  # midway between -3 and -2
    assert all(x >= _logit(threshold) for x in positives)
    assert all(x < _logit(threshold) for x in negatives)
    # and the other way round: positives far above 0, negatives too
    threshold = calibrate_threshold([1.0, 2.0, 4.0, 6.0], [0, 0, 1, 1])
    assert _logit(threshold) == pytest.approx(3.0)


def test_calibration_maximises_balanced_accuracy_not_accuracy():
    # 20 negatives in [-4, 1.9], 2 positives at 1.0 and 2.0: plain accuracy cuts above
    # the negatives' top (1.95, losing the positive at 1.0, 21 of 22 right); balanced
    # accuracy keeps both positives (cut at 0.xx, a few negatives lost)
    negatives = [-4.0 + 0.3 * i for i in range(20)]  # -4.0 ... 1.7
    logits = negatives + [1.0, 2.0]
    labels = [0] * 20 + [1, 1]
    cut = _logit(calibrate_threshold(logits, labels))
    x = torch.tensor(logits)
    y = torch.tensor(labels).bool()

    def balanced(t):
        hit = x >= t
        return float(((hit & y).sum() / y.sum() + (~hit & ~y).sum() / (~y).sum()) / 2)

    grid = [v - 1e-3 for v in logits] + [v + 1e-3 for v in logits]
    assert balanced(cut) == pytest.approx(max(balanced(t) for t in grid))
    assert cut <= 1.0  # both positives kept


def test_calibration_ties_go_to_the_cut_nearest_the_uncalibrated_one():
    # every cut between the classes separates them; only the gap holds 0
    assert calibrate_threshold([-1.0, 1.0], [0, 1]) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "logits, labels, message",
    [
        ([0.1, 0.2], [1, 1], r"`labels` must be 0 or 1, with both present; got values \[1\]"),
        ([0.1, 0.2], [0, 2], r"`labels` must be 0 or 1, with both present; got values \[0, 2\]"),
        ([0.1], [0, 1], "`logits` and `labels` must be non-empty and of one length; got 1 and 2"),
        ([float("nan"), 0.0], [0, 1], "`logits` must be finite"),
    ],
)
def test_calibration_errors(logits, labels, message):
    with pytest.raises(InvalidInputError, match=message):
        calibrate_threshold(logits, labels)


# ----------------------------------------------------------------------------- thresholds


def _recognizer(letters=("C", "B", "N")):
    torch.manual_seed(0)
    recognizer = DegradationRecognizer(width=4)
    for letter in letters:
        recognizer.add_letter(letter)
    return recognizer.eval()


def test_thresholds_survive_a_checkpoint_round_trip(tmp_path):
    recognizer = _recognizer()
    recognizer.set_threshold("B", 0.2)
    recognizer.set_threshold("N", 0.75)
    path = save_checkpoint(tmp_path / "r.pt", {"recognizer": recognizer.state_dict()})
    data = torch.load(path, weights_only=True)  # plain data and tensors only
    copy = DegradationRecognizer.from_state_dict(data["recognizer"])
    assert copy.thresholds == {"B": 0.2, "N": 0.75}
    assert torch.equal(copy.probabilities(X), recognizer.probabilities(X))
    assert load_checkpoint(path)["recognizer"]["_extra_state"]["format"] == 2


def test_a_recognizer_without_thresholds_saves_and_scores_as_before():
    recognizer = _recognizer()
    state = recognizer.state_dict()["_extra_state"]
    assert state == {"format": 1, "width": 4, "letters": ["C", "B", "N"]}
    assert torch.equal(recognizer.probabilities(X), torch.sigmoid(recognizer(X)))
    # a threshold set and removed again leaves the recognizer as it was
    recognizer.set_threshold("C", 0.3)
    assert not torch.equal(recognizer.probabilities(X), torch.sigmoid(recognizer(X)))
    recognizer.set_threshold("C", None)
    assert recognizer.state_dict()["_extra_state"] == state


def test_a_threshold_moves_its_letters_boundary_only():
    recognizer = _recognizer()
    raw = torch.sigmoid(recognizer(X)).detach()
    tau = float(raw[:, 1].median())  # half the images on each side of B's threshold
    recognizer.set_threshold("B", tau)
    p = recognizer.probabilities(X)
    assert torch.equal(p[:, 0], raw[:, 0]) and torch.equal(p[:, 2], raw[:, 2])
    assert torch.equal(p[:, 1] >= 0.5, raw[:, 1] >= tau)
    assert torch.allclose(p[:, 1], torch.sigmoid(recognizer(X)[:, 1] - _logit(tau)))


def test_routing_follows_the_calibrated_thresholds():
    # raw probabilities: C 0.9, B 0.3, N 0.95: uncalibrated, the image goes to CN
    raw = torch.tensor([[0.9, 0.3, 0.95]])
    letters, tasks = ("C", "B", "N"), ("C", "N", "B", "CB", "CN", "BN", "CBN")
    assert route(raw, letters, tasks) == ["CN"]
    recognizer = _recognizer()
    recognizer.set_threshold("B", 0.2)  # B's head calibrated low: 0.3 means "present"
    p = torch.sigmoid(recognizer.decision_logits(torch.logit(raw.double()).float()))
    (verdict,) = verdicts(p, letters, tasks, 0.5)
    assert verdict.task == "CBN" and verdict.letters == ("C", "B", "N")


def test_the_restorer_routes_by_the_calibrated_thresholds_untiled_and_tiled():
    torch.manual_seed(0)
    model = ECMRNet.from_preset("tiny")
    for task, parts in (("C", None), ("B", None), ("CB", ["C", "B"])):
        model.add_task(task, parts=parts)
    recognizer = _recognizer(("C", "B"))
    x = images(1, 1, 48, 64, seed=4)
    for tile in (1024, 32):
        restorer = Restorer(model, recognizer, tile=tile, overlap=8)
        before = restorer.recognize(x)[0].probabilities
        recognizer.set_threshold("B", before["B"] * 0.99)  # just below B's reading
        after = restorer.recognize(x)[0]
        assert after.probabilities["C"] == before["C"]
        assert after.probabilities["B"] >= 0.5 and "B" in after.letters
        recognizer.set_threshold("B", min(before["B"] * 1.01, 0.999))  # just above
        assert "B" not in restorer.recognize(x)[0].letters
        recognizer.set_threshold("B", None)


@pytest.mark.parametrize(
    "letter, value, message",
    [
        ("D", 0.3, r"`letter` must be one of the recognizer's letters \['C', 'B', 'N'\]; got 'D'"),
        ("B", 0.0, "`threshold` of 'B' must be a probability strictly between 0 and 1; got 0.0"),
        ("B", 1, "strictly between 0 and 1; got 1"),
        ("B", "0.3", "strictly between 0 and 1; got '0.3'"),
        ("B", True, "strictly between 0 and 1; got True"),
    ],
)
def test_threshold_errors(letter, value, message):
    with pytest.raises(InvalidInputError, match=message):
        _recognizer().set_threshold(letter, value)


# ----------------------------------------------------------------------------- mixtures


def test_mild_kwargs_cut_each_range_at_its_mild_end():
    for preset in ("ecmrnet", "ppfn", "broad"):
        for letter, ends in MILD_ENDS.items():
            full = BUILTIN_PRESETS[letter][preset]
            for share in (0.25, 0.5, 1.0):
                mild = mild_kwargs(letter, preset, share)
                assert set(mild) == set(full)
                for key, value in full.items():
                    if key not in ends:
                        assert mild[key] == value, (letter, key)
                        continue
                    lo, hi = value
                    a, b = mild[key]
                    assert lo <= a <= b <= hi
                    if ends[key] == "low":
                        assert a == lo and b - a == pytest.approx((hi - lo) * share, abs=0.5)
                    else:
                        assert b == hi and b - a == pytest.approx((hi - lo) * share, abs=0.5)
                    if isinstance(lo, int) and isinstance(hi, int):
                        assert isinstance(a, int) and isinstance(b, int)
                if share == 1.0:
                    assert mild == dict(full)
    assert mild_kwargs("D", "broad", 0.5) == dict(BUILTIN_PRESETS["D"]["broad"])  # no ends


@pytest.mark.parametrize("share", [0, -0.5, 1.5, "half", True])
def test_mild_share_errors(share):
    with pytest.raises(
        InvalidInputError, match=r"`mild` must be a share of the ranges in \(0, 1\]"
    ):
        mild_kwargs("B", "broad", share)


@pytest.fixture
def recorded():
    from sepkit_torch.data import registry

    saved = dict(registry._REGISTRY)
    calls: list[tuple[str, dict]] = []
    for name in ("C", "B", "N"):
        original = saved[name]

        def fn(image, generator, _name=name, _fn=original.fn, **kwargs):
            calls.append((_name, kwargs))
            return _fn(image, generator, **kwargs)

        register_degradation(name, fn, order=original.order, presets=original.presets, replace=True)
    yield calls
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)


def test_mixtures_draw_the_letter_mild_and_the_contexts_full(recorded):
    clean = images(64, 1, 16, 16, seed=3)
    degraded = clean.clone()  # the pairs without contexts are taken as they are
    g = torch.Generator().manual_seed(0)
    positives, negatives = recognition._with_contexts(
        degraded, clean, "B", ("C", "N"), "broad", g, 0.5
    )
    assert positives.shape == negatives.shape == clean.shape
    own = [kw for name, kw in recorded if name == "B"]
    others = [(name, kw) for name, kw in recorded if name != "B"]
    assert own and others
    for kw in own:  # the letter: sigma from the mild half of 1-3, kernel sizes kept
        assert kw == {"kernel_size": (7, 23), "sigma": (1.0, 2.0)}
    for name, kw in others:  # the contexts: their full broad ranges
        assert kw == dict(BUILTIN_PRESETS[name]["broad"]), name
    # about 3/4 of the 64 pairs get contexts (each of two letters with probability 1/2)
    assert 32 <= len(own) <= 60


def test_mixture_strengths_applied_are_in_the_mild_range():
    # C on constant images: y = a x + b, so b = y(0) and a = y(1) - y(0) (same draws)
    for seed in range(20):
        ys = []
        for value in (0.0, 1.0):
            clean = torch.full((1, 1, 8, 8), value)
            g = torch.Generator().manual_seed(seed)
            ys.append(
                float(recognition._degrade_around(clean, "C", ["B"], "broad", g, 0.5)[0, 0, 4, 4])
            )
        a, b = ys[1] - ys[0], ys[0] * 255
        assert 0.5 - 1e-5 <= a <= 0.8 + 1e-5 and 25.5 - 1e-3 <= b <= 63.75 + 1e-3


def test_without_mild_the_context_mode_trains_as_before(monkeypatch):
    data = make_dataset(None, "B", split="train", crop_size=16, length=8, seed=3)

    def train():
        recognizer = DegradationRecognizer(width=4)
        train_letter(recognizer, "B", data, epochs=1, batch_size=4, contexts=["C"], seed=2)
        return recognizer(X)

    current = train()

    def reference(degraded, clean, letter, contexts, preset, g, mild=None):
        # the context mode's pairs as they were before the mixtures mode
        assert mild is None
        positives, negatives = [], []
        for d, c in zip(degraded, clean, strict=True):
            chosen = [x for x in contexts if float(torch.rand((), generator=g)) < 0.5]
            if chosen:
                positives.append(
                    quantize(degrade(c, task_name([*chosen, letter]), g, preset=preset))
                )
                negatives.append(quantize(degrade(c, task_name(chosen), g, preset=preset)))
            else:
                positives.append(quantize(d))
                negatives.append(quantize(c))
        return torch.stack(positives), torch.stack(negatives)

    monkeypatch.setattr(recognition, "_with_contexts", reference)
    assert torch.equal(train(), current)


def test_calibrate_letter_sets_the_threshold_from_validation_frames():
    recognizer = DegradationRecognizer(width=4)
    data = make_dataset(None, "N", split="train", crop_size=16, length=8, seed=3)
    train_letter(recognizer, "N", data, epochs=1, batch_size=4, contexts=["C"], mild=0.5)
    frames = list(images(6, 1, 24, 24, seed=5))
    result = calibrate_letter(
        recognizer, "N", frames, contexts=["C"], preset="broad", mild=0.5, seed=1
    )
    assert result["n"] == 12 and recognizer.thresholds == {"N": result["threshold"]}
    ba = result["balanced_accuracy"]
    assert ba["after"] >= ba["before"]
    # the same frames and seed give the same threshold
    again = calibrate_letter(
        recognizer, "N", frames, contexts=["C"], preset="broad", mild=0.5, seed=1
    )
    assert again == result
    with pytest.raises(InvalidInputError, match=r"`letter` must be one of .*\['N'\]; got 'B'"):
        calibrate_letter(recognizer, "B", frames)
    with pytest.raises(InvalidInputError, match="`frames` must hold at least one frame; got 0"):
        calibrate_letter(recognizer, "N", [])


# ----------------------------------------------------------------------------- the pipeline


def _smoke(tmp_path, name="run", **overrides):
    return PipelineConfig.from_preset(
        "smoke",
        out=str(tmp_path / name),
        tasks=overrides.pop("tasks", ("C", "B", "CB")),
        **overrides,
    )


def test_calibration_frames_are_fixed_and_apart_from_training_and_test():
    config = PipelineConfig.from_preset("smoke", frame_size=(32, 40), tasks=("C",))
    frames = calibration_frames(config, 3)
    assert [tuple(f.shape) for f in frames] == [(1, 32, 40)] * 3
    assert all(
        torch.equal(a, b) for a, b in zip(frames, calibration_frames(config, 3), strict=True)
    )
    assert calibration_frames(config, 2)[1].equal(frames[1])  # frame i depends on i only
    other = calibration_frames(PipelineConfig.from_preset("smoke", tasks=("C",)), 2)
    assert other[0].shape == (1, config.test_size, config.test_size)


def test_a_mixtures_run_calibrates_each_head_and_keeps_the_restorer(tmp_path):
    config = _smoke(tmp_path, recognizer="mixtures")
    report = run(config, progress=False)
    rec = report.recognizer
    assert rec["mode"] == "mixtures" and set(rec["calibration"]) == {"C", "B"}
    restorer = sepkit_torch.load(config.out)
    assert restorer.recognizer.thresholds == pytest.approx(
        {k: v["threshold"] for k, v in rec["calibration"].items()}, abs=1e-6
    )
    assert "Thresholds: C " in (Path(config.out) / "report.md").read_text()
    # the restorer does not depend on the recognizer's mode
    context = run(_smoke(tmp_path, "context"), progress=False)
    assert report.metrics == context.metrics
    assert context.recognizer.get("calibration") is None
    # retraining the run's recognizer gives its heads and thresholds bit for bit
    again, info = retrain_recognizer(config)
    saved = load_checkpoint(Path(config.out) / "checkpoint.pt")["recognizer"]
    for key, value in again.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, saved[key]), key
        else:
            assert value == saved[key]
    assert info["calibration"] == rec["calibration"]


def test_the_recognizer_command_retrains_and_writes_weights(tmp_path, capsys):
    config = _smoke(tmp_path)
    run(config, progress=False)
    # retraining the context run's own mode gives its heads bit for bit, without thresholds
    again, _ = retrain_recognizer(config, evaluate=False)
    saved = load_checkpoint(Path(config.out) / "checkpoint.pt")["recognizer"]
    assert again.state_dict()["_extra_state"] == saved["_extra_state"]
    for key, value in again.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, saved[key]), key
    out = tmp_path / "mixtures.pt"
    assert main(["recognizer", config.out, "--out", str(out), "--mode", "mixtures", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "recognizer mixtures" in printed and "| true \\ routed |" in printed
    new, old = sepkit_torch.load(out), sepkit_torch.load(config.out)
    assert set(new.recognizer.thresholds) == {"C", "B"} and not old.recognizer.thresholds
    for key, value in old.model.state_dict().items():  # the restorer as it was
        same = new.model.state_dict()[key]
        assert torch.equal(value, same) if isinstance(value, torch.Tensor) else value == same
    settings = load_checkpoint(out)["config"]
    assert settings["recognizer"] == "mixtures" and settings["recognizer_epochs"] == 1
    # a weights file retrains too, with the run's own mode by default
    again, info = retrain_weights(out, tmp_path / "again.pt")
    assert info["mode"] == "mixtures"
    assert sepkit_torch.load(again).recognizer.thresholds == new.recognizer.thresholds
    # errors: no run, a mode that trains nothing
    assert main(["recognizer", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.pt")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["recognizer", config.out, "--out", str(out), "--mode", "none"])
    none = _smoke(tmp_path, "none", recognizer="none")
    run(none, progress=False)
    assert main(["recognizer", none.out, "--out", str(tmp_path / "y.pt")]) == 2
    assert "`config.recognizer` must be one of ['context', 'pairs', 'mixtures']" in (
        capsys.readouterr().err
    )
