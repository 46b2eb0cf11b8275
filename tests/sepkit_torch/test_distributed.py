"""Data-parallel pieces: batch sharding, index-wise scores, SEP counts over ranks and DDP
training, the last three in two real gloo processes on the CPU."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from sepkit_torch import ECMRNet, InvalidInputError
from sepkit_torch.continual.pruning import select_groups
from sepkit_torch.distributed import (
    DistContext,
    ShardedBatchSampler,
    init_distributed,
    scores_by_index,
    shard_range,
    wrap_model,
)
from sepkit_torch.pipeline import PipelineConfig, run
from sepkit_torch.pipeline.state import load_checkpoint

from .conftest import images, pretend_pretrained


def _dataset(n=10):
    return TensorDataset(torch.arange(n))


def test_one_rank_draws_the_batches_of_a_shuffled_dataloader():
    data = _dataset(10)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    plain = DataLoader(data, batch_size=4, shuffle=True, generator=g1, drop_last=True)
    sharded = DataLoader(
        data,
        batch_sampler=ShardedBatchSampler(10, 4, generator=g2, drop_last=True),
        generator=g2,
    )
    for _ in range(3):  # epochs: the generator advances the same way
        a = [b[0].tolist() for b in plain]
        b = [b[0].tolist() for b in sharded]
        assert a == b and len(a) == 2


def test_ranks_split_every_batch_into_equal_contiguous_parts():
    whole = list(ShardedBatchSampler(12, 6, generator=torch.Generator().manual_seed(1)))
    parts = [
        list(
            ShardedBatchSampler(
                12, 6, generator=torch.Generator().manual_seed(1), rank=r, world_size=3
            )
        )
        for r in range(3)
    ]
    for b, batch in enumerate(whole):
        assert sum((p[b] for p in parts), []) == batch
        assert {len(p[b]) for p in parts} == {2}


def test_incomplete_last_batch_kept_in_one_process_only():
    g = torch.Generator().manual_seed(0)
    batches = list(ShardedBatchSampler(5, 2, generator=g, drop_last=False))
    assert [len(b) for b in batches] == [2, 2, 1]
    assert sorted(sum(batches, [])) == list(range(5))
    with pytest.raises(InvalidInputError, match="`drop_last` must be True"):
        ShardedBatchSampler(5, 2, generator=g, rank=0, world_size=2, drop_last=False)
    with pytest.raises(InvalidInputError, match=r"`batch_size` \(8\) at most the dataset's 5"):
        ShardedBatchSampler(5, 8, generator=g, rank=0, world_size=2)
    with pytest.raises(InvalidInputError, match="divisible by the number of processes 2.*got 3"):
        ShardedBatchSampler(6, 3, generator=g, rank=0, world_size=2)
    with pytest.raises(InvalidInputError, match="`rank` must be below `world_size` 2; got 2"):
        ShardedBatchSampler(6, 2, generator=g, rank=2, world_size=2)


@pytest.mark.parametrize("n", [0, 1, 5, 8])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_shard_ranges_cover_the_pool_once(n, world):
    ranges = [shard_range(n, DistContext(rank=r, world_size=world)) for r in range(world)]
    assert sum((list(r) for r in ranges), []) == list(range(n))


def test_one_process_needs_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = init_distributed("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed) == (0, 1, True, False)
    assert not dist.is_initialized()
    model = torch.nn.Linear(2, 2)
    assert wrap_model(model, ctx, torch.device("cpu")) is model
    values = scores_by_index(ctx, 3, lambda i: [i, 2 * i], 2)
    np.testing.assert_array_equal(values, [[0, 0], [1, 2], [2, 4]])


def test_bad_environment_is_named(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(InvalidInputError, match="WORLD_SIZE must be an integer.*'two'"):
        init_distributed("cpu")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(InvalidInputError, match=r"RANK must be in 0..1; got 5"):
        init_distributed("cpu")


# ----------------------------------------------------------------- two real processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model():
    torch.manual_seed(0)
    model = pretend_pretrained(ECMRNet.from_preset("tiny"))
    model.add_task("C")
    return pretend_pretrained(model, seed=1)


def _train(model, loader, ctx):
    wrapped = wrap_model(model, ctx, torch.device("cpu"))
    optimizer = torch.optim.Adam(model.trainable_parameters(), lr=1e-2)
    for degraded, clean in loader:
        optimizer.zero_grad()
        F.l1_loss(wrapped(degraded, task="C"), clean).backward()
        optimizer.step()
    return {k: v.detach().clone() for k, v in model.branches["C"].state_dict().items()}


def _torchrun_environment(rank: int, world: int, port: int) -> None:
    """What torchrun would set for process `rank` of `world`."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
    )


def _worker(rank, world, port, folder):
    torch.set_num_threads(1)
    _torchrun_environment(rank, world, port)
    ctx = init_distributed("cpu")
    try:
        out = {"rank": ctx.rank}
        out["sum"] = ctx.all_reduce_sum(np.array([rank + 1, 10], dtype=np.int64))
        out["scores"] = scores_by_index(ctx, 5, lambda i: [i * i + 0.1], 1)
        # SEP: this rank's part of the pool, counts summed over the ranks
        pool = images(5, 1, 16, 20, seed=2)
        model = _model()
        part = shard_range(len(pool), ctx)
        mine = select_groups(
            model, "C", pool[part.start : part.stop], sample_ids=part, reduce=ctx.all_reduce_sum
        )
        out["sep"] = (mine.frequency, mine.keep, mine.n_samples)
        # DDP: each rank trains on its half of every batch
        pairs = TensorDataset(images(8, 1, 12, 12, seed=3), images(8, 1, 12, 12, seed=4))
        g = torch.Generator().manual_seed(5)
        sampler = ShardedBatchSampler(8, 4, generator=g, rank=rank, world_size=world)
        out["ddp"] = _train(_model(), DataLoader(pairs, batch_sampler=sampler, generator=g), ctx)
        torch.save(out, os.path.join(folder, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, _free_port(), str(folder)), nprocs=2, join=True)
    return [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(2)]


def test_two_ranks_sum_and_share_scores(two_ranks):
    for out in two_ranks:
        np.testing.assert_array_equal(out["sum"], [3, 20])
        assert out["sum"].dtype == np.int64
        np.testing.assert_array_equal(out["scores"][:, 0], [i * i + 0.1 for i in range(5)])


def test_sep_over_two_ranks_selects_as_one_process(two_ranks):
    whole = select_groups(_model(), "C", images(5, 1, 16, 20, seed=2))
    for out in two_ranks:
        frequency, keep, n = out["sep"]
        assert n == 5
        for s in whole.frequency:
            np.testing.assert_array_equal(frequency[s], whole.frequency[s])
            np.testing.assert_array_equal(keep[s], whole.keep[s])


def test_ddp_over_two_ranks_trains_as_one_process_on_whole_batches(two_ranks):
    pairs = TensorDataset(images(8, 1, 12, 12, seed=3), images(8, 1, 12, 12, seed=4))
    g = torch.Generator().manual_seed(5)
    reference = _train(_model(), DataLoader(pairs, 4, shuffle=True, generator=g), DistContext())
    start = _model().branches["C"].state_dict()
    a, b = two_ranks[0]["ddp"], two_ranks[1]["ddp"]
    for name, value in reference.items():
        assert torch.equal(a[name], b[name]), name  # the ranks hold identical weights
        torch.testing.assert_close(a[name], value, rtol=1e-4, atol=1e-5)
    assert any(not torch.equal(reference[k], start[k]) for k in reference)  # it did train


# ----------------------------------------------------------------- the pipeline, two ranks


def _pipeline_worker(rank, world, port, out, record, stop_after):
    import sepkit_torch.pipeline as pipeline
    import sepkit_torch.pipeline.runner as runner
    import sepkit_torch.pipeline.strategies as strategies

    torch.set_num_threads(1)
    _torchrun_environment(rank, world, port)
    writers = []

    def who_writes(real):  # records the caller, then does the real write
        def write(*args, **kwargs):
            writers.append(real.__name__)
            return real(*args, **kwargs)

        return write

    for name in ("commit_stage", "write_report"):
        setattr(runner, name, who_writes(getattr(runner, name)))
    last, done = {}, []
    real_do = strategies.ECMRNetStrategy.do

    def do_and_keep(self, stage):  # every rank's state after each stage
        real_do(self, stage)
        done.append(stage.name)
        last.update(model=self.state_dict()["model"], done=list(done))

    strategies.ECMRNetStrategy.do = do_and_keep
    config = pipeline.PipelineConfig.from_preset("smoke", out=out, tasks=("C", "B", "CB"))
    report = pipeline.run(config, progress=False, stop_after=stop_after)
    torch.save(
        {"writers": writers, "report": report.to_dict(), **last},
        os.path.join(record, f"rank{rank}.pt"),
    )


def _launch(tmp_path, name, stop_after=None):
    record = tmp_path / f"{name}-record"
    record.mkdir()
    out = str(tmp_path / name)
    mp.spawn(
        _pipeline_worker,
        args=(2, _free_port(), out, str(record), stop_after),
        nprocs=2,
        join=True,
    )
    return out, [torch.load(record / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.fixture(scope="module")
def stopped_two_rank_run(tmp_path_factory):
    """Two ranks: C trained, pruned, fine-tuned and evaluated, B trained, then a stop."""
    return _launch(tmp_path_factory.mktemp("pipeline"), "run", stop_after="B:train")


def test_two_rank_pipeline_ranks_agree_and_rank_0_writes(stopped_two_rank_run):
    out, (r0, r1) = stopped_two_rank_run
    assert r0["done"] == r1["done"] and r0["done"][-1] == "B:train"
    assert r0["model"].keys() == r1["model"].keys()
    for key, value in r0["model"].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, r1["model"][key]), key
    assert r0["model"]["_extra_state"] == r1["model"]["_extra_state"]  # same groups kept
    pairs = zip(r0["report"]["pruning"].values(), r1["report"]["pruning"].values(), strict=True)
    for p0, p1 in pairs:
        p0.pop("seconds"), p1.pop("seconds")  # each rank's own timing
        assert p0 == p1
    assert r0["report"]["pruning"].keys() == r1["report"]["pruning"].keys() == {"C"}
    assert r0["report"]["metrics"] == r1["report"]["metrics"]
    assert "commit_stage" in r0["writers"]
    assert r1["writers"] == []
    assert sorted(p.name for p in Path(out).iterdir()) == ["checkpoint.pt", "config.json"]


def test_two_rank_checkpoint_resumes_in_one_process(stopped_two_rank_run):
    out, (r0, _) = stopped_two_rank_run
    config = PipelineConfig.from_preset("smoke", out=out, tasks=("C", "B", "CB"))
    report = run(config, resume=True, progress=False)
    assert report.tasks == ["C", "B", "CB"]
    assert report.metrics[0] == r0["report"]["metrics"][0]  # C's scores, from the 2 ranks
    assert [row[0] for row in report.metrics] == [report.metrics[0][0]] * 3  # no forgetting
    assert "CB:evaluate" in load_checkpoint(Path(out) / "checkpoint.pt")["done"]
    assert (Path(out) / "report.md").is_file()


def test_frame_grouped_batches_visit_every_window_once_a_few_frames_at_a_time():
    counts = [3, 1, 4, 2, 3, 3, 2]  # windows per frame, consecutive items
    frame_of = np.repeat(np.arange(len(counts)), counts)
    g = torch.Generator().manual_seed(0)
    sampler = ShardedBatchSampler(18, 3, generator=g, drop_last=False, frame_items=counts)
    for _ in range(2):
        batches = list(sampler)
        order = [i for b in batches for i in b]
        assert sorted(order) == list(range(18))
        # frames come 3 (the batch size) at a time: between a frame's first and last
        # window lie windows of at most 3 frames
        seen = np.array([frame_of[i] for i in order])
        for f in range(len(counts)):
            where = np.flatnonzero(seen == f)
            assert len(set(seen[where[0] : where[-1] + 1])) <= 3
    # one window per frame: exactly the plain shuffle
    plain = ShardedBatchSampler(
        7, 3, generator=torch.Generator().manual_seed(1), frame_items=[1] * 7
    )
    same = ShardedBatchSampler(7, 3, generator=torch.Generator().manual_seed(1))
    assert list(plain) == list(same)
    with pytest.raises(
        ValueError, match=r"`frame_items` must be positive counts summing to `length` 18"
    ):
        ShardedBatchSampler(18, 3, generator=g, frame_items=[3, 3])
