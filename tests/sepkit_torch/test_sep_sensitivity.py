"""``benchmarks/sep_sensitivity.py``: Tables 5 and 6 on a finished smoke cell, resumable."""

from __future__ import annotations

import json

import pytest

from benchmarks import sep_sensitivity, sep_study_docs, sep_table7


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    out = tmp_path_factory.mktemp("cell")
    sep_table7.main(["--model", "smoke", "--out", str(out), "--tasks", "C", "--finetune", ""])
    return out


def test_rows_of_every_rho_and_pool_with_mp_at_the_same_counts(cell, tmp_path):
    out = tmp_path / "sensitivity.json"
    argv = [str(cell), "--results", str(out), "--tasks", "C", "--rhos", "0.1,0.4"]
    argv += ["--pools", "2,3", "--rho-pool", "3", "--finetune"]
    sep_sensitivity.main(argv)
    results = json.loads(out.read_text())
    rows = results["tasks"]["C"]
    assert set(rows) == {"unpruned", "rho 0.1, N 3", "rho 0.4, N 3", "rho 0.1, N 2"}
    for name, row in rows.items():
        if name != "unpruned":
            assert row["SEP"]["kept"] == row["MP"]["kept"]
            assert row["SEP"]["finetuned"]["steps"] == results["cell"]["finetune_steps"]
            assert row["SEP"]["activated_params"] <= rows["unpruned"]["activated_params"]
    # the same pool and a higher threshold keep a subset of the groups
    low, high = rows["rho 0.1, N 3"]["SEP"]["keep"], rows["rho 0.4, N 3"]["SEP"]["keep"]
    assert all(set(high[s]) <= set(low[s]) for s in low)
    table = sep_sensitivity.render(results)
    assert "| C | rho 0.4, N 3 |" in table
    # the docs' summary: path cut and SEP - MP of each setting, beside the paper's rows
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "sensitivity-smoke-10-s0.json").write_text(out.read_text())
    summary = sep_study_docs.sensitivity_table(folder, "smoke")
    row = rows["rho 0.4, N 3"]
    cut = 100 * (row["SEP"]["activated_params"] / rows["unpruned"]["activated_params"] - 1)
    lead = row["SEP"]["psnr"] - row["MP"]["psnr"]
    assert f"| 10, paper, 1 seed | rho 0.4, N 3 | {cut:.2f}% | {lead:.2f} |" in summary
    assert "| the paper (Table 6) | rho 0.1, N 300 | -27.5% |" in summary
    # a second run reads every row back and recomputes nothing
    before = out.stat().st_mtime_ns
    sep_sensitivity.main(argv)
    assert out.stat().st_mtime_ns == before
    assert json.loads(out.read_text()) == results


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--rhos", "0.1,x"], "--rhos must be comma-separated numbers"),
        (["--rhos", "1.5"], "must lie in (0, 1)"),
        (["--pools", "0"], "--rho-pool must be positive"),
    ],
)
def test_bad_settings_are_refused_by_name(cell, tmp_path, extra, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        sep_sensitivity.main([str(cell), "--results", str(tmp_path / "r.json"), *extra])
    assert message in capsys.readouterr().err + str(exit_.value.code)


def test_a_folder_without_a_study_and_a_missing_task_are_refused(cell, tmp_path):
    with pytest.raises(SystemExit):
        sep_sensitivity.main([str(tmp_path), "--results", str(tmp_path / "r.json")])
    assert not (tmp_path / "r.json").exists()
    with pytest.raises(SystemExit, match="no trained branch for task 'B'"):
        sep_sensitivity.main([str(cell), "--results", str(tmp_path / "r.json"), "--tasks", "B"])


def test_the_parts_of_a_cell_run_task_by_task_fill_one_file(cell, tmp_path):
    other = tmp_path / "part-N"
    sep_table7.main(["--model", "smoke", "--out", str(other), "--tasks", "N", "--finetune", ""])
    out = tmp_path / "sensitivity.json"
    common = ["--results", str(out), "--rhos", "0.1", "--pools", "2", "--rho-pool", "2"]
    sep_sensitivity.main([str(other), "--tasks", "N", *common])
    # the docs' table of a cell still lacking its first task
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "sensitivity-smoke-5-s0.json").write_text(out.read_text())
    assert "| 10, paper, 1 seed | rho 0.1, N 2 | - | - | - | - | -" in (
        sep_study_docs.sensitivity_table(folder, "smoke")
    )
    sep_sensitivity.main([str(cell), "--tasks", "C", *common])
    results = json.loads(out.read_text())
    assert list(results["tasks"]) == ["N", "C"] and results["cell"]["tasks"] == ["N", "C"]
    # another cell's part is refused, the file untouched
    before = out.read_text()
    config = json.loads((other / "results.json").read_text())
    config["config"]["steps"] += 1
    (other / "results.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit, match="holds the rows of another cell"):
        sep_sensitivity.main([str(other), "--tasks", "N", *common])
    assert out.read_text() == before
