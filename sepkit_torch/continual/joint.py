"""Joint training's data: every task's training set side by side, and batches of one task
each, the task drawn per batch (the all-in-one reference of the comparison, not
continual; the pipeline's ``joint`` method, :mod:`sepkit_torch.pipeline.strategies`).
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, Sampler

from sepkit_torch._errors import InvalidInputError

__all__ = ["JointData", "TaskPerBatchSampler"]


class JointData(Dataset):
    """The training sets of several tasks side by side (item ``(k, i)``: task k, item i).

    ``set_epoch`` reaches every task's set, so each epoch draws fresh crops and
    degradations as in sequential training.
    """

    def __init__(self, datasets: dict[str, Dataset]):
        if not datasets:
            raise InvalidInputError("`datasets` must hold at least one task's set; got none")
        self.tasks = list(datasets)
        self.datasets = list(datasets.values())

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)

    def __getitem__(self, index: tuple[int, int]):
        k, i = index
        return self.datasets[k][i]

    def set_epoch(self, epoch: int) -> None:
        for d in self.datasets:
            d.set_epoch(epoch)


class TaskPerBatchSampler(Sampler):
    """Batches of a single task each, the task drawn uniformly per batch.

    One epoch has as many batches as the tasks' sets have together (so joint training
    takes the same number of steps as learning the tasks one after another); within a
    task the items follow a fresh permutation, cycled if a task is drawn often.

    Attributes
    ----------
    counts : list of int
        Batches drawn per task so far (over every epoch).
    """

    def __init__(self, data: JointData, batch_size: int, generator: torch.Generator):
        if not isinstance(data, JointData):
            raise TypeError(f"`data` must be a JointData; got {type(data).__name__}")
        if batch_size < 1:
            raise InvalidInputError(f"`batch_size` must be >= 1; got {batch_size!r}")
        self.data = data
        self.batch_size = batch_size
        self.generator = generator
        self.sizes = [len(d) for d in data.datasets]
        self.counts = [0] * len(self.sizes)

    def __len__(self) -> int:
        return sum(max(1, n // self.batch_size) for n in self.sizes)

    def __iter__(self):
        g = self.generator
        orders = [torch.randperm(n, generator=g).tolist() for n in self.sizes]
        cursors = [0] * len(self.sizes)
        for _ in range(len(self)):
            k = int(torch.randint(len(self.sizes), (1,), generator=g))
            batch = []
            for _ in range(min(self.batch_size, self.sizes[k])):
                if cursors[k] == self.sizes[k]:
                    orders[k] = torch.randperm(self.sizes[k], generator=g).tolist()
                    cursors[k] = 0
                batch.append((k, orders[k][cursors[k]]))
                cursors[k] += 1
            self.counts[k] += 1
            yield batch
