"""The run layer under hostile input: unsafe checkpoints, other people's folders, broken
settings and files. Nothing may run code from a file, lose a user's work, or end in a
traceback where an ``error: ...`` line is due."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import sepkit_torch
import sepkit_torch.metrics as metrics
from sepkit_torch.__main__ import main as package_main
from sepkit_torch.pipeline import (
    CheckpointError,
    ConfigError,
    PipelineConfig,
    RunFolderError,
    run,
)
from sepkit_torch.pipeline.cli import main as pipeline_main
from sepkit_torch.pipeline.state import CHECKPOINT, load_checkpoint
from sepkit_torch.training import TrainingDivergedError


def smoke(out, **overrides) -> PipelineConfig:
    return PipelineConfig.from_preset("smoke", out=str(out), tasks=("C",), **overrides)


class Payload:
    """A pickled object that, once built, writes a file: what an attack would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "ran"))


@pytest.fixture
def malicious(tmp_path) -> tuple[Path, Path]:
    """A run folder whose checkpoint carries the payload among plain entries."""
    run_dir, marker = tmp_path / "evil", tmp_path / "marker.txt"
    run_dir.mkdir()
    torch.save({"version": 2, "model": {}, "done": [], "x": Payload(marker)}, run_dir / CHECKPOINT)
    return run_dir, marker


def test_a_malicious_checkpoint_is_refused_and_runs_nothing(malicious, tmp_path, capsys):
    run_dir, marker = malicious
    with pytest.raises(CheckpointError, match="objects other than tensors and plain data"):
        load_checkpoint(run_dir / CHECKPOINT)
    with pytest.raises(CheckpointError, match="could run code"):
        sepkit_torch.load(run_dir)
    image = tmp_path / "in.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    code = package_main(
        ["restore", str(image), "--checkpoint", str(run_dir), "--out", str(tmp_path / "o")]
    )
    assert code == 2 and "error:" in capsys.readouterr().err
    (run_dir / "config.json").write_text("{}")
    code = pipeline_main(
        ["--preset", "smoke", "--tasks", "C", "--out", str(run_dir), "--resume", "--quiet"]
    )
    assert code == 2 and "could run code" in capsys.readouterr().err
    assert not marker.exists()


def test_a_folder_of_someone_elses_files_is_refused_then_left_alone(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "report.md").write_text("my thesis notes")
    (out / "data.csv").write_text("1,2,3")
    foreign = r"holds files this project did not write \(\['data.csv', 'report.md'\]\)"
    with pytest.raises(RunFolderError, match=foreign):
        run(smoke(out), progress=False)
    assert (out / "report.md").read_text() == "my thesis notes"
    # with overwrite the run writes its own files; other files stay
    run(smoke(out), overwrite=True, progress=False, stop_after="pretrain")
    assert (out / "data.csv").read_text() == "1,2,3" and (out / CHECKPOINT).is_file()


def test_overwrite_keeps_the_old_run_until_the_new_one_has_a_stage(tmp_path, monkeypatch):
    out = tmp_path / "run"
    run(smoke(out), progress=False, stop_after="pretrain")
    before = (out / CHECKPOINT).read_bytes()
    with pytest.raises(Exception, match="folder"):  # bad data: found before anything runs
        run(smoke(out, data=str(tmp_path / "missing")), overwrite=True, progress=False)
    assert (out / CHECKPOINT).read_bytes() == before

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sepkit_torch.pipeline.strategy_base, "fit", crash)
    with pytest.raises(KeyboardInterrupt):  # killed inside its first stage
        run(smoke(out, seed=3), overwrite=True, progress=False)
    assert (out / CHECKPOINT).read_bytes() == before
    assert load_checkpoint(out / CHECKPOINT)["config"]["seed"] == 0


def test_a_run_killed_before_its_first_stage_can_simply_start_again(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")  # what an earlier version left after an early kill
    run(smoke(out), progress=False, stop_after="pretrain")
    out2 = tmp_path / "run2"
    out2.mkdir()
    (out2 / "config.json").write_text("{}")
    run(smoke(out2), resume=True, progress=False, stop_after="pretrain")
    assert load_checkpoint(out2 / CHECKPOINT)["done"] == ["pretrain"]


def test_resume_follows_the_folder_not_the_spelling_of_its_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run(smoke("runs/s"), progress=False, stop_after="pretrain")
    run(smoke("./runs/s/"), resume=True, progress=False, stop_after="C:train")
    os.rename("runs/s", "moved")
    report = run(smoke(tmp_path / "moved"), resume=True, progress=False)
    assert report.tasks == ["C"]


@pytest.mark.parametrize("lr", [float("inf"), 1e30, float("nan"), 0.0, -1e-3])
def test_learning_rates_that_make_no_sense_are_refused(tmp_path, lr):
    with pytest.raises(ConfigError, match=r"`lr` must be a number in \(0, 1\]"):
        smoke(tmp_path, lr=lr)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"seed": 2**70}, r"`seed` must be <= "),
        ({"batch_size": 0}, r"`batch_size` must be >= 1"),
        ({"device": "tpu"}, r"`device` must be 'cpu', 'cuda' or 'cuda:N'; got 'tpu'"),
        ({"degradation_preset": "harsh"}, r"`degradation_preset` must be one of"),
        ({"model": "huge"}, r"`model` must be one of \['paper', 'tiny'\]"),
    ],
)
def test_settings_out_of_range_are_refused(tmp_path, overrides, match):
    with pytest.raises(ConfigError, match=match):
        smoke(tmp_path, **overrides)


def test_a_diverging_loss_stops_with_a_named_error_and_keeps_the_last_checkpoint(
    tmp_path, monkeypatch
):
    out = tmp_path / "run"
    run(smoke(out), progress=False, stop_after="pretrain")
    real = metrics.LOSSES["paper"]
    monkeypatch.setitem(metrics.LOSSES, "paper", lambda a, b: real(a, b) * float("nan"))
    with pytest.raises(TrainingDivergedError, match="the training loss became nan"):
        run(smoke(out), resume=True, progress=False)
    assert load_checkpoint(out / CHECKPOINT)["done"] == ["pretrain"]


def _error(capsys, code) -> str:
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert "Traceback" not in captured.err
    return captured.err


def test_command_line_errors_are_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "run"
    run(smoke(out), progress=False, stop_after="pretrain")
    args = ["--preset", "smoke", "--tasks", "C", "--quiet"]
    # a truncated checkpoint
    data = (out / CHECKPOINT).read_bytes()
    (out / CHECKPOINT).write_bytes(data[: len(data) // 2])
    err = _error(capsys, pipeline_main([*args, "--out", str(out), "--resume"]))
    assert "error:" in err and "truncated" in err
    # the checkpoint is a folder
    (out / CHECKPOINT).unlink()
    (out / CHECKPOINT).mkdir()
    assert "is a folder" in _error(capsys, pipeline_main([*args, "--out", str(out), "--resume"]))
    # a device that does not exist, in both commands
    assert "`device` must be" in _error(
        capsys, pipeline_main([*args, "--out", str(tmp_path / "d"), "--device", "tpu"])
    )
    image = tmp_path / "in.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    fresh = tmp_path / "fresh"
    run(smoke(fresh), progress=False)
    restore = ["restore", str(image), "--checkpoint", str(fresh), "--out", str(tmp_path / "o")]
    assert "`device` must be" in _error(capsys, package_main([*restore, "--device", "tpu"]))
    # --config pointing to a folder
    assert "is a folder" in _error(
        capsys, pipeline_main(["--config", str(tmp_path), "--out", str(tmp_path / "c")])
    )


def test_a_read_only_out_folder_is_an_error_before_training(tmp_path, capsys):
    if os.geteuid() == 0:  # root writes anywhere: make the path impossible instead
        locked = tmp_path / "file" / "run"
        (tmp_path / "file").write_text("a file, not a folder")
    else:
        (tmp_path / "ro").mkdir()
        os.chmod(tmp_path / "ro", stat.S_IRUSR | stat.S_IXUSR)
        locked = tmp_path / "ro" / "run"
    args = ["--preset", "smoke", "--tasks", "C", "--quiet", "--out", str(locked)]
    assert "not a writable folder" in _error(capsys, pipeline_main(args))


def test_a_baseline_run_given_to_restore_says_what_it_is(tmp_path, capsys):
    out = tmp_path / "nafnet"
    run(smoke(out, method="finetune"), progress=False, stop_after="pretrain")
    with pytest.raises(ValueError, match="run of the NAFNet baseline 'finetune'"):
        sepkit_torch.load(out)


def test_written_files_follow_the_umask(tmp_path, capsys):
    old = os.umask(0o022)
    try:
        out = tmp_path / "run"
        run(smoke(out), progress=False)
        image = tmp_path / "in.png"
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
        code = package_main(
            [
                "restore",
                str(image),
                "--checkpoint",
                str(out),
                "--out",
                str(tmp_path / "o"),
                "--task",
                "C",
                "--quiet",
            ]
        )
        assert code == 0
    finally:
        os.umask(old)
    for path in (
        out / CHECKPOINT,
        out / "config.json",
        out / "report.md",
        tmp_path / "o" / "in.png",
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
