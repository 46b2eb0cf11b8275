"""The pipeline's settings, ``--resume``, ``restore``, ``load`` and the command lines under
hostile input: every bad value ends in an error naming the setting, what was expected and
what was received, before any training or writing; no input is lost."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sepkit_torch import ECMRNet, InvalidInputError
from sepkit_torch.continual.pruning import CRITERIA, METHODS, TIES, select_groups
from sepkit_torch.distributed import DistContext
from sepkit_torch.pipeline import CheckpointError, ConfigError, PipelineConfig, run
from sepkit_torch.pipeline import runner as runner_module
from sepkit_torch.pipeline.cli import main as pipeline_main
from sepkit_torch.pipeline.config import check_processes
from sepkit_torch.pipeline.state import CHECKPOINT, load_checkpoint, save_checkpoint


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
        ({"config": {"lr": 1.0, "unknown": 2}}, r"does not hold this run's settings"),
    ],
)
def test_resume_refuses_a_checkpoint_that_does_not_hold_its_run(
    trained_run, tmp_path, changes, match
):
    out, config = _fresh(trained_run, tmp_path)
    stamp = _tamper(out, **changes)
    _refused_untouched(out, config, stamp, match)


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
