"""The pipeline's settings, ``--resume``, ``restore``, ``load`` and the command lines under
hostile input: every bad value ends in an error naming the setting, what was expected and
what was received, before any training or writing; no input is lost."""

from __future__ import annotations

import itertools
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import sepkit_torch
from sepkit_torch import ECMRNet, ImageFileError, InvalidInputError, TaskStateError
from sepkit_torch.__main__ import main as package_main
from sepkit_torch.checkpoint import WEIGHTS_KIND
from sepkit_torch.continual.pruning import CRITERIA, METHODS, TIES, select_groups
from sepkit_torch.data import read_image
from sepkit_torch.data.image_io import write_grey
from sepkit_torch.distributed import DistContext
from sepkit_torch.inference import Restorer
from sepkit_torch.models.recognizer import DegradationRecognizer
from sepkit_torch.pipeline import CheckpointError, ConfigError, PipelineConfig, run
from sepkit_torch.pipeline import runner as runner_module
from sepkit_torch.pipeline.cli import main as pipeline_main
from sepkit_torch.pipeline.config import check_processes
from sepkit_torch.pipeline.state import CHECKPOINT, load_checkpoint, save_checkpoint
from sepkit_torch.pipeline.weights import export_weights, retrain_weights


def smoke(out, **overrides) -> PipelineConfig:
    """The smallest run: no pruning or recognizer unless asked (a few seconds)."""
    settings_ = dict(tasks=("C",), prune=False, recognizer="none", out=str(out))
    return PipelineConfig.from_preset("smoke", **{**settings_, **overrides})


def _error(capsys, code) -> str:
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert "Traceback" not in captured.err
    return captured.err


# ----------------------------------------------------------------------------- SEP settings


def _prune_step_refuses(method, tie, criterion, budget, split) -> str | None:
    """What the prune step itself says of these settings: its error, or None (it goes on
    to the pool, which is empty here)."""
    model = ECMRNet.from_preset("tiny")
    model.add_task("C")
    try:
        select_groups(
            model,
            "C",
            [],
            method=method,
            tie=tie,
            criterion=criterion,
            budget=budget,
            reduce=(lambda counts: counts) if split else None,
        )
    except InvalidInputError as err:
        if "empty pool" in str(err):
            return None
        return str(err)
    raise AssertionError("an empty pool must be refused")


COMBINATIONS = list(itertools.product(METHODS, TIES, CRITERIA, (None, 0.3)))


@pytest.mark.parametrize("method, tie, criterion, budget", COMBINATIONS)
def test_the_config_refuses_exactly_what_the_prune_step_refuses(
    tmp_path, method, tie, criterion, budget
):
    settings_ = dict(sep_method=method, sep_tie=tie, sep_criterion=criterion, sep_budget=budget)
    refused = _prune_step_refuses(method, tie, criterion, budget, split=False)
    if refused is None:
        config = smoke(tmp_path, prune=True, **settings_)
        check_processes(config, 1)
    else:
        with pytest.raises(ConfigError) as info:
            smoke(tmp_path, prune=True, **settings_)
        message = str(info.value)
        assert f"sep_tie={tie!r}" in message and f"sep_criterion={criterion!r}" in message
        assert f"sep_method={method!r}" in message and refused in message
    # several processes: the prune step also refuses a budget (checked before training)
    split = _prune_step_refuses(method, tie, criterion, budget, split=True)
    if refused is None and split is not None:
        with pytest.raises(ConfigError, match=r"sep_budget=0\.3 on a run of several processes"):
            check_processes(smoke(tmp_path, prune=True, **settings_), 2)
    elif refused is None:
        check_processes(smoke(tmp_path, prune=True, **settings_), 2)


def test_the_combination_of_the_issue_is_refused_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--preset", "smoke", "--tasks", "C", "--quiet", "--out", str(out)]
    code = pipeline_main(
        [*args, "--set", "sep_tie=published", "--set", "sep_criterion=contribution"]
    )
    err = _error(capsys, code)
    assert "sep_tie='published'" in err and "sep_criterion='contribution'" in err
    assert 'criterion="published"' in err
    assert not out.exists()


def test_budget_and_refit_on_several_processes_are_refused_before_the_first_stage(tmp_path):
    ctx = DistContext(rank=0, world_size=2)
    for overrides, match in [
        (dict(sep_budget=0.3), r"sep_budget=0\.3 on a run of several processes .*one process"),
        (dict(sep_compensate=True), r"`sep_compensate` refits the exits .* 2 processes"),
        (dict(method="ewc", prune=False), r"`method` 'ewc' runs in one process only"),
    ]:
        config = smoke(tmp_path / "run", **{"prune": True, **overrides})
        with pytest.raises(ConfigError, match=match):
            runner_module._run(config, ctx, False, False, False, None)
        assert not (tmp_path / "run").exists()
    # without pruning, nothing of SEP runs: nothing to refuse
    check_processes(smoke(tmp_path, prune=False), 2)


@pytest.mark.parametrize("setting", [dict(sep_budget=0.3), dict(sep_compensate=True)])
def test_sep_settings_that_would_be_ignored_are_refused(tmp_path, setting):
    ((name, value),) = setting.items()
    with pytest.raises(ConfigError, match=rf"`prune` is false.*{name}={value!r}"):
        smoke(tmp_path, prune=False, **setting)


# ----------------------------------------------------------------------------- command line


@pytest.mark.parametrize("tasks", ["", ",", "C,,B", " , C"])
def test_an_empty_task_name_is_an_error_not_the_default_sequence(tmp_path, capsys, tasks):
    out = tmp_path / "run"
    err = _error(capsys, pipeline_main(["--preset", "smoke", "--tasks", tasks, "--out", str(out)]))
    assert f"`--tasks` must be task names separated by commas; got {tasks!r}" in err
    assert not out.exists()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["C", "B", "N", "", " ", "CB"]), min_size=1, max_size=5))
def test_tasks_are_read_as_written_or_refused(names):
    from sepkit_torch.pipeline.cli import _tasks

    text = ",".join(names)
    if any(not n.strip() for n in names):
        with pytest.raises(ConfigError, match="`--tasks` must be task names"):
            _tasks(text)
    else:
        assert _tasks(text) == [n.strip() for n in names]


@pytest.mark.parametrize("name", ["out", "data", "examples"])
@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_folder_name_is_refused_not_the_current_folder(tmp_path, name, value):
    with pytest.raises(ConfigError, match=rf"`{name}` must name a folder; got {value!r}"):
        PipelineConfig.from_preset("smoke", **{"out": str(tmp_path), name: value})


def test_out_empty_on_the_command_line_writes_nothing_here(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = _error(capsys, pipeline_main(["--preset", "smoke", "--tasks", "C", "--out", ""]))
    assert "`out` must name a folder; got ''" in err
    assert list(tmp_path.iterdir()) == []


def test_set_none_unsets_a_budget_set_in_a_config_file(tmp_path, capsys, monkeypatch):
    toml = tmp_path / "run.toml"
    toml.write_text('preset = "smoke"\nsep_budget = 0.3\nloss = "code"\n')
    from sepkit_torch.pipeline import cli

    seen = {}

    def capture(config, **options):
        seen["config"] = config
        raise ConfigError("stop here")  # nothing needs to train

    monkeypatch.setattr(cli, "run", capture)
    _error(capsys, pipeline_main(["--config", str(toml), "--set", "sep_budget=none"]))
    assert seen["config"].sep_budget is None and seen["config"].loss == "code"
    _error(capsys, pipeline_main(["--config", str(toml), "--set", "loss=none"]))
    assert seen["config"].loss is None and seen["config"].sep_budget == 0.3
    # `none` is a value only where a setting may be None
    err = _error(capsys, pipeline_main(["--config", str(toml), "--set", "lr=none"]))
    assert "`lr` must be float; got 'none' (str)" in err


# ----------------------------------------------------------------------------- resume


def _tamper(out: Path, **changes) -> float:
    """Rewrite the run's checkpoint with `changes`; returns its modification time."""
    saved = load_checkpoint(out / CHECKPOINT)
    saved.pop("version")
    save_checkpoint(out / CHECKPOINT, {**saved, **changes})
    return os.stat(out / CHECKPOINT).st_mtime_ns


def _refused_untouched(out, config, stamp, match) -> None:
    with pytest.raises(CheckpointError, match=match):
        run(config, resume=True, progress=False)
    assert os.stat(out / CHECKPOINT).st_mtime_ns == stamp


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> tuple[Path, bytes]:
    """A run of two tasks stopped after C was pruned: its checkpoint's bytes."""
    out = tmp_path_factory.mktemp("trained") / "run"
    run(
        smoke(out, tasks=("C", "B"), prune=True, finetune_epochs=0),
        progress=False,
        stop_after="C:evaluate",
    )
    return out, (out / CHECKPOINT).read_bytes()


def _fresh(trained_run, tmp_path) -> tuple[Path, PipelineConfig]:
    source, data = trained_run
    out = tmp_path / "run"
    out.mkdir()
    (out / CHECKPOINT).write_bytes(data)
    return out, smoke(out, tasks=("C", "B"), prune=True, finetune_epochs=0)


def test_resume_refuses_a_model_without_the_tasks_it_lists_before_training(trained_run, tmp_path):
    out, config = _fresh(trained_run, tmp_path)
    torch.manual_seed(0)
    stamp = _tamper(out, model=ECMRNet.from_preset("tiny").state_dict())
    _refused_untouched(
        out,
        config,
        stamp,
        r"lists the stages \[.*'C:train'.*\] as done, but its model "
        r"holds the tasks \[\]: it cannot be resumed",
    )


def test_resume_refuses_a_path_of_another_size_than_the_report_says(trained_run, tmp_path):
    out, config = _fresh(trained_run, tmp_path)
    saved = load_checkpoint(out / CHECKPOINT)
    report = saved["report"]
    after = report["pruning"]["C"]["groups_after"]
    report["pruning"]["C"]["groups_after"] = [g + 1 for g in after]
    stamp = _tamper(out, report=report)
    _refused_untouched(out, config, stamp, r"the path of 'C' has groups .* not .* as pruned")


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"done": ["pretrain", "C:prune"]}, r"lists the stages done \['pretrain', 'C:prune'\]"),
        ({"done": "pretrain"}, r"lists the stages done 'pretrain'; a run of these settings"),
        ({"report": {"tasks": 1}}, r"does not hold this run's report"),
        ({"model": {"w": torch.zeros(1)}}, r"does not hold this run's ECMRNet model and state"),
        ({"config": ["lr", 1.0]}, r"does not hold this run's settings"),
    ],
)
def test_resume_refuses_a_checkpoint_that_does_not_hold_its_run(
    trained_run, tmp_path, changes, match
):
    out, config = _fresh(trained_run, tmp_path)
    stamp = _tamper(out, **changes)
    _refused_untouched(out, config, stamp, match)


def test_resume_refuses_a_model_with_nan_weights(trained_run, tmp_path):
    out, config = _fresh(trained_run, tmp_path)
    model = load_checkpoint(out / CHECKPOINT)["model"]
    name = next(k for k, v in model.items() if k.startswith("branches.C") and k.endswith("weight"))
    model[name] = torch.full_like(model[name], float("inf"))
    stamp = _tamper(out, model=model)
    _refused_untouched(
        out, config, stamp, rf"holds a model with NaN or infinite weights \(model\.{name}"
    )


def test_resume_refuses_a_report_that_lost_its_tasks(trained_run, tmp_path):
    out, config = _fresh(trained_run, tmp_path)
    report = load_checkpoint(out / CHECKPOINT)["report"]
    stamp = _tamper(out, report={**report, "tasks": []})
    _refused_untouched(out, config, stamp, r"but its report has learned the tasks \[\]")


def test_a_recognizer_missing_from_a_run_that_trained_one_is_refused(tmp_path):
    out = tmp_path / "run"
    config = smoke(out, recognizer="pairs", recognizer_epochs=0)
    run(config, progress=False, stop_after="C:recognize")
    stamp = _tamper(out, recognizer=None)
    _refused_untouched(out, config, stamp, r"its recognizer knows the letters \[\]")


def test_a_regularized_run_without_its_regulariser_is_refused(tmp_path):
    out = tmp_path / "run"
    config = smoke(out, tasks=("C", "B"), method="ewc", strength=1.0)
    run(config, progress=False, stop_after="C:train")
    stamp = _tamper(out, regularizer=None)
    _refused_untouched(out, config, stamp, r"it holds no ewc regulariser state")


def test_an_intact_run_still_resumes(trained_run, tmp_path):
    out, config = _fresh(trained_run, tmp_path)
    report = run(config, resume=True, progress=False, stop_after="B:train")
    assert report.tasks == ["C", "B"]


# ----------------------------------------------------------------------------- restore


def _png_header(width: int, height: int) -> bytes:
    """A valid PNG whose header claims `width` x `height` pixels (its data is tiny)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def _model(seed: int = 0) -> ECMRNet:
    torch.manual_seed(seed)
    model = ECMRNet.from_preset("tiny")
    model.add_task("C")
    return model


def _weights(path: Path, model: ECMRNet) -> Path:
    payload = {"kind": WEIGHTS_KIND, "model": model.state_dict(), "recognizer": None}
    save_checkpoint(path, {**payload, "tasks": list(model.task_names), "config": {}})
    return path


@pytest.fixture
def frames(tmp_path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    g = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(g.integers(0, 255, (40, 36), dtype=np.uint8)).save(folder / f"f{i}.png")
    return folder


def _restore(*args) -> int:
    return package_main(["restore", *map(str, args), "--task", "C", "--quiet"])


def test_restore_never_writes_over_its_inputs(tmp_path, frames, capsys):
    weights = _weights(tmp_path / "w.pt", _model())
    before = {p: p.read_bytes() for p in frames.iterdir()}
    for out in (frames, tmp_path / "link"):
        if out.name == "link":
            out.symlink_to(frames)  # the same folder under another name
        code = _restore(frames, "--out", out, "--overwrite", "--checkpoint", weights)
        err = _error(capsys, code)
        assert "would write over 3 input image(s)" in err and "f0.png" in err
    # one file given alone, its own folder as --out, without --overwrite
    code = _restore(frames / "f1.png", "--out", frames, "--checkpoint", weights)
    assert "would write over 1 input image(s)" in _error(capsys, code)
    assert {p: p.read_bytes() for p in frames.iterdir()} == before


def test_restore_into_an_existing_file_is_named(tmp_path, frames, capsys):
    (tmp_path / "taken").write_text("mine")
    weights = _weights(tmp_path / "w.pt", _model())
    err = _error(capsys, _restore(frames, "--out", tmp_path / "taken", "--checkpoint", weights))
    assert f"`--out` must be a folder; {str(tmp_path / 'taken')!r} is a file" in err
    assert "Errno" not in err and (tmp_path / "taken").read_text() == "mine"


@pytest.mark.parametrize(
    "size, match", [(100_000, "exceeds limit"), (10_000, "claims 10000 x 10000 pixels")]
)
def test_an_oversized_image_is_reported_and_the_others_restored(
    tmp_path, frames, capsys, size, match
):
    (frames / "f1_huge.png").write_bytes(_png_header(size, size))
    weights = _weights(tmp_path / "w.pt", _model())
    code = _restore(frames, "--out", tmp_path / "out", "--checkpoint", weights)
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    assert "f1_huge.png" in captured.err and match in captured.err
    assert "3 restored, 1 failed" in captured.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f0.png", "f1.png", "f2.png"]
    # the data sets' reader refuses it the same way
    with pytest.raises(ImageFileError, match="f1_huge.png"):
        read_image(frames / "f1_huge.png")


def test_nan_weights_are_refused_when_loaded(tmp_path, frames, capsys):
    model = _model()
    with torch.no_grad():
        model.branches["C"].e1.exit.weight[0, 0, 0, 0] = float("nan")
    weights = _weights(tmp_path / "nan.pt", model)
    with pytest.raises(CheckpointError, match=r"model with NaN or infinite weights \(model\."):
        sepkit_torch.load(weights)
    err = _error(capsys, _restore(frames, "--out", tmp_path / "out", "--checkpoint", weights))
    assert "NaN or infinite weights" in err and not (tmp_path / "out").exists()


def test_a_restoration_that_is_not_finite_fails_loudly(tmp_path, frames, capsys):
    model = _model()
    with torch.no_grad():  # finite weights whose output overflows float32
        for p in model.branches["C"].parameters():
            p.fill_(3e38)
    restorer = Restorer(model)
    with pytest.raises(InvalidInputError, match="gives NaN or infinite values"):
        restorer(np.full((24, 24), 0.5, np.float32), task="C")
    weights = _weights(tmp_path / "big.pt", model)
    code = _restore(frames, "--out", tmp_path / "out", "--checkpoint", weights)
    captured = capsys.readouterr()
    assert code == 1 and "3 restored" not in captured.err and "0 restored, 3 failed" in captured.err
    assert "f0.png: the model of task 'C'" in captured.err
    assert not any((tmp_path / "out").glob("*.png"))


def test_a_file_restore_cannot_write_is_reported_before_restoring(tmp_path, capsys):
    image = tmp_path / "frame.bmp"
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(image)
    weights = _weights(tmp_path / "w.pt", _model())
    code = _restore(image, "--out", tmp_path / "out", "--checkpoint", weights)
    captured = capsys.readouterr()
    assert code == 1 and "got the ending '.bmp'" in captured.err
    with pytest.raises(ImageFileError, match=r"got the ending '\.bmp'"):
        write_grey(tmp_path / "x.bmp", np.zeros((4, 4), np.uint8))


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_a_channels_last_image_is_refused_not_restored_as_a_stack(channels, kind):
    image = np.random.default_rng(0).random((48, 64, channels)).astype(np.float32)
    image = image if kind == "numpy" else torch.from_numpy(image)
    with pytest.raises(InvalidInputError, match=rf"shape \(48, 64, {channels}\) looks like an"):
        Restorer(_model()).restore(image, "C")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=2, max_size=4))
def test_a_restored_image_keeps_its_shape_or_is_refused_by_name(shape):
    image = np.random.default_rng(1).random(shape).astype(np.float32)
    try:
        out, routes = RESTORER.restore(image, "C")
    except InvalidInputError as err:
        assert "`image`" in str(err)
        assert len(shape) == 3 and shape[-1] in (1, 3, 4) or len(shape) == 4 and shape[1] != 1
        return
    assert out.shape == image.shape and out.dtype == image.dtype
    assert len(routes) == (1 if len(shape) == 2 else shape[0])
    assert np.isfinite(out).all()


RESTORER = Restorer(_model())


# ----------------------------------------------------------------------------- load


@pytest.mark.parametrize("value", [123, 1.5, b"runs/demo", ["runs/demo"]])
def test_load_names_a_checkpoint_that_is_not_a_path(value):
    with pytest.raises(TypeError, match=r"`checkpoint` must be a path \(str or os.PathLike\)"):
        sepkit_torch.load(value)


def test_load_refuses_an_empty_name_rather_than_the_current_folder():
    with pytest.raises(CheckpointError, match="`checkpoint` must name a file or folder; got ''"):
        sepkit_torch.load("")


@settings(max_examples=20, deadline=None)
@given(st.binary(min_size=0, max_size=300))
def test_random_bytes_are_not_a_checkpoint_and_not_called_code(data):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "weights.pt"
        path.write_bytes(data)
        with pytest.raises(CheckpointError) as info:
            sepkit_torch.load(path)
    message = str(info.value)
    assert "could run code" not in message
    assert "not a readable sepkit_torch checkpoint" in message


# ----------------------------------------------------------------------------- more of the run


@pytest.mark.parametrize("layout", ["missing", "no-hard", "unpaired"])
def test_a_bad_examples_folder_is_refused_before_training(tmp_path, layout):
    examples = tmp_path / "examples"
    if layout != "missing":
        (examples / "imgs").mkdir(parents=True)
        if layout == "unpaired":
            (examples / "hard").mkdir()
            Image.fromarray(np.zeros((24, 24), np.uint8)).save(examples / "hard" / "a.png")
    out = tmp_path / "run"
    match = r"have none" if layout == "unpaired" else r"must hold the folders imgs/ and hard/"
    with pytest.raises(InvalidInputError, match=match):
        run(smoke(out, examples=str(examples), examples_task="C"), progress=False)
    assert not out.exists()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    run(smoke(out), progress=False)
    return out


def test_export_never_writes_over_the_run_and_names_a_folder(finished_run, tmp_path, capsys):
    before = (finished_run / CHECKPOINT).read_bytes()
    for target, match in [
        (finished_run / CHECKPOINT, r"`out` .* is the file read .* choose another file"),
        (tmp_path, r"`out` must be a file to write; .* is a folder"),
        ("", r"`out` must name the weights file to write; got ''"),
    ]:
        with pytest.raises(CheckpointError, match=match):
            export_weights(finished_run, target)
        code = pipeline_main(["export", str(finished_run), "--out", str(target)])
        assert "error: `out`" in _error(capsys, code)
    assert (finished_run / CHECKPOINT).read_bytes() == before
    weights = export_weights(finished_run, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="is the file read"):
        retrain_weights(weights, weights)  # refused before the recognizer trains


def test_export_refuses_a_run_with_nan_weights(finished_run, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / CHECKPOINT).write_bytes((finished_run / CHECKPOINT).read_bytes())
    model = load_checkpoint(out / CHECKPOINT)["model"]
    name = next(k for k, v in model.items() if k.startswith("branches.C") and k.endswith("weight"))
    model[name] = torch.full_like(model[name], float("nan"))
    _tamper(out, model=model)
    with pytest.raises(CheckpointError, match=rf"NaN or infinite weights \(model\.{name}"):
        export_weights(out, tmp_path / "w.pt")
    assert not (tmp_path / "w.pt").exists()


def test_an_oversized_image_in_a_data_folder_is_named_before_training(tmp_path, capsys):
    data = tmp_path / "clean"
    data.mkdir()
    for i in range(4):
        Image.fromarray(np.full((32, 32), 40 * i, np.uint8)).save(data / f"c{i}.png")
    (data / "c9.png").write_bytes(_png_header(100_000, 100_000))
    out = tmp_path / "run"
    code = pipeline_main(
        ["--preset", "smoke", "--tasks", "C", "--data", str(data), "--out", str(out), "--quiet"]
    )
    err = _error(capsys, code)
    assert "c9.png" in err and "exceeds limit" in err
    assert not out.exists()


def test_resume_and_overwrite_together_are_refused(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--preset", "smoke", "--tasks", "C", "--out", str(out), "--resume", "--overwrite"]
    err = _error(capsys, pipeline_main(args))
    assert "--resume continues the run in --out and --overwrite replaces it" in err
    assert not out.exists()


@pytest.mark.parametrize("threshold", ["0.5", None, True, float("nan"), 1.0])
def test_a_threshold_that_is_not_a_number_in_0_1_is_named(threshold):
    with pytest.raises(InvalidInputError, match=r"`threshold` must be a number in \(0, 1\)"):
        Restorer(_model(), threshold=threshold)


def _weights_with(path: Path, **changes) -> Path:
    model = _model()
    recognizer = DegradationRecognizer()
    recognizer.add_letter("C")
    payload = {"kind": WEIGHTS_KIND, "model": model.state_dict(), "tasks": ["C"], "config": {}}
    payload["recognizer"] = recognizer.state_dict()
    save_checkpoint(path, {**payload, **changes})
    return path


def _without(state: dict, prefix: str) -> dict:
    return {k: v for k, v in state.items() if not k.startswith(prefix)}


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(model=_without(_model().state_dict(), "branches.C.e1")), r"model that does not "),
        (dict(model={}), r"holds no ECMRNet model"),
        (dict(tasks=["B"]), r"lists the tasks \['B'\], but its model holds \['C'\]"),
        (dict(tasks="C"), r"lists the tasks 'C', but its model holds \['C'\]"),
        (dict(recognizer={"x": torch.zeros(1)}), r"holds a recognizer that does not load"),
    ],
)
def test_a_weights_file_whose_parts_do_not_fit_is_named(tmp_path, capsys, changes, match):
    weights = _weights_with(tmp_path / "w.pt", **changes)
    with pytest.raises(CheckpointError, match=match):
        sepkit_torch.load(weights)
    image = tmp_path / "in.png"
    Image.fromarray(np.zeros((24, 24), np.uint8)).save(image)
    err = _error(capsys, _restore(image, "--out", tmp_path / "out", "--checkpoint", weights))
    assert str(weights) in err


def test_sep_settings_may_change_until_a_prune_stage_is_done(tmp_path):
    """The issue's lost training: a run saved with a combination the prune step refuses
    (as an older version accepted it) resumes with the fixed setting, and ends as a run
    started with it."""
    fixed = dict(tasks=("C",), prune=True, finetune_epochs=0, sep_tie="random")
    out = tmp_path / "run"
    run(smoke(out, **{**fixed, "sep_tie": "index"}), progress=False, stop_after="C:train")
    saved = load_checkpoint(out / CHECKPOINT)
    bad = {**saved["config"], "sep_tie": "published", "sep_criterion": "contribution"}
    _tamper(out, config=bad, report={**saved["report"], "config": bad})
    resumed = run(smoke(out, **fixed), resume=True, progress=False)
    fresh = run(smoke(tmp_path / "fresh", **fixed), progress=False)
    assert _comparable(resumed) == _comparable(fresh)
    assert resumed.config["sep_tie"] == "random"
    # once a prune stage is done, its settings are the run's
    with pytest.raises(TaskStateError, match=r"other settings \(sep_tie: \['random'\] there"):
        run(smoke(out, **{**fixed, "sep_tie": "index"}), resume=True, progress=False)


def _comparable(report) -> dict:
    """A report without its timings and its folder."""
    data = report.to_dict()
    data.pop("seconds")
    data["config"].pop("out")
    for p in data["pruning"].values():
        p.pop("seconds")
    return data


def test_a_saved_setting_this_version_does_not_know_is_named(trained_run, tmp_path):
    out, config = _fresh(trained_run, tmp_path)
    saved = load_checkpoint(out / CHECKPOINT)
    stamp = _tamper(out, config={**saved["config"], "sep_magic": 3})
    with pytest.raises(TaskStateError, match=r"other settings \(sep_magic: \[3\] there, \[None\]"):
        run(config, resume=True, progress=False)
    assert os.stat(out / CHECKPOINT).st_mtime_ns == stamp


def test_folder_settings_take_a_path_and_config_files_a_path(tmp_path):
    config = PipelineConfig.from_preset("smoke", out=tmp_path / "run", data=tmp_path)
    assert (config.out, config.data) == (str(tmp_path / "run"), str(tmp_path))
    assert config == PipelineConfig.from_preset(
        "smoke", out=str(tmp_path / "run"), data=str(tmp_path)
    )
    for value in (123, "", None):
        with pytest.raises(ConfigError, match=r"`config` must be the path of a TOML file"):
            PipelineConfig.from_toml(value)


@pytest.mark.parametrize("dtype", [">u2", "<u2", ">u1", ">f4", ">f8"])
def test_an_image_of_either_byte_order_restores_as_the_native_one(dtype):
    native = np.dtype(dtype).newbyteorder("=")
    top = 65535 if native.itemsize == 2 and native.kind == "u" else 255
    values = np.random.default_rng(2).integers(0, top, (20, 18))
    values = values / top if native.kind == "f" else values
    image = values.astype(dtype)
    out = RESTORER(image, task="C")
    assert out.dtype == image.dtype
    np.testing.assert_array_equal(out, RESTORER(values.astype(native), task="C"))


def test_a_multi_page_file_is_reported_not_cut_to_its_first_page(tmp_path, capsys):
    pages = [Image.fromarray(np.full((24, 24), v, np.uint8)) for v in (10, 200)]
    stack = tmp_path / "in" / "stack.tif"
    stack.parent.mkdir()
    pages[0].save(stack, save_all=True, append_images=pages[1:])
    pages[0].save(tmp_path / "in" / "single.tif")
    weights = _weights(tmp_path / "w.pt", _model())
    code = _restore(tmp_path / "in", "--out", tmp_path / "out", "--checkpoint", weights)
    captured = capsys.readouterr()
    assert code == 1 and "stack.tif' holds 2 frames" in captured.err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["single.tif"]


@pytest.mark.parametrize("entry", ["run", "compare"])
def test_a_dict_of_settings_is_named_not_an_attribute_error(tmp_path, entry):
    from sepkit_torch.pipeline import compare

    settings_ = {"preset": "smoke", "out": str(tmp_path / "run")}
    call = run if entry == "run" else compare
    with pytest.raises(TypeError, match=r"`config` must be a PipelineConfig .*; got dict"):
        call(settings_)
    assert not (tmp_path / "run").exists()
