"""The task-sequence pipeline: end to end, resume, atomic checkpoints, config errors."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch

import sepkit_torch
import sepkit_torch.checkpoint as checkpoint_module
import sepkit_torch.pipeline.strategies as strategies_module
from sepkit_torch import ECMRNet, TaskStateError
from sepkit_torch.continual.pruning import group_parameters
from sepkit_torch.data import thermal_scene
from sepkit_torch.pipeline import CheckpointError, PipelineConfig, run, train_set
from sepkit_torch.pipeline import test_set as fixed_test_set
from sepkit_torch.pipeline.cli import main
from sepkit_torch.pipeline.data import SEED_STREAMS, stage_seed, validation_set
from sepkit_torch.pipeline.report import write_report
from sepkit_torch.pipeline.state import KEYS, load_checkpoint, prepare_folder, save_checkpoint

TASKS = ("C", "B", "CB")


def smoke(tmp_path, name="run", **overrides) -> PipelineConfig:
    return PipelineConfig.from_preset(
        "smoke", out=str(tmp_path / name), tasks=overrides.pop("tasks", TASKS), **overrides
    )


def _comparable(report) -> dict:
    data = report.to_dict()
    data.pop("seconds")
    data["config"].pop("out")
    for p in data["pruning"].values():
        p.pop("seconds")
    return data


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    config = smoke(tmp)
    return config, run(config, progress=False)


def test_end_to_end_writes_the_report(full_run):
    config, report = full_run
    out = config.out
    for name in (
        "report.json",
        "report.md",
        "config.json",
        "checkpoint.pt",
        "metric_matrix.png",
        "model_size.png",
        "restored_strip.png",
    ):
        assert (tmp := Path(out) / name).is_file(), tmp
    data = json.loads((Path(out) / "report.json").read_text())
    assert data["tasks"] == list(TASKS)
    assert [len(row) for row in data["metrics"]] == [1, 2, 3]
    assert set(data["pruning"]) == set(TASKS)
    for p in data["pruning"].values():
        assert p["after_pruning"]["activated_params"] <= p["before"]["activated_params"]
    md = (Path(out) / "report.md").read_text()
    assert "Accuracy matrix" in md and "SEP pruning" in md
    saved = json.loads((Path(out) / "config.json").read_text())
    assert saved == config.to_dict()
    ckpt = load_checkpoint(Path(out) / "checkpoint.pt")
    assert ckpt["done"][-1] == "CB:recognize"
    assert set(ckpt) == set(KEYS)  # tensors and plain data only: no random states, no optimizer
    assert ckpt["recognizer"]["_extra_state"]["letters"] == ["C", "B"]


def test_the_recognizer_grows_with_the_sequence(full_run):
    config, report = full_run
    rec = report.recognizer
    assert rec["mode"] == "context" and rec["letters"] == ["C", "B"]
    assert list(rec["after"]) == list(TASKS) and set(rec["loss"]) == {"C", "B"}
    assert rec["after"]["C"]["columns"] == ["C", "clean"]
    final = rec["after"]["CB"]
    assert final["rows"] == ["C", "B", "CB", "clean"]
    assert [sum(r) for r in final["confusion"]] == [config.test_length] * 4
    assert rec["params"] > 0 and rec["macs"] > 0
    assert "Degradation recognizer" in (Path(config.out) / "report.md").read_text()


def test_without_the_recognizer_the_restorer_is_the_same(tmp_path, full_run):
    _, with_recognizer = full_run
    config = smoke(tmp_path, recognizer="none")
    report = run(config, progress=False)
    assert report.recognizer == {} and not any(s.endswith(":recognize") for s in report.seconds)
    assert report.metrics == with_recognizer.metrics
    assert load_checkpoint(Path(config.out) / "checkpoint.pt")["recognizer"] is None


def test_a_run_restores_blind_and_by_task(full_run):
    config, _ = full_run
    restorer = sepkit_torch.load(config.out)
    assert restorer.tasks == TASKS and restorer.routable == TASKS
    degraded = thermal_scene(24, 0)
    model = restorer.model
    with torch.no_grad():
        by_model = model(degraded[None], task="CB").clamp(0, 1)[0]
    assert torch.equal(restorer(degraded, task="CB"), by_model)
    restored, routes = restorer.restore(degraded)
    assert restored.shape == degraded.shape and routes[0] in (*TASKS, None)


def test_no_forgetting_end_to_end(full_run):
    _, report = full_run
    for j in range(len(TASKS)):
        scores = [row[j] for row in report.metrics[j:]]
        assert all(s == scores[0] for s in scores), (TASKS[j], scores)
    assert all(v == 0 for v in report.forgetting().values())


def test_kill_and_resume_gives_the_same_report(tmp_path, full_run):
    _, uninterrupted = full_run
    config = smoke(tmp_path)
    partial = run(config, progress=False, stop_after="B:prune")
    assert partial.tasks == ["C", "B"] and not (tmp_path / "run" / "report.md").exists()
    resumed = run(config, resume=True, progress=False)
    assert _comparable(resumed) == _comparable(uninterrupted)


def test_resume_can_append_tasks(tmp_path):
    first = smoke(tmp_path, tasks=("C",))
    run(first, progress=False)
    longer = smoke(tmp_path, tasks=("C", "N"))
    report = run(longer, resume=True, progress=False)
    assert report.tasks == ["C", "N"] and len(report.metrics) == 2


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"done": ["pretrain"]})

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"done": ["pretrain", "C:train"]})
    monkeypatch.undo()
    assert load_checkpoint(path)["done"] == ["pretrain"]
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary left behind


def test_checkpoint_of_another_version_is_refused(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"version": 0}, path)
    with pytest.raises(CheckpointError, match="format version 0"):
        load_checkpoint(path)


def test_stage_seeds_never_collide():
    """Every stage name (long custom ones too) and stream gets its own seed; version 2
    gave ``C+stripes:train`` and ``C+stripes:prune`` (first 8 bytes and length equal) one."""
    config = smoke(Path("unused"))
    steps = ("train", "prune", "finetune", "evaluate", "recognize", "consolidate")
    tasks = ["C", "B", "N", "CB", "CN", "BN", "CBN", "C+stripes", "C+haze", "joint"]
    tasks += [f"C+custom_degradation_{i:04d}" for i in range(400)]
    tasks += [f"{'x' * n}" for n in range(1, 60)]
    names = ["pretrain", "tune"] + [f"{t}:{s}" for t in tasks for s in steps]
    seeds = {
        (name, stream): stage_seed(config, name, stream)
        for name in names
        for stream in SEED_STREAMS
    }
    assert len(names) > 2_500
    assert len(set(seeds.values())) == len(seeds)
    assert stage_seed(config, "C+stripes:train") != stage_seed(config, "C+stripes:prune")
    # a function of (seed, stage, stream) only
    assert stage_seed(smoke(Path("elsewhere")), "C:train") == stage_seed(config, "C:train")
    assert stage_seed(smoke(Path("unused"), seed=1), "C:train") != stage_seed(config, "C:train")
    with pytest.raises(ValueError, match=r"`stream` must be one of \['data'"):
        stage_seed(config, "C:train", "noise")


def test_a_run_of_an_earlier_version_is_not_resumed(tmp_path):
    """A version-2 checkpoint (other stage seeds) is refused for resuming, and still
    readable for its model."""
    config = smoke(tmp_path, tasks=("C",))
    run(config, progress=False, stop_after="pretrain")
    path = Path(config.out) / "checkpoint.pt"
    data = load_checkpoint(path)
    save_checkpoint(path, data | {"version": 2})
    assert load_checkpoint(path)["version"] == 2
    with pytest.raises(CheckpointError, match=r"earlier sepkit_torch \(checkpoint version 2\)"):
        run(config, resume=True, progress=False)
    run(config, overwrite=True, progress=False, stop_after="pretrain")
    assert load_checkpoint(path)["version"] == checkpoint_module.VERSION == 3


def test_out_folder_with_a_run_is_not_overwritten(tmp_path):
    config = smoke(tmp_path, tasks=("C",))
    run(config, progress=False, stop_after="pretrain")
    with pytest.raises(TaskStateError, match="already holds a run"):
        run(config, progress=False)
    other = smoke(tmp_path, tasks=("C",), seed=5)
    with pytest.raises(TaskStateError, match=r"other settings \(seed"):
        run(other, resume=True, progress=False)
    run(other, overwrite=True, progress=False, stop_after="pretrain")


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"epochs": "many"}, r"`epochs` must be int; got 'many'"),
        ({"tasks": ["CB", "C", "B"]}, r"compound task 'CB' must come after its parts"),
        ({"tasks": ["C", "C"]}, r"lists 'C' twice"),
        ({"tasks": ["X"]}, r"unknown degradation"),
        ({"sep_rho": 0.0}, r"`sep_rho` must be a number in \(0, 1\]; got 0.0"),
        ({"sep_budget": 1.0}, r"`sep_budget` must be None or a share .* in \(0, 1\); got 1.0"),
        ({"sep_budget": "half"}, r"`sep_budget` must be float; got 'half'"),
        ({"sep_compensate": 1}, r"`sep_compensate` must be bool; got 1"),
        ({"skmm": "big"}, r"`skmm` must be one of"),
        (
            {"recognizer": "yes"},
            r"`recognizer` must be one of \['context', 'pairs', 'mixtures', 'none'\]",
        ),
        ({"recognizer_epochs": -1}, r"`recognizer_epochs` must be >= 0; got -1"),
        ({"colour": 3}, r"unknown setting\(s\) \['colour'\]"),
        ({"examples": "x", "tasks": ["C"]}, r"`examples_task` must be one of `tasks`"),
        (
            {"sep_method": "louvain"},
            r"`sep_method` must be one of \['sweep', 'game', 'multilevel'\]",
        ),
        (
            {"sep_tie": "first"},
            r"`sep_tie` must be one of \['random', 'published', 'index', 'contribution'\]",
        ),
        ({"stride": 4}, r"`stride` cuts windows from procedural frames: set `frame_size`"),
        ({"stride": -1}, r"`stride` must be >= 0"),
        ({"frame_size": [8, 40]}, r"`frame_size` must be \[height, width\], each at least"),
        ({"frame_size": [32, 40], "stride": 8, "repeat": 2}, r"`repeat` must be 1; got 2"),
        ({"scene_style": "cartoon"}, r"`scene_style` must be one of \['soft', 'detailed'\]"),
        ({"scene_style": "detailed", "data": "x"}, r"a folder's images are its own"),
    ],
)
def test_bad_config(tmp_path, overrides, match):
    with pytest.raises(ValueError, match=match):
        PipelineConfig.from_preset("smoke", out=str(tmp_path), **overrides)


def test_toml_config_and_unknown_key(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('preset = "smoke"\ntasks = ["C"]\nepochs = 2\n')
    config = PipelineConfig.from_toml(good, out=str(tmp_path / "r"))
    assert config.tasks == ("C",) and config.epochs == 2 and config.crop_size == 16
    bad = tmp_path / "bad.toml"
    bad.write_text('preset = "smoke"\nepoch = 2\n')
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['epoch'\]"):
        PipelineConfig.from_toml(bad)


def test_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(
        [
            "--preset",
            "smoke",
            "--tasks",
            "N",
            "--out",
            str(out),
            "--quiet",
            "--set",
            "finetune_epochs=0",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "report in" in printed and "N " in printed
    assert json.loads((out / "config.json").read_text())["finetune_epochs"] == 0
    assert main(["--preset", "smoke", "--out", str(out), "--quiet"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["--set", "nonsense"]) == 2


SHARED_EXAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "hm-tir-examples"


@pytest.mark.skipif(not SHARED_EXAMPLES.is_dir(), reason=f"{SHARED_EXAMPLES} is absent")
def test_real_examples_are_scored_in_the_report(tmp_path):
    config = smoke(
        tmp_path, tasks=("C", "B", "N", "CBN"), examples=str(SHARED_EXAMPLES), prune=False
    )
    report = run(config, progress=False)
    assert set(report.examples) == {"Bridge", "Leaning_Tower", "Tower", "Two_Skyscrapers", "Villa"}
    # the degraded column reproduces the folder's README table (hard: Bridge 11.60 dB)
    assert report.examples["Bridge"]["degraded"]["psnr"] == pytest.approx(11.60, abs=0.01)
    assert report.examples["Tower"]["peer"]["psnr"] == pytest.approx(28.50, abs=0.01)
    assert "Real thermal images" in (Path(config.out) / "report.md").read_text()


def test_paper_preset_trains_on_twelve_windows_per_frame():
    """The public code's protocol: 256-px windows at stride 128 of 512 x 640 frames."""
    config = PipelineConfig.from_preset("paper", device="cpu")
    data = train_set(config, "C", "C:train")
    assert data.frame_items == [12] * 1200 and len(data) == 14_400
    assert config.sep_method == "sweep" and config.sep_tie == "random"


def test_the_cpu_preset_trains_on_windows_of_detailed_frames(tmp_path):
    """Detailed scenes and the hmtir degradations reach every set of the run; noise comes before
    blur; a folder run keeps the scene style's default."""
    config = PipelineConfig.from_preset("cpu")
    assert config.tasks == ("C", "N", "B", "CB", "CN", "BN", "CBN")
    data = train_set(config, "CBN", "CBN:train")
    assert data.style == "detailed" and data.preset == "hmtir"
    assert data.frame_size == (256, 320) and data.frame_items == [6] * 160
    assert data[0][0].shape == (1, 96, 96)
    test = fixed_test_set(config, "B")
    assert test.style == "detailed" and test[0][0].shape == (1, 256, 256)
    assert validation_set(config, "N").style == "detailed"
    assert PipelineConfig.from_preset("demo").scene_style == "soft"
    # the cpu preset's recognizer trains on mixtures; the demo's keeps the default
    assert config.recognizer == "mixtures"
    assert PipelineConfig.from_preset("demo").recognizer == "context"
    folder = PipelineConfig.from_preset("smoke", data=str(tmp_path))
    assert folder.scene_style == "soft"


def test_sep_scores_whole_degraded_frames(tmp_path, monkeypatch):
    pools = []
    real = strategies_module.select_groups

    def recording(model, task, images, **kwargs):
        pools.append([tuple(b.shape) for b in images])
        return real(model, task, images, **kwargs)

    monkeypatch.setattr(strategies_module, "select_groups", recording)
    config = smoke(tmp_path, tasks=("N",), frame_size=(24, 32), stride=8, sep_pool=3)
    run(config, progress=False, stop_after="N:prune")
    assert pools == [[(3, 1, 24, 32)]]  # three frames, whole, not 16-px training windows


def test_sep_budget_and_refitted_exits(tmp_path):
    settings = dict(tasks=("N",), frame_size=(24, 32), stride=8, sep_pool=3)

    def pruning(name, **overrides):
        config = smoke(tmp_path, name, **settings, **overrides)
        report = run(config, progress=False, stop_after="N:prune")
        return config, report, report.pruning["N"]

    _, _, plain = pruning("rho")
    _, _, budget = pruning("budget", sep_budget=0.3)
    config, report, refit = pruning("refit", sep_budget=0.3, sep_compensate=True)
    # the budget removes 30% of the stage parameters, give or take one group
    model = ECMRNet.from_preset(config.model)
    model.add_task("N")
    per_group = group_parameters(model.branches[model.task("N").name])
    stages = list(per_group)
    total = sum(per_group[s] * n for s, n in zip(stages, budget["groups_before"], strict=True))
    removed = sum(
        per_group[s] * (b - a)
        for s, b, a in zip(stages, budget["groups_before"], budget["groups_after"], strict=True)
    )
    assert 0.3 <= removed / total < 0.3 + max(per_group.values()) / total
    assert budget["groups_after"] != plain["groups_after"]
    # refitting changes the exits of the same selection, and says how well they fit
    assert refit["groups_after"] == budget["groups_after"]
    assert refit["after_pruning"]["psnr"] != budget["after_pruning"]["psnr"]
    assert set(refit["exit_refit_error"]) == set(stages)
    assert all(0 <= v < 1 for v in refit["exit_refit_error"].values())
    assert "exit_refit_error" not in budget
    write_report(report, tmp_path / "written")
    heading = (tmp_path / "written" / "report.md").read_text()
    assert "budget 0.3 of the stage parameters, exits refitted" in heading


def test_processes_probing_one_run_folder_at_once_do_not_trip_each_other(tmp_path):
    # the ranks of a distributed run all check the folder at the same moment
    out = tmp_path / "run"
    errors = []

    def probe():
        try:
            for _ in range(200):
                prepare_folder(out, resume=False, overwrite=False)
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=probe) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert list(out.iterdir()) == []
