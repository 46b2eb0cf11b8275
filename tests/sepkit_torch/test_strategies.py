"""The pipeline's strategies: one class per method, its registry, stages and their seeds."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from sepkit_torch import ConfigError, InvalidInputError
from sepkit_torch.pipeline import METHODS, STRATEGIES, PipelineConfig, Stage, run, strategy_class
from sepkit_torch.pipeline.strategies import FineTuning, stage_names

ROOT = Path(__file__).parents[2] / "sepkit_torch"


def test_every_method_has_its_strategy():
    assert METHODS == ("ecmrnet", "finetune", "ewc", "si", "mas", "lwf", "joint")
    assert {strategy_class(m).__name__ for m in METHODS} == {
        "ECMRNetStrategy",
        "FineTuning",
        "Regularized",
        "JointTraining",
    }
    assert [m for m in METHODS if strategy_class(m).restores] == ["ecmrnet"]
    assert [m for m in METHODS if not strategy_class(m).sequential] == ["joint"]


def test_an_unknown_method_lists_the_known_ones():
    with pytest.raises(InvalidInputError, match=r"`method` must be one of \['ecmrnet', 'fine"):
        strategy_class("ewcc")
    with pytest.raises(ConfigError, match=r"`method` must be one of \['ecmrnet', .*'joint'\]"):
        PipelineConfig.from_preset("smoke", method="EWC")


def test_stages_are_named_and_seeded_apart():
    stage = Stage("train", "C+haze")
    assert stage.name == str(stage) == "C+haze:train"
    assert Stage.parse("C+haze:train") == stage and Stage.parse("pretrain") == Stage("pretrain")
    config = PipelineConfig.from_preset("smoke")
    assert (
        stage.seed(config) != stage.seed(config, "batches") != Stage("prune", "C+haze").seed(config)
    )
    assert stage_names(config)[:4] == ["pretrain", "C:train", "C:prune", "C:finetune"]


class Frozen(FineTuning):
    """A method of one class: the pretrained network on every task, never trained on one."""

    def step_train(self, stage):
        self.report.tasks.append(stage.task)


def test_adding_a_method_is_one_class(tmp_path, monkeypatch):
    monkeypatch.setitem(STRATEGIES, "frozen", Frozen)
    config = PipelineConfig.from_preset(
        "smoke", method="frozen", tasks=["C", "B"], out=str(tmp_path / "run")
    )
    report = run(config, progress=False)
    assert report.tasks == ["C", "B"] and len(report.metrics) == 2
    assert report.forgetting() == {"C": 0.0, "B": 0.0}  # nothing trained after pretraining
    assert "# Baseline `frozen` task-sequence report" in (tmp_path / "run/report.md").read_text()


def _compared_strings(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                if isinstance(side, ast.Constant) and side.value in METHODS:
                    found.append((node.lineno, side.value))
    return found


@pytest.mark.parametrize(
    "path", sorted(ROOT.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT.parent))
)
def test_no_method_name_is_compared_outside_the_registry(path):
    assert not _compared_strings(path), f"{path} compares method names"
