"""``benchmarks/sep_table7.py`` runs (its smoke study) and resumes without redoing work."""

from __future__ import annotations

import json

import numpy as np

from benchmarks import sep_table7

AT = " @ SEP (contribution) counts"
ROWS = {"degraded input", "unpruned", *sep_table7.SEP_VARIANTS, "MP", "SRP", "random x5"}
ROWS |= {"MP" + AT, "SRP" + AT, "random x5" + AT}
TUNED = {f"{n} fine-tuned" for n in ("SEP", "MP", "SRP", "SEP (contribution)")}


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
    table = (out / "results.md").read_text()
    assert "### Task C" in table and "| SEP, ties by index |" in table
    assert f"| MP{AT} |" in table
    recorded = np.load(graphs)
    assert recorded["N_e3"].shape == (3, 32, 32) and recorded["N_e3"].dtype == np.float32
    # a second run reads everything back: the same results, nothing recomputed
    sep_table7.main(["--model", "smoke", "--out", str(out), "--tasks", "C,N"])
    assert json.loads((out / "results.json").read_text()) == results
