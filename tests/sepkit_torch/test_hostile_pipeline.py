"""The pipeline's settings, ``--resume``, ``export`` and its command line under hostile
input: every bad value ends in an error naming the setting, what was expected and what was
received, before any training or writing; no input is lost. (``restore``, ``load`` and the
Restorer: test_hostile_restore.py.)"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sepkit_torch import ECMRNet, InvalidInputError, TaskStateError
from sepkit_torch.continual.pruning import CRITERIA, METHODS, TIES, select_groups
from sepkit_torch.distributed import DistContext
from sepkit_torch.pipeline import CheckpointError, ConfigError, PipelineConfig, run
from sepkit_torch.pipeline import runner as runner_module
from sepkit_torch.pipeline.cli import main as pipeline_main
from sepkit_torch.pipeline.config import check_processes
from sepkit_torch.pipeline.state import CHECKPOINT, load_checkpoint, save_checkpoint
from sepkit_torch.pipeline.weights import export_weights, retrain_weights

from .test_hostile_restore import _png_header


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


def test_a_threshold_the_budget_would_override_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"sep_rho=0\.2, .*sep_budget=0\.3 .*`rho` would be"):
        smoke(tmp_path, prune=True, sep_budget=0.3, sep_rho=0.2)
    smoke(tmp_path, prune=True, sep_budget=0.3)  # the default threshold: nothing to ignore


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


@pytest.mark.parametrize("entry", ["run", "compare"])
def test_a_dict_of_settings_is_named_not_an_attribute_error(tmp_path, entry):
    from sepkit_torch.pipeline import compare

    settings_ = {"preset": "smoke", "out": str(tmp_path / "run")}
    call = run if entry == "run" else compare
    with pytest.raises(TypeError, match=r"`config` must be a PipelineConfig .*; got dict"):
        call(settings_)
    assert not (tmp_path / "run").exists()
