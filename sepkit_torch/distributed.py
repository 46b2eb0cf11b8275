"""Data-parallel training over several processes (``torchrun``), for the pipeline.

One process per device; every process holds the whole model. What is split and how:

- **training**: each global batch (the configured ``batch_size``, drawn exactly as one
  process would draw it) is cut into equal, contiguous parts, one per rank; DDP averages
  the gradients, so a step equals the single-process step up to rounding;
- **evaluation**: every rank scores every ``world_size``-th image; the per-image scores
  are summed into one vector that every rank then holds (each entry is written by one
  rank only, so the sum is exact and the mean is the single-process mean);
- **SEP**: every rank scores a contiguous part of the pool and the selection counts are
  summed, so every rank prunes the same groups;
- **files**: rank 0 writes checkpoints and reports, the others wait at a barrier.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; without them (a plain
``python`` start) everything runs in one process and no process group is created. The
backend is ``nccl`` on CUDA and ``gloo`` on the CPU.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from sepkit_torch._errors import InvalidInputError

__all__ = [
    "DistContext",
    "ShardedBatchSampler",
    "device_of",
    "init_distributed",
    "scores_by_index",
    "shard_range",
    "wrap_model",
]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands among the processes of a run (read-only).

    Attributes
    ----------
    rank : int
        This process, ``0 .. world_size - 1``; rank 0 writes the files.
    world_size : int
        Number of processes; 1 without ``torchrun``.
    local_rank : int
        This process on its machine (its CUDA device index).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        """True when several processes share the work."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True for the process that writes checkpoints and reports."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every process arrives here (no-op in one process)."""
        if self.distributed:
            dist.barrier()

    def all_reduce_sum(self, values: np.ndarray) -> np.ndarray:
        """The element-wise sum of `values` over every process (a copy in one process)."""
        values = np.asarray(values)
        if not self.distributed:
            return values.copy()
        t = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64)).to(self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        out = t.cpu().numpy()
        return np.rint(out).astype(values.dtype) if values.dtype.kind in "iub" else out

    @property
    def device(self) -> torch.device:
        """Where collective operations run: the local GPU under nccl, else the CPU."""
        if self.distributed and dist.get_backend() == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise InvalidInputError(
            f"environment variable {name} must be an integer (torchrun sets it); got {text!r}"
        ) from None


def init_distributed(device: str = "cpu") -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment.

    Parameters
    ----------
    device : {"cpu", "cuda"}
        ``"cuda"``: backend ``nccl`` and this process's GPU becomes ``cuda:LOCAL_RANK``;
        ``"cpu"``: backend ``gloo``.

    Returns
    -------
    DistContext
        ``DistContext()`` (one process) when ``WORLD_SIZE`` is unset or 1.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size < 1:
        raise InvalidInputError(f"environment variable WORLD_SIZE must be >= 1; got {world_size}")
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if not 0 <= rank < world_size:
        raise InvalidInputError(
            f"environment variable RANK must be in 0..{world_size - 1}; got {rank}"
        )
    if world_size == 1:
        return DistContext()
    if device not in ("cpu", "cuda"):
        raise InvalidInputError(f"`device` must be 'cpu' or 'cuda'; got {device!r}")
    if device == "cuda":
        if not torch.cuda.is_available() or local_rank >= torch.cuda.device_count():
            raise InvalidInputError(
                f"`device` is 'cuda' but process {rank} (LOCAL_RANK {local_rank}) has no GPU "
                f"of its own ({torch.cuda.device_count()} visible); start at most that many "
                "processes per machine"
            )
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    if (dist.get_rank(), dist.get_world_size()) != (rank, world_size):
        raise InvalidInputError(
            f"the process group has rank {dist.get_rank()} of {dist.get_world_size()}; the "
            f"environment says {rank} of {world_size}"
        )
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank)


def device_of(context: DistContext, name: str) -> torch.device:
    """The device of this process: ``cuda:LOCAL_RANK`` for ``"cuda"`` when distributed."""
    if name == "cuda" and context.distributed:
        return torch.device("cuda", context.local_rank)
    return torch.device(name)


class ShardedBatchSampler(Sampler[list[int]]):
    """This rank's part of each batch of a shuffled epoch.

    Each epoch draws ``torch.randperm(length, generator=generator)`` and cuts it into
    batches of `batch_size` exactly as ``DataLoader(shuffle=True, generator=generator,
    batch_size=batch_size, drop_last=drop_last)`` does; rank ``r`` gets the ``r``-th of
    ``world_size`` equal, contiguous parts of every batch. With one rank the batches are
    those of that DataLoader, so a run does not change when it is started by torchrun
    with one process. Pass the same `generator` to the DataLoader: it draws one number
    from it before each epoch, as it would without this sampler.

    Parameters
    ----------
    length : int
        Items in the dataset.
    batch_size : int
        The global batch; divisible by `world_size`.
    generator : torch.Generator
    rank, world_size : int
    drop_last : bool
        Drop an incomplete last batch; required with more than one rank.
    frame_items : sequence of int, optional
        When the items are windows of whole frames (consecutive items of a frame, this many
        per frame; ``dataset.frame_items``): visit the frames in random order, `batch_size`
        frames at a time, and shuffle the windows of those frames together. Batches are
        then almost as mixed as a full shuffle, and each frame is made once per epoch
        (the data sets keep the last few frames). Without it, or with one item per frame,
        the order is the plain shuffle above.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.distributed import ShardedBatchSampler
    >>> g = lambda: torch.Generator().manual_seed(0)
    >>> list(ShardedBatchSampler(6, 4, generator=g(), drop_last=True))
    [[2, 5, 3, 0]]
    >>> [list(ShardedBatchSampler(6, 4, generator=g(), rank=r, world_size=2, drop_last=True))
    ...  for r in (0, 1)]
    [[[2, 5]], [[3, 0]]]
    """

    def __init__(
        self,
        length: int,
        batch_size: int,
        *,
        generator: torch.Generator,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
        frame_items=None,
    ):
        for name, value, low in (
            ("length", length, 1),
            ("batch_size", batch_size, 1),
            ("world_size", world_size, 1),
            ("rank", rank, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidInputError(f"`{name}` must be an int >= {low}; got {value!r}")
        if rank >= world_size:
            raise InvalidInputError(f"`rank` must be below `world_size` {world_size}; got {rank}")
        if batch_size % world_size:
            raise InvalidInputError(
                f"`batch_size` must be divisible by the number of processes {world_size} (each "
                f"takes an equal part of every batch); got {batch_size}"
            )
        if world_size > 1 and (not drop_last or length < batch_size):
            raise InvalidInputError(
                f"with {world_size} processes every batch must be complete: `drop_last` must "
                f"be True and `batch_size` ({batch_size}) at most the dataset's {length} items"
            )
        self.length, self.batch_size = length, batch_size
        self.generator, self.drop_last = generator, drop_last
        self.rank, self.world_size = rank, world_size
        self.frame_starts = None
        if frame_items is not None and max(frame_items, default=1) > 1:
            counts = np.asarray(frame_items, dtype=np.int64)
            if counts.min() < 1 or counts.sum() != length:
                raise InvalidInputError(
                    f"`frame_items` must be positive counts summing to `length` {length}; "
                    f"got {counts.size} counts summing to {int(counts.sum())}"
                )
            self.frame_starts = np.concatenate([[0], np.cumsum(counts)])

    def __len__(self) -> int:
        full, rest = divmod(self.length, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def _order(self) -> list[int]:
        if self.frame_starts is None:
            return torch.randperm(self.length, generator=self.generator).tolist()
        starts = self.frame_starts
        frames = torch.randperm(starts.size - 1, generator=self.generator).tolist()
        order: list[int] = []
        for c in range(0, len(frames), self.batch_size):
            items = np.concatenate(
                [np.arange(starts[f], starts[f + 1]) for f in frames[c : c + self.batch_size]]
            )
            order += items[torch.randperm(items.size, generator=self.generator).numpy()].tolist()
        return order

    def __iter__(self) -> Iterator[list[int]]:
        order = self._order()
        part = self.batch_size // self.world_size
        for b in range(len(self)):
            batch = order[b * self.batch_size : (b + 1) * self.batch_size]
            if self.world_size == 1:
                yield batch
            else:
                yield batch[self.rank * part : (self.rank + 1) * part]
        # RandomSampler draws one more (empty) permutation when it is exhausted; drawing it
        # too keeps the generator, and so every later epoch, identical.
        self._order()


def shard_range(n: int, context: DistContext) -> range:
    """This rank's contiguous part of ``range(n)`` (sizes differ by at most one).

    Examples
    --------
    >>> from sepkit_torch.distributed import DistContext, shard_range
    >>> [shard_range(5, DistContext(rank=r, world_size=2)) for r in (0, 1)]
    [range(0, 3), range(3, 5)]
    """
    per, extra = divmod(n, context.world_size)
    start = context.rank * per + min(context.rank, extra)
    return range(start, start + per + (1 if context.rank < extra else 0))


def scores_by_index(
    context: DistContext, n: int, score: Callable[[int], list[float]], width: int
) -> np.ndarray:
    """``score(i)`` for every ``i < n``, each computed by one rank, held by every rank.

    Returns an ``(n, width)`` float64 array. Rank ``r`` computes the rows
    ``r, r + world_size, ...``; the others stay 0 until the sum over the ranks, so the
    array equals the single-process one exactly.
    """
    values = np.zeros((n, width), dtype=np.float64)
    for i in range(context.rank, n, context.world_size):
        values[i] = score(i)
    return context.all_reduce_sum(values)


def wrap_model(model: nn.Module, context: DistContext, device: torch.device) -> nn.Module:
    """`model` inside ``DistributedDataParallel`` when distributed, else `model` itself.

    Only parameters with ``requires_grad`` take part (an ECMRNet's frozen branches do
    not). Buffers are not re-broadcast at every forward: the model has no running
    statistics, and the pretrained stages (buffers) never change after pretraining.
    """
    if not context.distributed:
        return model
    ddp = nn.parallel.DistributedDataParallel
    # the name of "no buffer sync at every forward" changed in torch 2.13
    if "forward_sync_buffers" in inspect.signature(ddp.__init__).parameters:
        no_sync = {"forward_sync_buffers": False}
    else:
        no_sync = {"broadcast_buffers": False}
    return ddp(model, device_ids=[device.index] if device.type == "cuda" else None, **no_sync)
