"""The NAFNet baselines in the pipeline: strategies, tuning, joint sampling, comparison."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sepkit_torch import InvalidInputError, TaskStateError
from sepkit_torch.continual.joint import JointData, TaskPerBatchSampler
from sepkit_torch.continual.regularizers import EWC, LwF, make_regularizer
from sepkit_torch.data import make_dataset
from sepkit_torch.models.nafnet import NAFNet
from sepkit_torch.pipeline import PipelineConfig, compare, run
from sepkit_torch.pipeline.cli import main
from sepkit_torch.pipeline.report import Report
from sepkit_torch.pipeline.state import load_checkpoint
from sepkit_torch.pipeline.strategies import METHODS, Regularized, stage_names

TASKS = ("C", "B", "CB")


def smoke(tmp_path, method, name=None, **overrides) -> PipelineConfig:
    return PipelineConfig.from_preset(
        "smoke",
        method=method,
        out=str(tmp_path / (name or method)),
        tasks=overrides.pop("tasks", TASKS),
        **overrides,
    )


def _comparable(report) -> dict:
    data = report.to_dict()
    data.pop("seconds")
    data["config"].pop("out")
    return data


# ---------------------------------------------------------------- joint sampling


def _joint(lengths, batch_size=2, seed=0):
    sets = {
        t: make_dataset(None, t, crop_size=8, length=n, seed=1)
        for t, n in zip(("C", "B", "N"), lengths, strict=False)
    }
    data = JointData(sets)
    return data, TaskPerBatchSampler(data, batch_size, torch.Generator().manual_seed(seed))


def test_joint_sampler_draws_single_task_batches_of_every_task():
    data, sampler = _joint([8, 8, 8])
    batches = [b for _ in range(5) for b in sampler]
    assert len(batches) == 5 * len(sampler) == 5 * 12  # same steps as one pass per task
    assert all(len({k for k, _ in b}) == 1 and len(b) == 2 for b in batches)
    assert all(c > 0 for c in sampler.counts) and sum(sampler.counts) == len(batches)
    # within an epoch a task's items follow a permutation: no item twice before all 8
    for epoch in range(5):
        items = [i for b in batches[12 * epoch : 12 * (epoch + 1)] if b[0][0] == 0 for _, i in b]
        assert len(set(items[:8])) == len(items[:8]) and set(items) <= set(range(8))
    degraded, clean = data[batches[0][0]]
    assert degraded.shape == clean.shape == (1, 8, 8)


def test_joint_sampler_is_seeded():
    a = list(_joint([6, 4])[1])
    b = list(_joint([6, 4])[1])
    c = list(_joint([6, 4], seed=1)[1])
    assert a == b and a != c


def test_joint_sampler_errors():
    with pytest.raises(InvalidInputError, match=r"`batch_size` must be >= 1; got 0"):
        TaskPerBatchSampler(_joint([4])[0], 0, torch.Generator())
    with pytest.raises(TypeError, match=r"`data` must be a JointData; got list"):
        TaskPerBatchSampler([], 2, torch.Generator())
    with pytest.raises(InvalidInputError, match=r"at least one task"):
        JointData({})


def test_make_regularizer():
    assert make_regularizer("finetune", 1.0) is None and make_regularizer("joint", 1.0) is None
    ewc = make_regularizer("ewc", 3.0)
    assert isinstance(ewc, EWC) and ewc.strength == 3.0
    with pytest.raises(InvalidInputError, match=r"`method` must be one of the baselines"):
        make_regularizer("ecmrnet", 1.0)


# ---------------------------------------------------------------- pipeline strategies


def test_stages_per_method(tmp_path):
    assert stage_names(smoke(tmp_path, "finetune")) == [
        "pretrain",
        *[f"{t}:{s}" for t in TASKS for s in ("train", "evaluate")],
    ]
    assert stage_names(smoke(tmp_path, "ewc"))[:2] == ["pretrain", "tune"]
    assert "tune" not in stage_names(smoke(tmp_path, "ewc", strength=5.0))
    assert stage_names(smoke(tmp_path, "joint")) == ["pretrain", "joint:train", "joint:evaluate"]


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"method": "ewcc"}, r"`method` must be one of \['ecmrnet', 'finetune'"),
        ({"method": "finetune", "strength": 1.0}, r"apply to the methods \['ewc', 'lwf'"),
        ({"method": "ewc", "strength": -1.0}, r"must be finite and >= 0; got -1.0"),
        ({"method": "si", "strength_grid": [1, "x"]}, r"`strength_grid` must be a list of num"),
        ({"baseline": "huge"}, r"`baseline` must be one of"),
        ({"tune_tasks": 0}, r"`tune_tasks` must be >= 1"),
    ],
)
def test_bad_baseline_config(tmp_path, overrides, match):
    with pytest.raises(InvalidInputError, match=match):
        PipelineConfig.from_preset("smoke", out=str(tmp_path), **overrides)


@pytest.fixture(scope="module")
def ewc_run(tmp_path_factory):
    config = smoke(tmp_path_factory.mktemp("baselines"), "ewc")
    return config, run(config, progress=False)


def test_regularised_baseline_end_to_end(ewc_run):
    config, report = ewc_run
    assert report.tasks == list(TASKS) and [len(r) for r in report.metrics] == [1, 2, 3]
    tuning = report.strategy["tuning"]
    # the chosen strength is the grid's best on validation, never on the test sets
    assert report.strategy["strength"] == tuning["grid"][int(np.argmax(tuning["validation_psnr"]))]
    assert tuning["tasks"] == ["C", "B"] and len(tuning["validation_psnr"]) == len(tuning["grid"])
    # one network for every task: the model never grows
    assert {s["total_params"] for s in report.size} == {
        sum(p.numel() for p in NAFNet("tiny").parameters())
    }
    ckpt = load_checkpoint(Path(config.out) / "checkpoint.pt")
    reg = ckpt["regularizer"]
    assert reg["kind"] == "EWC" and reg["tasks_seen"] == len(TASKS)
    assert reg["strength"] == report.strategy["strength"]
    md = (Path(config.out) / "report.md").read_text()
    assert "Baseline `ewc`" in md and "Chosen on the validation split" in md


def test_validation_images_are_not_test_images(tmp_path):
    config = smoke(tmp_path, "ewc")
    runner = Regularized(config, Report(config.to_dict()), torch.device("cpu"), False)
    val, test = runner._val_set("C"), runner.test_images("C")
    assert val[0][1].shape == test[0][1].shape
    for i in range(len(val)):
        for j in range(len(test)):
            assert not torch.equal(val[i][1], test[j][1])


def test_baseline_kill_and_resume_gives_the_same_report(tmp_path, ewc_run):
    _, uninterrupted = ewc_run
    config = smoke(tmp_path, "ewc")
    partial = run(config, progress=False, stop_after="B:train")
    assert partial.tasks == ["C", "B"]
    saved = load_checkpoint(Path(config.out) / "checkpoint.pt")["regularizer"]
    assert saved["tasks_seen"] == 2  # the consolidated state travels in the checkpoint
    resumed = run(config, resume=True, progress=False)
    assert _comparable(resumed) == _comparable(uninterrupted)


def test_lwf_resumes_with_its_teacher(tmp_path):
    config = smoke(tmp_path, "lwf", tasks=("C", "B"), strength=1.0)
    whole = run(config, progress=False)
    other = smoke(tmp_path, "lwf", name="again", tasks=("C", "B"), strength=1.0)
    run(other, progress=False, stop_after="C:train")
    state = load_checkpoint(Path(other.out) / "checkpoint.pt")["regularizer"]
    assert state["kind"] == "LwF" and state["teacher"] is not None
    resumed = run(other, resume=True, progress=False)
    assert _comparable(resumed) == _comparable(whole)


def test_joint_training_samples_every_task(tmp_path):
    config = smoke(tmp_path, "joint", train_length=8, epochs=3)
    report = run(config, progress=False)
    counts = report.strategy["joint_batches"]
    assert set(counts) == set(TASKS) and all(n > 0 for n in counts.values())
    # as many steps as sequential training: 3 epochs x 3 tasks x 8 / 2 batches
    assert sum(counts.values()) == 3 * len(TASKS) * 8 // 2
    assert len(report.metrics) == 1 and len(report.metrics[0]) == len(TASKS)
    assert report.forgetting() == {} and report.row_labels() == ["all tasks"]
    with pytest.raises(TaskStateError, match=r"joint training learns its tasks at once"):
        longer = smoke(tmp_path, "joint", tasks=(*TASKS, "N"), train_length=8, epochs=3)
        run(longer, resume=True, progress=False)


def test_finetune_forgets_where_ecmrnet_cannot(tmp_path):
    """The forgetting floor really forgets: after learning B, task C's PSNR moved."""
    report = run(smoke(tmp_path, "finetune", tasks=("C", "B")), progress=False)
    assert report.metrics[0][0] != report.metrics[1][0]


# ---------------------------------------------------------------- regulariser state


def test_regulariser_state_round_trip():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Conv2d(2, 1, 1))
    x = torch.rand(2, 1, 6, 6)
    for method in ("ewc", "si", "mas", "lwf"):
        reg = make_regularizer(method, 2.0)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(2):
            opt.zero_grad()
            out = model(x)
            loss = (out - x).abs().mean() + reg.penalty(model, x, out)
            loss.backward()
            reg.before_step(model)
            opt.step()
            reg.after_step(model)
        reg.end_task(model, [(x, x)])
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05)
        again = make_regularizer(method, 1.0)
        again.load_state_dict(reg.state_dict(), model)
        assert again.strength == 2.0 and again.tasks_seen == 1
        want, got = reg.penalty(model, x), again.penalty(model, x)
        assert want.item() > 0 and got.item() == want.item(), method
    with pytest.raises(InvalidInputError, match=r"must be a EWC.state_dict\(\); got one of 'LwF'"):
        EWC().load_state_dict(LwF().state_dict())
    with pytest.raises(InvalidInputError, match=r"`model` must be given to LwF.load_state_dict"):
        lwf = LwF()
        lwf.end_task(model)
        LwF().load_state_dict(lwf.state_dict())


# ---------------------------------------------------------------- comparison


def test_comparison_has_a_row_per_method(tmp_path):
    config = smoke(tmp_path, "ecmrnet", name="cmp", tasks=("C", "B"))
    summary = compare(config, METHODS, progress=False)
    assert list(summary["methods"]) == list(METHODS)
    for method, row in summary["methods"].items():
        assert set(row["final"]) == {"C", "B"}
        assert np.isfinite(row["psnr"]) and 0 < row["ssim"] <= 1
        assert (row["forgetting"] is None) == (method == "joint")
        assert (Path(config.out) / method / "report.json").is_file()
    rows = summary["methods"]
    assert rows["ecmrnet"]["forgetting"] == 0  # strict isolation
    assert rows["ecmrnet"]["total_params"] > rows["finetune"]["total_params"]
    md = (Path(config.out) / "comparison.md").read_text()
    assert all(f"| {m}" in md for m in METHODS)
    assert (Path(config.out) / "comparison_psnr.png").is_file()
    data = json.loads((Path(config.out) / "comparison.json").read_text())
    assert data["methods"]["joint"]["psnr"] == rows["joint"]["psnr"]
    # resuming a finished comparison reads every run back: the same summary
    assert compare(config, METHODS, resume=True, progress=False) == summary


def test_comparison_shares_one_exact_pretraining(tmp_path):
    config = smoke(tmp_path, "ecmrnet", name="cmp", tasks=("C", "B"))
    summary = compare(config, ["ewc", "finetune"], progress=False)
    assert (Path(config.out) / "pretrained-nafnet.pt").is_file()
    # finetune started from ewc's pretraining: the same as a standalone finetune run
    alone = run(smoke(tmp_path, "finetune", tasks=("C", "B")), progress=False)
    assert summary["methods"]["finetune"]["final"] == dict(
        zip(alone.tasks, alone.metrics[-1], strict=True)
    )


def test_comparison_errors(tmp_path):
    config = smoke(tmp_path, "ecmrnet")
    with pytest.raises(InvalidInputError, match=r"distinct methods of"):
        compare(config, ["ewc", "ewc"])
    with pytest.raises(InvalidInputError, match=r"distinct methods of"):
        compare(config, ["nafnet"])
    with pytest.raises(InvalidInputError, match=r"differ per method"):
        compare(smoke(tmp_path, "ewc", strength=1.0), ["ewc", "si"])


def test_command_line_method_and_compare(tmp_path, capsys):
    out = tmp_path / "si"
    assert (
        main(
            [
                "--preset",
                "smoke",
                "--tasks",
                "C",
                "--method",
                "si",
                "--out",
                str(out),
                "--quiet",
                "--set",
                "strength=0.5",
            ]
        )
        == 0
    )
    assert json.loads((out / "report.json").read_text())["strategy"]["strength"] == 0.5
    cmp = tmp_path / "cmp"
    assert (
        main(
            [
                "compare",
                "--preset",
                "smoke",
                "--tasks",
                "C",
                "--methods",
                "finetune,joint",
                "--out",
                str(cmp),
                "--quiet",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "2 methods" in printed and "joint" in printed
    assert main(["compare", "--preset", "smoke", "--methods", "foo", "--out", str(cmp)]) == 2
    assert "distinct methods" in capsys.readouterr().err
