"""``benchmarks/sep_study_docs.py``: the docs' tables from the study's result files."""

from __future__ import annotations

import json

import numpy as np

from benchmarks import sep_study_docs
from benchmarks.sep_study_docs import AT_BUDGET, FINETUNED


def _row(psnr: dict[str, float]) -> dict:
    return {name: {"psnr": value, "activated_params": 100} for name, value in psnr.items()}


def _cell(seed: int, sep: float, mp: float, srp: float, raw: float, tuned: float | None) -> dict:
    psnr = {
        "unpruned": raw - 0.5,  # the weight average, which the differences must not use
        "unpruned, raw weights": raw,
        "SEP": sep,
        "MP": mp,
        "SRP": srp,
        "random x5": sep + 1.0,
        "MP" + AT_BUDGET: raw - 2.0,
        "SRP" + AT_BUDGET: raw - 1.0,
        "SEP (budget), compensated": raw - 0.1,
        "MP, compensated" + AT_BUDGET: raw - 0.2,
        "SRP, compensated" + AT_BUDGET: raw - 0.05,
    }
    if tuned is not None:
        psnr[FINETUNED] = tuned
    config = {"steps": 10, "recipe": "code", "seed": seed}
    return {"config": config, "tasks": {"C": _row(psnr)}}


def test_paired_differences_are_taken_within_each_seed(tmp_path):
    # seed 0: SEP 20 against the better of MP 22 / SRP 21; seed 1: 25 against 24 / 23
    cells = [_cell(0, 20.0, 22.0, 21.0, 30.0, 30.3), _cell(1, 25.0, 24.0, 23.0, 31.0, 30.9)]
    for cell in cells:
        name = f"smoke-10-code-s{cell['config']['seed']}.json"
        (tmp_path / name).write_text(json.dumps(cell))
    table = sep_study_docs.paired_table(sep_study_docs.cells_by_length(tmp_path, "smoke"))
    row = next(line for line in table.splitlines() if line.startswith("| 10, code"))
    cols = [c.strip() for c in row.strip("|").split("|")]
    assert cols[:2] == ["10, code, 2 seeds", "C"]

    def expect(values):
        return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"

    assert cols[2] == expect([20.0 - 22.0, 25.0 - 24.0])  # SEP - max(MP, SRP)
    assert cols[3] == expect([-1.0, -1.0])  # SEP - random
    assert cols[4] == expect([(30.0 - 0.1) - (30.0 - 1.0), (31.0 - 0.1) - (31.0 - 1.0)])
    assert cols[5] == expect([-0.05, -0.05])  # against the better compensated baseline
    assert cols[6] == expect([-0.1, -0.1])  # against the raw weights, not the average
    assert cols[7] == expect([0.3, -0.1])


def test_a_cell_without_fine_tuning_leaves_its_column_empty(tmp_path):
    (tmp_path / "smoke-10-code-s0.json").write_text(json.dumps(_cell(0, 20, 22, 21, 30, None)))
    table = sep_study_docs.paired_table(sep_study_docs.cells_by_length(tmp_path, "smoke"))
    row = next(line for line in table.splitlines() if line.startswith("| 10, code"))
    assert row.rstrip().endswith("| -0.10 | - |")


def _sensitivity(seed: int, task: str, sep_params: int) -> dict:
    rows = {
        "unpruned": {"activated_params": 200},
        "rho 0.1, N 3": {
            "SEP": {"activated_params": sep_params, "psnr": 20.0},
            "MP": {"activated_params": sep_params, "psnr": 19.5},
        },
    }
    cell = {"steps": 10, "recipe": "code", "seed": seed, "tasks": [task]}
    return {"cell": cell, "tasks": {task: rows}}


def test_parts_of_one_seed_run_task_by_task_count_as_one_seed(tmp_path):
    for task, params in (("C", 150), ("B", 100)):
        part = tmp_path / f"sensitivity-smoke-10-code-s0-{task}.json"
        part.write_text(json.dumps(_sensitivity(0, task, params)))
    table = sep_study_docs.sensitivity_table(tmp_path, "smoke")
    assert "| 10, code, 1 seed | rho 0.1, N 3 | -25.00% | 0.50 | -50.00% | 0.50 | - | - |" in table
    # a second seed's file is a second seed
    (tmp_path / "sensitivity-smoke-10-code-s1.json").write_text(
        json.dumps(_sensitivity(1, "C", 100))
    )
    table = sep_study_docs.sensitivity_table(tmp_path, "smoke")
    assert "| 10, code, 2 seeds | rho 0.1, N 3 | -37.50 ± 17.68% | 0.50 ± 0.00 |" in table
