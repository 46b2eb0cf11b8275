"""``benchmarks/model_size.py``: equal-CPU-time candidates, scored on validation frames."""

from __future__ import annotations

import json

import pytest

from benchmarks import model_size
from sepkit_torch.pipeline import PipelineConfig


def test_a_candidate_trains_within_its_budget_and_is_kept(tmp_path, capsys):
    argv = ["--minutes", "0.02", "--candidates", "tiny:paper", "--out", str(tmp_path)]
    model_size.main(argv)
    (path,) = tmp_path.glob("tiny-paper-*-CBN-*.json")
    row = json.loads(path.read_text())
    assert row["size"] == "tiny" and row["recipe"] == "paper" and row["steps"] >= 1
    # the data's degradations default to the cpu preset's, and name the file
    degradations = PipelineConfig.from_preset("cpu").degradation_preset
    assert row["degradations"] == degradations and f"-{degradations}-" in path.name
    # the step budget follows the measured cost of a step
    total = row["pretrain_steps"] + row["steps"]
    assert total == max(2, int(row["budget_s"] / row["step_s"]))
    assert 0 < row["validation"]["ssim"] <= 1 and row["validation_raw"] is None
    assert "| tiny | paper |" in capsys.readouterr().out
    # a finished candidate is read back, not trained again
    path.write_text(json.dumps({**row, "cpu_s": -1.0}))
    model_size.main(argv)
    assert "| -1 |" in capsys.readouterr().out


def test_unknown_candidates_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        model_size.main(["--candidates", "huge:code", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        model_size.main(["--degradations", "none-such", "--out", str(tmp_path)])
