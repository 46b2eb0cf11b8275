"""``benchmarks/sep_table7.py`` runs (its smoke study) and resumes without redoing work."""

from __future__ import annotations

import argparse
import copy
import json

import numpy as np
import pytest
import torch

from benchmarks import sep_study_tables as names
from benchmarks import sep_table7
from sepkit_torch import ECMRNet

AT = " @ SEP (contribution) counts"
ROWS = {"degraded input", "unpruned", *names.SEP_VARIANTS}
ROWS |= {f"{b}{at}" for at in names.REFERENCES.values() for b in ("MP", "SRP", "random x5")}
ROWS |= {
    "SEP (budget), compensated",
    "MP, compensated @ SEP (budget) counts",
    "SRP, compensated @ SEP (budget) counts",
    "exit energy @ SEP (budget) counts",
}
TUNED = {f"{n}{suffix}" for n in names.SUMMARY_TUNED for suffix in names.TUNED_SUFFIXES}


def test_the_study_writes_every_row_and_resumes(tmp_path):
    out = tmp_path / "study"
    graphs = tmp_path / "graphs.npz"
    sep_table7.main(
        ["--model", "smoke", "--out", str(out), "--tasks", "C,N", "--record-graphs", str(graphs)]
    )
    results = json.loads((out / "results.json").read_text())
    for task in ("C", "N"):
        rows = results["tasks"][task]
        assert ROWS | TUNED == set(rows)
        for reference, at in (("SEP", ""), ("SEP (contribution)", AT)):
            kept = rows[reference]["kept"]
            assert rows["MP" + at]["kept"] == rows["SRP" + at]["kept"] == kept
            assert rows["random x5" + at]["kept"] == kept
        assert rows["SEP"]["activated_params"] <= rows["unpruned"]["activated_params"]
        assert list(rows["SEP fine-tuned"]["curve"]) == ["0", "2"]
        budget = rows["SEP (budget)"]
        assert rows["SEP (budget), compensated"]["kept"] == budget["kept"]
        assert rows["MP, compensated @ SEP (budget) counts"]["kept"] == budget["kept"]
    table = (out / "results.md").read_text()
    assert "### Task C" in table and "| SEP, ties by index |" in table
    assert f"| MP{AT} |" in table
    recorded = np.load(graphs)
    assert recorded["N_e3"].shape == (3, 32, 32) and recorded["N_e3"].dtype == np.float32
    # the validated fine-tuning: the start or a mark, never worse on validation
    for task in ("C", "N"):
        for name in names.SUMMARY_TUNED:
            chosen = results["tasks"][task][name + names.VALIDATED]
            assert chosen["step"] in (0, 2)
            if chosen["step"] == 0:
                start = results["tasks"][task][f"{name} fine-tuned"]["curve"]["0"]
                assert chosen["psnr"] == start["psnr"]
    # a second run reads everything back: the same results, nothing recomputed
    sep_table7.main(["--model", "smoke", "--out", str(out), "--tasks", "C,N"])
    assert json.loads((out / "results.json").read_text()) == results
    # a cell without the validated rows gets them by fine-tuning again, to the same result
    # (the fine-tuned rows are read back, not rewritten)
    complete = copy.deepcopy(results)
    for rows in results["tasks"].values():
        for name in list(rows):
            if name.endswith(names.VALIDATED):
                del rows[name]
    (out / "results.json").write_text(json.dumps(results))
    sep_table7.main(["--model", "smoke", "--out", str(out), "--tasks", "C,N"])
    again = json.loads((out / "results.json").read_text())
    for rows in (*again["tasks"].values(), *complete["tasks"].values()):
        for name in rows:
            if name.endswith(names.VALIDATED):
                rows[name].pop("seconds")
    assert again == complete


def test_a_grid_of_lengths_and_recipes_keeps_each_cell_and_summarises(tmp_path):
    out, results = tmp_path / "grid", tmp_path / "results"
    argv = ["--model", "smoke", "--tasks", "C", "--steps", "5,10", "--recipes", "paper,code"]
    argv += ["--finetune", "SEP", "--out", str(out), "--results", str(results)]
    sep_table7.main(argv)
    cells = sorted(p.name for p in results.glob("*.json"))
    assert cells == [f"smoke-{r}-{n}-s0.json" for r in ("code", "paper") for n in (10, 5)]
    code = json.loads((results / "smoke-code-10-s0.json").read_text())
    assert code["config"]["recipe"] == "code" and code["config"]["finetune_steps"] == 2
    rows = code["tasks"]["C"]
    # the code recipe reports its weight average and keeps the raw weights' score too
    assert "unpruned, raw weights" in rows and rows["SEP fine-tuned"]["steps"] <= 2
    assert (
        "unpruned, raw weights"
        not in json.loads((results / "smoke-paper-10-s0.json").read_text())["tasks"]["C"]
    )
    summary = (results / "summary-smoke.md").read_text()
    assert "| 10 | code | C | 1 |" in summary and "| 5 | paper | C | 1 |" in summary
    # complete cells are skipped: a rerun without the run folders changes nothing
    before = {p.name: p.read_text() for p in results.glob("*.json")}
    sep_table7.main(
        [
            *argv[:-4],
            "--finetune",
            "SEP",
            "--out",
            str(tmp_path / "elsewhere"),
            "--results",
            str(results),
        ]
    )
    assert not (tmp_path / "elsewhere").exists()
    assert {p.name: p.read_text() for p in results.glob("*.json")} == before


def test_a_study_folder_takes_one_process_at_a_time(tmp_path):
    first = sep_table7.Study(tmp_path / "cell", {"steps": 1})
    with pytest.raises(SystemExit, match="another process is running the study in"):
        sep_table7.Study(tmp_path / "cell", {"steps": 1})
    del first
    sep_table7.Study(tmp_path / "cell", {"steps": 1})  # free again


def test_a_cell_run_task_by_task_in_two_folders_fills_one_results_file(tmp_path):
    results = tmp_path / "results"
    shared = tmp_path / "pretrained.pt"
    common = ["--model", "smoke", "--steps", "5", "--finetune", "SEP", "--results", str(results)]
    common += ["--pretrained", str(shared)]
    sep_table7.main([*common, "--tasks", "C", "--out", str(tmp_path / "C")])
    made = shared.stat().st_mtime_ns
    sep_table7.main([*common, "--tasks", "N", "--out", str(tmp_path / "N")])
    # both parts start from the one pretrained backbone, trained once
    assert shared.stat().st_mtime_ns == made and not (tmp_path / "N" / "pretrained.pt").exists()
    cell = json.loads((results / "smoke-paper-5-s0.json").read_text())
    assert cell["config"]["tasks"] == ["C", "N"]
    assert set(cell["tasks"]) == {"C", "N"} and "SEP fine-tuned" in cell["tasks"]["N"]
    alone = json.loads((tmp_path / "C" / "results.json").read_text())
    assert cell["tasks"]["C"] == alone["tasks"]["C"]
    # a cell of other settings is refused, the file untouched
    before = (results / "smoke-paper-5-s0.json").read_text()
    with pytest.raises(SystemExit, match="holds other settings"):
        sep_table7.main([*common, "--tasks", "B", "--rho", "0.2", "--out", str(tmp_path / "B")])
    assert (results / "smoke-paper-5-s0.json").read_text() == before
    with pytest.raises(SystemExit):  # one file cannot serve two seeds
        sep_table7.main([*common, "--seeds", "0,1", "--out", str(tmp_path / "grid")])
    # nor another seed's cell: the file names the settings it was pretrained with
    with pytest.raises(SystemExit, match=r"--pretrained .*seed: 0 there, 1 here"):
        sep_table7.main([*common, "--tasks", "B", "--seeds", "1", "--out", str(tmp_path / "s1")])
    assert not (tmp_path / "s1" / "results.json").exists()


class _Killed(Exception):
    pass


def test_a_branch_training_stopped_part_way_resumes_to_the_same_weights(tmp_path):
    args = argparse.Namespace(**sep_table7.STUDIES["smoke"], recipe="code", seed=0)
    data = sep_table7.training_frames("C", args, 5)
    per_pass = len(data) // args.batch
    steps = 2 * per_pass + 3
    val = sep_table7.validation_frames("C", args, 5)

    def branch():
        torch.manual_seed(0)
        model = ECMRNet.from_preset("tiny")
        model.add_task("C")
        return model

    def kill_after_the_first_pass(step):
        if step == per_pass + 1:
            raise _Killed

    whole = branch()
    done = sep_table7.fit(whole, "C", data, steps, 1e-3, args, 7, val=val, epochs=2)
    saved = tmp_path / "training-C.pt"
    with pytest.raises(_Killed):
        sep_table7.fit(
            branch(),
            "C",
            data,
            steps,
            1e-3,
            args,
            7,
            val=val,
            epochs=2,
            on_step=kill_after_the_first_pass,
            saved=saved,
        )
    assert saved.is_file()
    torch.manual_seed(123)  # a new process: the saved state alone decides
    resumed = branch()
    ran = []
    result = sep_table7.fit(
        resumed, "C", data, steps, 1e-3, args, 7, val=val, epochs=2, saved=saved, on_step=ran.append
    )
    assert ran == list(range(per_pass + 1, steps + 1))  # only the steps after the first pass
    assert result.steps == done.steps == steps and result.scores == done.scores
    for a, b in zip(resumed.trainable_parameters(), whole.trainable_parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("recipe", "words"),
    [
        ("paper", "Adam lr 0.001, cosine to lr / 100, L1 loss"),
        ("code", "AdamW (weight decay 1e-05) lr 0.001, 1 epoch of warm-up, cosine to 1e-06"),
    ],
)
def test_a_cells_tables_name_the_recipe_that_trained_it(recipe, words):
    config = {"model": "tiny", "rho": 0.1, "seed": 0, "frame": [96, 120], "crop": 48}
    config |= {"stride": 24, "pretrain_steps": 3, "steps": 5, "batch": 8, "lr": 1e-3}
    config |= {"pool": 4, "test": 2, "recipe": recipe}
    text = names.render({"config": config, "tasks": {}})
    assert words in text
    assert ("early stopping" in text) == (recipe == "code")
