"""Weights files and the built-in model: export, safe loading, the same bytes from the same
training, the restore command without --checkpoint, and the package data that ships it."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import sepkit_torch
from sepkit_torch.checkpoint import DEFAULT_WEIGHTS, VERSION, WEIGHTS_KIND
from sepkit_torch.data import degrade, quantize, thermal_scene
from sepkit_torch.pipeline import CheckpointError, PipelineConfig, run
from sepkit_torch.pipeline.cli import main as pipeline_main
from sepkit_torch.pipeline.weights import export_weights
from sepkit_torch.restore_cli import main as restore_main

from .conftest import images

ROOT = Path(__file__).resolve().parents[2]
TASKS = ("C", "B", "CB")


def smoke(folder: Path, **overrides) -> PipelineConfig:
    return PipelineConfig.from_preset(
        "smoke", out=str(folder), tasks=overrides.pop("tasks", TASKS), **overrides
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("weights") / "run"
    run(smoke(out), progress=False)
    return out


def test_export_keeps_what_restoring_needs(finished, tmp_path):
    path = export_weights(finished, tmp_path / "w.pt")
    data = torch.load(path, weights_only=True)
    assert sorted(data) == ["config", "kind", "model", "recognizer", "tasks", "version"]
    assert data["kind"] == WEIGHTS_KIND and data["tasks"] == list(TASKS)
    assert data["config"]["preset"] == "smoke" and "out" not in data["config"]
    assert path.stat().st_size < (finished / "checkpoint.pt").stat().st_size
    from_run, from_file = sepkit_torch.load(finished), sepkit_torch.load(path)
    x = images(2, 1, 28, 36, seed=4)
    assert torch.equal(from_run(x, task="CB"), from_file(x, task="CB"))
    assert [v.probabilities for v in from_run.recognize(x)] == [
        v.probabilities for v in from_file.recognize(x)
    ]
    assert from_file.source.startswith(str(path)) and "preset smoke" in from_file.source


def test_the_same_training_exported_anywhere_is_the_same_file(finished, tmp_path):
    again = tmp_path / "elsewhere"
    run(smoke(again), progress=False)
    a = export_weights(finished, tmp_path / "a.pt").read_bytes()
    b = export_weights(again, tmp_path / "b.pt").read_bytes()
    assert a == b
    other_seed = tmp_path / "seed"
    run(smoke(other_seed, seed=1), progress=False)
    assert export_weights(other_seed, tmp_path / "c.pt").read_bytes() != a


def test_the_builtin_models_recipe_remakes_the_same_bytes(tmp_path):
    # what `make weights` relies on: the cpu preset's recipe, degradations and recognizer
    # mode, run twice, export the same file
    cpu = PipelineConfig.from_preset("cpu")
    same = {k: getattr(cpu, k) for k in ("recipe", "degradation_preset", "recognizer")}
    files = []
    for name in ("a", "b"):
        run(smoke(tmp_path / name, tasks=("C", "B"), **same), progress=False)
        files.append(export_weights(tmp_path / name, tmp_path / f"{name}.pt").read_bytes())
    assert files[0] == files[1]


def test_export_refuses_what_is_not_a_finished_ecmrnet_run(finished, tmp_path, capsys):
    unfinished = tmp_path / "unfinished"
    run(smoke(unfinished), progress=False, stop_after="B:train")
    with pytest.raises(CheckpointError, match=r"has not finished: .* from 'B:prune'"):
        export_weights(unfinished, tmp_path / "w.pt")
    assert pipeline_main(["export", str(unfinished), "--out", str(tmp_path / "w.pt")]) == 2
    assert "--resume" in capsys.readouterr().err and not (tmp_path / "w.pt").exists()
    baseline = tmp_path / "baseline"
    run(smoke(baseline, tasks=("C",), method="finetune"), progress=False)
    with pytest.raises(CheckpointError, match="NAFNet baseline 'finetune'"):
        export_weights(baseline, tmp_path / "w.pt")
    weights = export_weights(finished, tmp_path / "ok.pt")
    with pytest.raises(CheckpointError, match="a weights file already"):
        export_weights(weights, tmp_path / "w.pt")
    with pytest.raises(FileNotFoundError, match="`run` must be a run folder"):
        export_weights(tmp_path, tmp_path / "w.pt")
    assert pipeline_main(["export", str(finished), "--out", str(tmp_path / "cli.pt")]) == 0
    assert "sha256" in capsys.readouterr().out


# ----------------------------------------------------------------------------- built in


def test_the_builtin_model_is_small_safe_and_complete():
    assert DEFAULT_WEIGHTS.is_file() and DEFAULT_WEIGHTS.stat().st_size < 5_000_000
    data = torch.load(DEFAULT_WEIGHTS, weights_only=True)
    assert data["kind"] == WEIGHTS_KIND and data["config"]["preset"] == "cpu"
    restorer = sepkit_torch.load()
    assert restorer.source.startswith("built-in default model")
    assert "CBN" in restorer.routable and set(restorer.recognizer.letters) == {"C", "B", "N"}
    # the settings it was trained with are the cpu preset's (the documented command)
    cpu = PipelineConfig.from_preset("cpu").to_dict()
    # its recognizer was retrained in the preset's "mixtures" mode, with thresholds
    assert data["config"]["recognizer"] == "mixtures"
    assert {k: cpu[k] for k in data["config"]} == data["config"]
    thresholds = restorer.recognizer.thresholds
    assert set(thresholds) == {"C", "B", "N"} and all(0 < t < 1 for t in thresholds.values())
    # written by the current format, by `make weights` (the cpu preset's run, exported)
    assert data["version"] == VERSION


def test_the_package_ships_the_builtin_weights():
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["sepkit_torch"]
    relative = DEFAULT_WEIGHTS.relative_to(ROOT / "sepkit_torch").as_posix()
    assert any(fnmatch.fnmatch(relative, pattern) for pattern in package_data)


def test_restore_without_checkpoint_uses_the_builtin_model(tmp_path, capsys):
    clean = thermal_scene((64, 80), 3, style="detailed")
    degraded = quantize(degrade(clean, "CBN", 5, preset="broad"))
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray((degraded[0].numpy() * 255).round().astype(np.uint8)).save(folder / "f.png")
    assert restore_main([str(folder), "--out", str(tmp_path / "out"), "--task", "CBN"]) == 0
    printed = capsys.readouterr().out
    assert "model: built-in default model" in printed and "f.png: task CBN" in printed
    restored = np.asarray(Image.open(tmp_path / "out" / "f.png"), dtype=np.float64) / 255
    expected = sepkit_torch.load()(degraded, task="CBN")[0].numpy()
    assert np.abs(restored - expected).max() <= 0.5 / 255 + 1e-6
