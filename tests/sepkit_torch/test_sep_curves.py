"""The pruning curves (``benchmarks/sep_curves``): the allocations reach their size on
equal terms, Network Slimming folds its gates exactly, and a cell runs and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.sep_curves import report
from benchmarks.sep_curves import run as curves
from benchmarks.sep_curves.allocations import (
    ALLOCATIONS,
    allocate,
    counts_at_rho,
    removed_parameters,
)
from sepkit_torch import ECMRNet
from sepkit_torch.continual.pruning.slimming import fold_gates, slim_branch
from sepkit_torch.models.backbone import STAGE_NAMES


@st.composite
def stages(draw):
    """Per stage: groups, parameters per group, frequencies, contributions and gates."""
    n = draw(st.integers(1, 5))
    names = [f"s{i}" for i in range(n)]
    groups = {s: draw(st.integers(1, 8)) for s in names}
    params = {s: float(draw(st.integers(1, 50))) for s in names}
    pool = draw(st.integers(1, 10))

    def vector(s, values):
        return np.array(draw(st.lists(values, min_size=groups[s], max_size=groups[s])))

    freq = {s: vector(s, st.integers(0, pool)) / pool for s in names}
    contribution = {s: vector(s, st.floats(0, 10)) for s in names}
    gates = {s: vector(s, st.floats(0, 2)) for s in names}
    return groups, params, freq, contribution, gates


def _allocate(kind, target, params, freq, contribution, gates):
    return allocate(
        kind,
        target,
        params,
        frequency=freq,
        contribution=contribution,
        gates=gates,
        budget_frequency=freq,
    )


@settings(max_examples=150, deadline=None)
@given(stages(), st.floats(0, 0.99), st.sampled_from(ALLOCATIONS))
def test_every_allocation_stops_at_the_first_group_that_reaches_the_size(case, share, kind):
    groups, params, freq, contribution, gates = case
    total = sum(groups[s] * params[s] for s in groups)
    target = share * total
    counts = _allocate(kind, target, params, freq, contribution, gates)
    assert set(counts) == set(groups)
    assert all(1 <= counts[s] <= groups[s] for s in groups)
    removed = removed_parameters(groups, params, counts)
    if removed < target:  # only when every stage is down to one group
        assert all(c == 1 for c in counts.values())
    elif removed == 0:
        assert target == 0
    elif kind != "budget":  # one group fewer would not reach it
        assert removed - max(params[s] for s in groups if counts[s] < groups[s]) < target


@settings(max_examples=150, deadline=None)
@given(stages(), st.floats(0.01, 1.0))
def test_the_se_allocation_at_the_published_cut_is_the_published_counts(case, rho):
    groups, params, freq, contribution, gates = case
    published = counts_at_rho(freq, rho)
    target = removed_parameters(groups, params, published)
    if target == sum(groups[s] * params[s] for s in groups):
        return
    assert _allocate("SE", target, params, freq, contribution, gates) == published


def test_uniform_removes_the_same_share_of_every_stage():
    groups = {"a": 4, "b": 8, "c": 32}
    freq = {s: np.zeros(g) for s, g in groups.items()}
    params = {"a": 1.0, "b": 2.0, "c": 4.0}
    total = sum(groups[s] * params[s] for s in groups)
    counts = _allocate("uniform", 0.5 * total, params, freq, freq, freq)
    assert counts == {"a": 2, "b": 4, "c": 16}


def test_a_size_outside_the_stages_is_refused():
    freq = {"a": np.zeros(3)}
    with pytest.raises(ValueError, match="`target` must be in"):
        _allocate("SE", 3.0, {"a": 1.0}, freq, freq, freq)
    with pytest.raises(ValueError, match="`kind` must be one of"):
        _allocate("magic", 1.0, {"a": 1.0}, freq, freq, freq)


def _tiny_model(seed=0):
    torch.manual_seed(seed)
    model = ECMRNet.from_preset("tiny")
    model.add_task("C")
    return model


def test_folding_the_gates_computes_what_the_gated_exits_computed():
    model = _tiny_model()
    branch = model.branches["C"]
    widths = dict(zip(STAGE_NAMES, model.config.group_widths, strict=True))
    gates = {s: torch.rand(getattr(branch, s).groups) + 0.1 for s in STAGE_NAMES}
    x = torch.rand(2, 1, 32, 40)
    hooks = [
        getattr(branch, s).exit.register_forward_pre_hook(
            lambda mod, args, s=s: (
                args[0] * gates[s].repeat_interleave(widths[s]).view(1, -1, 1, 1),
            )
        )
        for s in STAGE_NAMES
    ]
    with torch.no_grad():
        gated = model(x, task="C")
    for h in hooks:
        h.remove()
    fold_gates(branch, model.config, gates)
    with torch.no_grad():
        folded = model(x, task="C")
    torch.testing.assert_close(folded, gated, rtol=1e-5, atol=1e-6)


def test_slimming_trains_the_weights_and_a_larger_penalty_shrinks_the_gates():
    batches = [(torch.rand(2, 1, 16, 20), torch.rand(2, 1, 16, 20)) for _ in range(3)]
    means = []
    for penalty in (0.0, 1.0):
        model = _tiny_model()
        before = {k: v.detach().clone() for k, v in model.named_parameters()}
        gates = slim_branch(model, "C", batches, penalty=penalty, lr=1e-2, steps=6)
        assert [len(gates[s]) for s in STAGE_NAMES] == list(model.config.groups)
        after = dict(model.named_parameters())
        # the branch's own weights trained (not only the gates), the backbone did not
        assert not torch.equal(
            before["branches.C.e2.blocks.0.conv1.weight"],
            after["branches.C.e2.blocks.0.conv1.weight"],
        )
        assert all(
            torch.equal(before[k], after[k]) for k in before if not k.startswith("branches.")
        )
        assert all(not getattr(model.branches["C"], s).exit._forward_pre_hooks for s in STAGE_NAMES)
        means.append(np.mean(np.concatenate(list(gates.values()))))
    assert means[1] < means[0]


@pytest.mark.parametrize(
    "value, match",
    [(-1.0, "`penalty`"), (float("nan"), "`penalty`"), (True, "`penalty`")],
)
def test_slimming_refuses_a_bad_penalty(value, match):
    with pytest.raises(ValueError, match=match):
        slim_branch(_tiny_model(), "C", [], penalty=value)


def test_a_cell_writes_every_row_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(curves, "SIZES", (0.4,))
    monkeypatch.setitem(curves.REFIT_SIZES, "smoke", (0.4,))
    monkeypatch.setattr(curves, "RHOS", (0.1,))
    monkeypatch.setattr(curves, "SLIMMING_PENALTIES", (1e-3,))
    out, results = tmp_path / "cell", tmp_path / "results"
    argv = ["--model", "smoke", "--out", str(out), "--tasks", "C", "--random-seeds", "2"]
    curves.main([*argv, "--results", str(results)])
    cell = json.loads((results / "smoke-code-10-s0-C.json").read_text())  # names its task
    rows = cell["tasks"]["C"]
    for allocation in ALLOCATIONS:
        for selection in curves.SELECTIONS:
            for refit in (False, True):
                assert curves.row_name(0.4, allocation, selection, refit) in rows
            assert curves.row_name(("rho", 0.1), allocation, selection, False) in rows
    assert len(rows["40% | uniform | random"]["runs"]) == 2
    unpruned = rows["unpruned"]["activated_params"]
    cuts = [1 - rows[f"40% | {a} | MP"]["activated_params"] / unpruned for a in ALLOCATIONS]
    assert all(abs(c - 0.4) < 0.05 for c in cuts)  # one size, every allocation
    tuned = [rows[curves.row_name(0.4, a, s, True, True)] for a, s in curves.FINETUNED]
    assert {r["steps"] for r in tuned} == {rows["unpruned, trained on"]["steps"]} == {4}
    assert rows["slimming"]["penalty"] == 1e-3
    # a second run reads everything back
    curves.main(argv)
    assert json.loads((out / "results.json").read_text()) == cell


def test_the_committed_report_is_what_the_report_command_prints(capsys):
    """docs/results/sep-curves/report-tiny.md is the report of the committed cells."""
    results = Path(__file__).parents[2] / "docs" / "results" / "sep-curves"
    report.main(["--results", str(results), "--model", "tiny"])
    assert capsys.readouterr().out == (results / "report-tiny.md").read_text()
