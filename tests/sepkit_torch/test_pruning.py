"""SEP: group scoring against a per-sample reference, physical pruning, MP baseline."""

from __future__ import annotations

import copy
import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import sepkit
from sepkit.graph import check_dense_stack
from sepkit_torch import ECMRNet, complexity
from sepkit_torch._errors import InvalidInputError
from sepkit_torch.continual.pruning import (
    compensate_exits,
    gate_scores,
    group_contributions,
    group_graphs,
    group_parameters,
    magnitude_scores,
    prune,
    prune_branch,
    select_groups,
    selection_from_graphs,
    top_groups,
)
from sepkit_torch.continual.pruning.published import published_representatives, published_sweep
from sepkit_torch.continual.pruning.sep import similarity
from sepkit_torch.models.backbone import STAGE_NAMES

from .conftest import images
from .published_reference import public_representatives, public_sweep

SEP_GRAPHS = Path(__file__).parents[1] / "data" / "sep_graphs.npz"


def _trained_like(model: ECMRNet, task: str, seed: int = 0) -> None:
    """Give the branch non-trivial weights (beta != 0), as training would."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.branches[task].parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = ECMRNet.from_preset("tiny")
    m.add_task("C")
    _trained_like(m, "C")
    return m


@pytest.fixture
def model64(model):
    """The same model in float64, so that equivalences can be checked to 1e-10."""
    return model.double()


# ------------------------------------------------------------------ reference (Eqs. 4-10)


def _reference_corr(rows: np.ndarray, kind: str) -> np.ndarray:
    out = np.zeros((rows.shape[0], rows.shape[0]))
    for i in range(rows.shape[0]):
        for j in range(rows.shape[0]):
            a, b = rows[i], rows[j]
            if kind == "pearson":
                a, b = a - a.mean(), b - b.mean()
            na, nb = math.sqrt((a * a).sum()), math.sqrt((b * b).sum())
            out[i, j] = 0.0 if na == 0 or nb == 0 else float((a * b).sum()) / (na * nb)
    return out


def _reference_graph(feature: np.ndarray, groups: int, kind: str, base: float) -> np.ndarray:
    """One sample, one stage: the inter-group graph, written straight from Eqs. 4-8."""
    C = feature.shape[0]
    m = C // groups
    flat = feature.reshape(C, -1)
    group_features = []
    for g in range(groups):
        rows = flat[g * m : (g + 1) * m]
        if m == 1:
            group_features.append(rows[0])
            continue
        A = _reference_corr(rows, kind)
        np.fill_diagonal(A, 0.0)
        A[A < 0] = 1e-8
        terms = sepkit.node_entropy_1d(A, base=base)  # -(d/V) log(d/V)
        w = np.exp(terms - terms.max())
        w /= w.sum()
        group_features.append((w[:, None] * rows).sum(0))
    A = _reference_corr(np.array(group_features), kind)
    np.fill_diagonal(A, 0.0)
    A[A < 0] = 0.0
    return A


# The partition each SEP method asks of sepkit, as its documentation states it.
_PARTITIONS = {
    "sweep": {"method": "sweep", "order": "index", "max_iter": 10},
    "game": {"method": "game", "tau": 0.3, "max_iter": 5},
    "multilevel": {"method": "multilevel"},
}


def _reference_contribution(feature: np.ndarray, groups: int, weight: np.ndarray) -> list:
    """Per group, the mean over pixels of ||W_g x_g(p)||^2, pixel by pixel."""
    C = feature.shape[0]
    m = C // groups
    x = feature.reshape(C, -1)
    out = []
    for g in range(groups):
        W = weight[:, g * m : (g + 1) * m]
        out.append(
            float(
                np.mean([np.sum((W @ x[g * m : (g + 1) * m, p]) ** 2) for p in range(x.shape[1])])
            )
        )
    return out


def _reference_frequency(features, groups, kind, method, base, tie, weight, criterion):
    counts = np.zeros(groups)
    for f in features:
        A = _reference_graph(f, groups, kind, base)
        energy = _reference_contribution(f, groups, weight)
        if criterion == "contribution":  # self-loops: each group's share of the edge volume
            volume = A.sum()
            for o in range(groups):
                A[o, o] += energy[o] / sum(energy) * volume
        labels = sepkit.codeseg(A, base=base, **_PARTITIONS[method]).labels
        cost = sepkit.detachment_cost(A, labels, base=base)
        score = energy if criterion == "contribution" else cost
        for c in set(labels.tolist()):
            members = [o for o in range(groups) if labels[o] == c]
            top = max(score[o] for o in members)
            tied = [o for o in members if score[o] >= top - 1e-12 * abs(top)]
            if tie == "index":
                counts[min(tied)] += 1
            else:  # the largest contribution among the tied, then the lowest index
                counts[max(tied, key=lambda o: (energy[o], -o))] += 1
    return counts / len(features)


def _stage_features(model, task, x):
    branch = model.branches[task]
    out = {}
    hooks = [
        getattr(branch, s).blocks.register_forward_hook(
            lambda mod, args, o, s=s: out.__setitem__(s, o.detach().double().numpy())
        )
        for s in STAGE_NAMES
    ]
    with torch.no_grad():
        model(x, task=task)
    for h in hooks:
        h.remove()
    return out


@pytest.mark.parametrize(
    "kind, method, base, tie, criterion",
    [
        ("pearson", "sweep", math.e, "index", "published"),
        ("pearson", "sweep", math.e, "contribution", "published"),
        ("cosine", "game", 2.0, "index", "published"),
        ("pearson", "multilevel", math.e, "contribution", "published"),
        ("pearson", "sweep", math.e, "index", "contribution"),
        ("cosine", "multilevel", 2.0, "index", "contribution"),
    ],
)
def test_scoring_equals_per_sample_reference(model, kind, method, base, tie, criterion):
    pool = images(5, 1, 16, 20, seed=11)
    selection = select_groups(
        model,
        "C",
        pool,
        similarity_kind=kind,
        method=method,
        tie=tie,
        criterion=criterion,
        base=base,
        rho=0.3,
        batch_size=2,
    )
    feats = _stage_features(model, "C", pool)
    for s in STAGE_NAMES:
        stage = getattr(model.branches["C"], s)
        weight = stage.exit.weight.detach().double().numpy()[:, :, 0, 0]
        ref = _reference_frequency(
            feats[s], stage.groups, kind, method, base, tie, weight, criterion
        )
        np.testing.assert_allclose(selection.frequency[s], ref, atol=1e-12)
        np.testing.assert_array_equal(selection.keep[s], ref >= 0.3)
    assert selection.n_samples == 5
    assert set(selection.seconds) == {"forward", "similarity", "graph"}


def _paired_graphs(n_images: int, groups: int, pairs, seed: int) -> np.ndarray:
    """Inter-group graphs made of isolated pairs: in each pair both detachment costs are
    exactly equal, so only the tie rule decides."""
    rng = np.random.default_rng(seed)
    A = np.zeros((n_images, groups, groups))
    for i, j in pairs:
        w = rng.uniform(0.2, 1.0, n_images)
        A[:, i, j] = A[:, j, i] = w
    return A


@pytest.mark.parametrize("pairs", [[(0, 1), (2, 3)], [(3, 0), (1, 2)], [(5, 2), (7, 0)]])
def test_default_ties_split_a_tied_pair_evenly_whatever_its_indices(pairs):
    n = 8000
    graphs = {s: _paired_graphs(n, 8, pairs, seed=k) for k, s in enumerate(("e1", "d3"))}
    frequency, keep, _ = selection_from_graphs(graphs, rho=0.1, seed=3)
    index, _, _ = selection_from_graphs(graphs, rho=0.1, tie="index")
    small = {s: A[:500] for s, A in graphs.items()}
    published, _, _ = selection_from_graphs(small, rho=0.1, tie="published")
    for s in graphs:
        for i, j in pairs:
            np.testing.assert_allclose(frequency[s][[i, j]], [0.5, 0.5], atol=0.025)  # 4.5 sd
            # both clear rho: this project's choice; the public code keeps the lower index
            assert keep[s][i] and keep[s][j]
            assert index[s][min(i, j)] == 1.0 and index[s][max(i, j)] == 0.0
            assert published[s][min(i, j)] == 1.0 and published[s][max(i, j)] == 0.0


def test_published_ties_equal_the_public_rule_on_recorded_graphs():
    """The public code's exact selection (its sweep and costs in its float32 arithmetic,
    the first maximum), against a literal scalar reference, on the graphs recorded from
    trained tiny branches; its partitions are sepkit's sweep."""
    data = np.load(SEP_GRAPHS)
    tied = lower = 0
    for key in data.files:
        A = data[key]
        labels, costs = published_sweep(A)
        chosen = published_representatives(labels, costs)
        sweep = sepkit.codeseg_batch(A.astype(np.float64), method="sweep", order="index")
        for b in range(A.shape[0]):
            ref_labels, ref_costs = public_sweep(A[b])
            assert list(labels[b]) == ref_labels, (key, b)
            np.testing.assert_array_equal(costs[b], np.float32(ref_costs))
            assert list(np.flatnonzero(chosen[b])) == public_representatives(A[b]), (key, b)
            assert _same_partition(labels[b], sweep.labels[b]), (key, b)
            for k in set(labels[b]):  # isolated pairs: always the lower index
                members = np.flatnonzero(labels[b] == k)
                outside = A[b][np.ix_(members, np.setdiff1d(np.arange(A.shape[1]), members))]
                if len(members) == 2 and not outside.any():
                    tied += 1
                    lower += bool(chosen[b, members[0]])
    assert tied > 20 and lower == tied


def test_published_ties_on_two_isolated_pairs_keep_the_lower_indices():
    A = np.zeros((1, 4, 4), dtype=np.float32)
    A[0, 0, 1] = A[0, 1, 0] = 0.7
    A[0, 2, 3] = A[0, 3, 2] = 0.3
    labels, costs = published_sweep(A)
    assert labels[0].tolist() == [1, 1, 3, 3]  # each node joins its partner's cluster
    assert costs[0, 0] == costs[0, 1] and costs[0, 2] == costs[0, 3]  # bitwise equal
    assert public_representatives(A[0]) == [0, 2]
    frequency, keep, _ = selection_from_graphs({"e1": A}, rho=0.5, tie="published")
    assert keep["e1"].tolist() == [True, False, True, False]
    ours, _, _ = selection_from_graphs({"e1": np.repeat(A, 400, axis=0)}, rho=0.1, seed=0)
    assert ours["e1"].all()  # random ties keep all four over a pool


def test_published_ties_need_the_published_sweep_and_criterion():
    A = {"e1": np.zeros((1, 4, 4))}
    for kwargs in ({"method": "game"}, {"criterion": "contribution"}):
        with pytest.raises(InvalidInputError, match='tie="published"'):
            selection_from_graphs(A, tie="published", **kwargs)


def _same_partition(a, b) -> bool:
    def canonical(x):
        first: dict = {}
        return [first.setdefault(int(v), len(first)) for v in x]

    return canonical(a) == canonical(b)


def test_random_ties_follow_each_images_number_not_the_pool_split(model):
    pool = images(6, 1, 16, 20, seed=3)
    whole = select_groups(model, "C", pool, seed=5)
    first = select_groups(model, "C", pool[:4], seed=5, sample_ids=range(4))
    rest = select_groups(model, "C", pool[4:], seed=5, sample_ids=[4, 5])
    for s in STAGE_NAMES:
        counts = first.frequency[s] * 4 + rest.frequency[s] * 2
        np.testing.assert_allclose(whole.frequency[s] * 6, counts, atol=1e-9)
    other = select_groups(model, "C", pool, seed=6)
    assert any(not np.array_equal(other.frequency[s], whole.frequency[s]) for s in STAGE_NAMES), (
        "the seed must change the random tie choices"
    )


def test_group_contributions_equal_the_exit_convolution_energy():
    g = torch.Generator().manual_seed(4)
    feats = torch.randn(2, 12, 3, 5, generator=g, dtype=torch.float64)
    exit_conv = torch.nn.Conv2d(12, 7, 1).double()
    energy = group_contributions(feats, 4, exit_conv.weight)
    for k in range(4):
        kept = torch.zeros(12, dtype=torch.float64)
        kept[3 * k : 3 * k + 3] = 1
        y = torch.nn.functional.conv2d(feats * kept.view(1, -1, 1, 1), exit_conv.weight)
        torch.testing.assert_close(energy[:, k], (y**2).sum(1).mean((1, 2)))


def test_group_graphs_are_symmetric_non_negative_with_zero_diagonal(model):
    feats = torch.randn(3, 32, 6, 5, generator=torch.Generator().manual_seed(1))
    A = group_graphs(feats, 8)
    assert A.shape == (3, 8, 8) and A.dtype == torch.float64
    assert torch.equal(A, A.transpose(1, 2))
    assert (A >= 0).all() and (torch.diagonal(A, dim1=1, dim2=2) == 0).all()


def test_similarity_is_exactly_symmetric_at_pool_sizes():
    # a blocked matrix product rounds (i, j) and (j, i) apart at these sizes; sepkit refuses
    # graphs asymmetric beyond rounding of their own entries, which near-zero entries were
    x = torch.randn(64, 32, 2880, generator=torch.Generator().manual_seed(0))
    for kind in ("pearson", "cosine"):
        S = similarity(x, kind)
        assert torch.equal(S, S.transpose(-1, -2))
    A = group_graphs(torch.randn(16, 64, 48, 60, generator=torch.Generator().manual_seed(2)), 32)
    assert torch.equal(A, A.transpose(1, 2))
    check_dense_stack(A.numpy())  # accepted as it is


def test_constant_channels_give_finite_graphs():
    feats = torch.zeros(2, 8, 4, 4)
    A = group_graphs(feats, 4)
    assert torch.isfinite(A).all() and (A == 0).all()


# ------------------------------------------------------------------ physical pruning


def _keep_masks(model, task, seed=0):
    rng = np.random.default_rng(seed)
    keep = {}
    for s in STAGE_NAMES:
        g = getattr(model.branches[task], s).groups
        mask = rng.random(g) < 0.5
        mask[rng.integers(g)] = True
        keep[s] = mask
    return keep


def test_pruned_branch_equals_zeroed_groups(model64):
    model = model64
    cfg = model.config
    keep = _keep_masks(model, "C")
    branch = model.branches["C"]
    pruned = prune_branch(branch, cfg, keep)
    assert pruned.groups == tuple(int(keep[s].sum()) for s in STAGE_NAMES)
    # Reference: the unpruned branch with the dropped groups' exit inputs zeroed.
    zeroed = prune_branch(branch, cfg, {s: np.ones_like(keep[s]) for s in STAGE_NAMES})
    with torch.no_grad():
        for i, s in enumerate(STAGE_NAMES):
            m = cfg.group_widths[i]
            drop = np.repeat(~keep[s], m)
            getattr(zeroed, s).exit.weight[:, torch.as_tensor(drop)] = 0.0
    x = images(2, 1, 12, 16, seed=5).double()
    bottom = model.backbone.bottom
    with torch.no_grad():
        h = model.backbone.stem(x)
        torch.testing.assert_close(pruned(h, bottom), zeroed(h, bottom), rtol=1e-10, atol=1e-10)


def test_removing_groups_with_zero_exit_weights_changes_nothing(model64):
    model = model64
    cfg = model.config
    keep = _keep_masks(model, "C", seed=3)
    branch = model.branches["C"]
    with torch.no_grad():
        for i, s in enumerate(STAGE_NAMES):
            drop = np.repeat(~keep[s], cfg.group_widths[i])
            getattr(branch, s).exit.weight[:, torch.as_tensor(drop)] = 0.0
    pruned = prune_branch(branch, cfg, keep)
    with torch.no_grad():
        x = model.backbone.stem(images(1, 1, 8, 12, seed=6).double())
        torch.testing.assert_close(
            pruned(x, model.backbone.bottom),
            branch(x, model.backbone.bottom),
            rtol=1e-10,
            atol=1e-10,
        )


def test_prune_branch_keeps_everything_and_single_groups(model):
    cfg = model.config
    branch = model.branches["C"]
    all_kept = prune_branch(
        branch, cfg, {s: np.ones(cfg.groups[i], bool) for i, s in enumerate(STAGE_NAMES)}
    )
    with torch.no_grad():
        x = model.backbone.stem(images(1, 1, 8, 8, seed=2))
        assert torch.equal(all_kept(x, model.backbone.bottom), branch(x, model.backbone.bottom))
    one = prune_branch(branch, cfg, {s: [0] for s in STAGE_NAMES})
    assert one.groups == (1,) * 6


@pytest.mark.parametrize(
    "keep, match",
    [
        ({"e1": [0]}, r"`keep` must name every stage"),
        ("empty", r"must keep at least one group of stage 'e1'"),
        ("out-of-range", r"indices must lie in 0\.\.3; got \[7\]"),
        ("bad-mask", r"must be a mask of 4 groups; got shape \(3,\)"),
    ],
)
def test_prune_branch_bad_keep(model, keep, match):
    full = {s: [0] for s in STAGE_NAMES}
    if keep == "empty":
        keep = {**full, "e1": []}
    elif keep == "out-of-range":
        keep = {**full, "e1": [7]}
    elif keep == "bad-mask":
        keep = {**full, "e1": np.ones(3, bool)}
    with pytest.raises(ValueError, match=match):
        prune_branch(model.branches["C"], model.config, keep)


def test_magnitude_baseline_keeps_the_largest_groups(model):
    cfg = model.config
    scores = magnitude_scores(model.branches["C"], cfg)
    counts = {s: max(1, cfg.groups[i] // 2) for i, s in enumerate(STAGE_NAMES)}
    keep = top_groups(scores, counts)
    for s in STAGE_NAMES:
        assert keep[s].sum() == counts[s]
        assert scores[s][keep[s]].min() >= scores[s][~keep[s]].max()


@pytest.mark.parametrize("rho", [0, -0.1, 1.5, True])
def test_rho_out_of_range(model, rho):
    with pytest.raises(ValueError, match=r"`rho` must be a number in \(0, 1\]"):
        select_groups(model, "C", images(1, 1, 8, 8, seed=0), rho=rho)


def test_empty_pool(model):
    with pytest.raises(ValueError, match="at least one image"):
        select_groups(model, "C", [])


def test_complexity_drops_with_fewer_groups(model):
    before = complexity(model, (1, 1, 64, 64), task="C")
    pruned = prune_branch(model.branches["C"], model.config, _keep_masks(model, "C"))
    model.branches["C"] = pruned
    after = complexity(model, (1, 1, 64, 64), task="C")
    assert after.activated_params < before.activated_params
    assert after.macs < before.macs


def test_gate_baseline_learns_gates_and_leaves_the_model_alone(model):
    x = images(2, 1, 12, 12, seed=8)
    pairs = [(0.5 * x, x)] * 3
    before = {k: v.clone() for k, v in model.state_dict().items() if torch.is_tensor(v)}
    flags = [p.requires_grad for p in model.parameters()]
    scores = gate_scores(model, "C", pairs, penalty=1e-2, lr=0.05)
    for i, s in enumerate(STAGE_NAMES):
        assert scores[s].shape == (model.config.groups[i],)
        assert not np.allclose(scores[s], 1.0)  # the gates moved
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert flags == [p.requires_grad for p in model.parameters()]
    # the penalty shrinks the gates on average
    strong = gate_scores(model, "C", pairs, penalty=1.0, lr=0.05)
    assert np.mean([strong[s].mean() for s in STAGE_NAMES]) < np.mean(
        [scores[s].mean() for s in STAGE_NAMES]
    )


# ------------------------------------------------------------------ prune() on the model


def _expected_conv_params(cfg, groups):
    """Activated conv params of one path with `groups` per stage, from the layer shapes."""
    total = 0
    for i, g in enumerate(groups):
        c, m, blocks = cfg.interface_widths[i], cfg.group_widths[i], cfg.blocks[i]
        w = g * m
        total += (c * w + w) + (w * c + c)  # entrance, exit
        total += blocks * (2 * (w * m * 9 + w) + (w * m + w))  # conv1, conv2, attn
    b = cfg.base_width
    total += (1 * b * 9 + b) + (16 * b * 16 * b + 16 * b) + (b * 9 + 1)  # stem, bottom, out
    return total


def test_prune_on_the_model_isolated_counted_and_reloadable(model):
    model.add_task("B")
    _trained_like(model, "B", seed=1)
    x = images(2, 1, 12, 16, seed=9)
    with torch.no_grad():
        c_before = model(x, task="C")
    keep = _keep_masks(model, "B", seed=4)
    size_before = complexity(model, (1, 1, 64, 64), task="B")
    info = prune(model, "B", keep)
    assert info.groups == tuple(int(keep[s].sum()) for s in STAGE_NAMES)
    assert info.kept == tuple(tuple(np.flatnonzero(keep[s]).tolist()) for s in STAGE_NAMES)
    with torch.no_grad():
        assert torch.equal(model(x, task="C"), c_before)  # other tasks untouched
    size_after = complexity(model, (1, 1, 64, 64), task="B")
    assert size_before.activated_params == _expected_conv_params(model.config, model.config.groups)
    assert size_after.activated_params == _expected_conv_params(model.config, info.groups)
    assert size_after.macs < size_before.macs
    # trainable: exactly the pruned branch
    trainable = {id(p) for p in model.trainable_parameters()}
    assert trainable == {id(p) for p in model.branches["B"].parameters()}
    # save / load round trip
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    loaded = ECMRNet.from_state_dict(torch.load(buffer, weights_only=True))
    assert loaded.task("B").kept == info.kept
    with torch.no_grad():
        assert torch.equal(loaded(x, task="B"), model(x, task="B"))
        assert torch.equal(loaded(x, task="C"), c_before)


def test_pruning_twice_composes_kept_indices(model):
    first = {
        s: np.arange(g) % 2 == 0 for s, g in zip(STAGE_NAMES, model.config.groups, strict=True)
    }
    prune(model, "C", first)
    second = {s: [len(np.flatnonzero(first[s])) - 1] for s in STAGE_NAMES}
    info = prune(model, "C", second)
    assert info.kept == tuple((int(np.flatnonzero(first[s])[-1]),) for s in STAGE_NAMES)


def test_criterion_options_are_checked(model):
    pool = images(2, 1, 8, 8, seed=0)
    with pytest.raises(
        ValueError, match=r"`criterion` must be one of \('published', 'contribution'\)"
    ):
        select_groups(model, "C", pool, criterion="energy")
    with pytest.raises(ValueError, match=r"with `criterion=\"contribution\"` the contribution"):
        select_groups(model, "C", pool, criterion="contribution", tie="contribution")


def test_the_contribution_criterion_always_keeps_a_dominant_group():
    """Groups 0 and 1 are alike and pair up: the published rule keeps either at random.
    When group 1 carries nearly all of the stage's output, the contribution criterion
    always keeps it."""
    A = np.zeros((2000, 3, 3))
    for (i, j), w in {(0, 1): 1.0, (1, 2): 0.6, (0, 2): 0.5}.items():
        A[:, i, j] = A[:, j, i] = w
    energy = np.tile([1.0, 50.0, 1.0], (2000, 1))
    published, _, _ = selection_from_graphs({"e1": A}, seed=0)
    contribution, _, _ = selection_from_graphs(
        {"e1": A}, criterion="contribution", contributions={"e1": energy}, seed=0
    )
    np.testing.assert_allclose(published["e1"][:2], [0.5, 0.5], atol=0.04)
    assert contribution["e1"][1] == 1.0


# ------------------------------------------------------------------ budget, compensation


def test_a_budget_prunes_the_expensive_stages_first_and_reaches_its_share(model):
    pool = images(4, 1, 24, 32, seed=5)
    selection = select_groups(model, "C", pool, criterion="contribution", budget=0.3)
    params = group_parameters(model.branches["C"])
    removed = sum(params[s] * (~selection.keep[s]).sum() for s in STAGE_NAMES)
    total = sum(params[s] * len(selection.keep[s]) for s in STAGE_NAMES)
    assert 0.3 <= removed / total < 0.3 + max(params.values()) / total
    kept = dict(zip(STAGE_NAMES, selection.kept_counts, strict=True))
    assert kept["e1"] == 4 and kept["d3"] == 4  # the cheap full-resolution stages stay whole
    assert kept["e3"] < 32 and kept["d1"] < 32
    # inside a stage, the groups that represent their clusters least often go first
    for s in ("e3", "d1"):
        f = selection.frequency[s]
        assert f[~selection.keep[s]].max() <= f[selection.keep[s]].min()
    with pytest.raises(InvalidInputError, match="`budget` must be a number in"):
        select_groups(model, "C", pool, budget=1.0)
    # a threshold the budget would override is refused, not ignored
    with pytest.raises(InvalidInputError, match=r"`rho` would be ignored.*rho=0\.2, budget=0\.3"):
        select_groups(model, "C", pool, budget=0.3, rho=0.2)


def test_compensation_rebuilds_a_duplicated_group_exactly(model64):
    """A group whose channels repeat another group's is redundant: after removing it,
    the refitted exit convolution reproduces the unpruned stage exactly."""
    model = model64
    stage = model.branches["C"].e1
    width = model.config.group_widths[0]
    copy_from, copy_to = list(range(width)), list(range(width, 2 * width))
    with torch.no_grad():
        for module in [stage.entrance] + [
            getattr(b, n) for b in stage.blocks for n in ("norm", "conv1", "conv2", "attn")
        ]:
            module.weight[copy_to] = module.weight[copy_from]
            module.bias[copy_to] = module.bias[copy_from]
        for b in stage.blocks:
            b.beta[:, copy_to] = b.beta[:, copy_from]
    original = copy.deepcopy(model)
    pool = images(3, 1, 24, 32, seed=6).double()
    keep = {
        s: np.ones(g, dtype=bool) for s, g in zip(STAGE_NAMES, model.config.groups, strict=True)
    }
    keep["e1"][1] = False
    prune(model, "C", keep)
    plain = model(pool, task="C")
    errors = compensate_exits(model, "C", original, pool, ridge=1e-12)
    assert errors["e1"] < 1e-10 and max(errors.values()) < 1e-8
    target = original(pool, task="C")
    scale = target.abs().max()
    assert (model(pool, task="C") - target).abs().max() < 1e-7 * scale
    assert (plain - target).abs().max() > 1e-3 * scale


def test_compensation_lowers_the_stage_errors_of_any_pruning(model):
    original = copy.deepcopy(model)
    pool = images(4, 1, 24, 32, seed=7)
    keep = {s: np.arange(g) % 2 == 0 for s, g in zip(STAGE_NAMES, model.config.groups, strict=True)}
    prune(model, "C", keep)
    before = torch.nn.functional.mse_loss(model(pool, task="C"), original(pool, task="C"))
    errors = compensate_exits(model, "C", original, pool)
    after = torch.nn.functional.mse_loss(model(pool, task="C"), original(pool, task="C"))
    assert all(0 <= e < 1 for e in errors.values()) and after < before
    with pytest.raises(InvalidInputError, match="`pool` must be"):
        compensate_exits(model, "C", original, pool[0])


def test_compensation_takes_batches_of_different_sizes(model):
    keep = {s: np.arange(g) % 2 == 0 for s, g in zip(STAGE_NAMES, model.config.groups, strict=True)}
    original = copy.deepcopy(model)
    prune(model, "C", keep)
    pruned = copy.deepcopy(model)
    pool = images(4, 1, 24, 32, seed=8)
    # one tensor split in two batches, or the same two batches as a list: the same fit
    whole = compensate_exits(model, "C", original, pool, batch_size=2)
    listed = compensate_exits(pruned, "C", original, [pool[:2], pool[2:]])
    assert whole == pytest.approx(listed, rel=1e-9)
    # frames of two sizes (a folder's images) fit together
    mixed = compensate_exits(pruned, "C", original, [pool[:2], images(1, 1, 32, 40, seed=9)])
    assert set(mixed) == set(STAGE_NAMES) and all(0 <= e < 1 for e in mixed.values())
    with pytest.raises(InvalidInputError, match=r"list of such batches; got \[\]"):
        compensate_exits(pruned, "C", original, [])
