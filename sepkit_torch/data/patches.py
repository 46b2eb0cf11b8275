"""How a data set's items are cut from its frames: crop and stride arguments, the sliding
or random windows of every frame, flips, and a cache of the last degraded frames.

Shared by the image-folder data sets (:mod:`sepkit_torch.data.folders`) and the procedural
one (:mod:`sepkit_torch.data.datasets`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from sepkit_torch._errors import InvalidInputError
from sepkit_torch.data.image_io import DatasetError
from sepkit_torch.data.registry import check_preset, parse_task

__all__ = ["FRAME_CACHE", "window_starts"]

# Seed streams of an item's generator: training draws and the fixed test degradations.
TRAIN, TEST = 0, 1


def crop_arg(crop_size) -> tuple[int, int] | None:
    if crop_size is None:
        return None
    if isinstance(crop_size, int) and not isinstance(crop_size, bool):
        crop_size = (crop_size, crop_size)
    try:
        ch, cw = crop_size
        ok = all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (ch, cw))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InvalidInputError(
            f"`crop_size` must be None, a positive int or an (h, w) pair; got {crop_size!r}"
        )
    return (ch, cw)


def check_sizes(root, files, sizes, crop) -> None:
    if crop is None:
        return
    small = [(p, s) for p, s in zip(files, sizes, strict=True) if s[0] < crop[0] or s[1] < crop[1]]
    if small:
        shown = ", ".join(f"{p.name} ({h}x{w})" for p, (h, w) in small[:5])
        raise DatasetError(
            f"`crop_size` {crop[0]}x{crop[1]} is larger than {len(small)} image(s) of "
            f"{str(root)!r}, e.g. {shown} (height x width); use a smaller crop_size or "
            "remove those images"
        )


def crop_flip(images: Sequence[torch.Tensor], crop, flips: bool, g: torch.Generator):
    """The same random crop (and flips) of each of `images` ``(1, H, W)``."""
    h, w = images[0].shape[-2:]
    if crop is not None:
        top = int(torch.randint(0, h - crop[0] + 1, (), generator=g))
        left = int(torch.randint(0, w - crop[1] + 1, (), generator=g))
        images = [x[:, top : top + crop[0], left : left + crop[1]] for x in images]
    if flips:
        if float(torch.rand((), generator=g)) < 0.5:
            images = [x.flip(-1) for x in images]
        if float(torch.rand((), generator=g)) < 0.5:
            images = [x.flip(-2) for x in images]
    return [x.contiguous() for x in images]


def wrap_index(i, n: int) -> int:
    if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
        raise TypeError(f"index must be an int; got {type(i).__name__}")
    if not -n <= i < n:
        raise IndexError(f"index {i} out of range for a data set of {n} items")
    return int(i) % n


def window_starts(length: int, patch: int, stride: int) -> list[int]:
    """Offsets of a sliding window of `patch` pixels with `stride` along `length` pixels.

    As the public ECMRNet code cuts its training patches: windows that would cross the
    far edge are left out (a 640 x 512 frame gives 4 x 3 = 12 windows of 256 at stride 128).

    >>> window_starts(640, 256, 128), window_starts(512, 256, 128)
    ([0, 128, 256, 384], [0, 128, 256])
    """
    return list(range(0, length - patch + 1, stride))


def stride_arg(stride) -> int | None:
    if stride is None:
        return None
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise InvalidInputError(f"`stride` must be None or a positive int; got {stride!r}")
    return stride


class Patches:
    """Which window of which frame every training item is.

    A frame is one whole image (or procedural scene), degraded as a whole; its items are
    consecutive: every sliding-window position (`stride`), or `repeat` random crops, or the
    whole frame `repeat` times when `crop` is None.
    """

    def __init__(self, shapes: list[tuple[int, int]], crop, stride: int | None, repeat: int):
        self.crop, self.stride = crop, stride
        if crop is not None and stride is not None:
            self.grids = [
                [
                    (t, l)
                    for t in window_starts(h, crop[0], stride)
                    for l in window_starts(w, crop[1], stride)
                ]
                for h, w in shapes
            ]
            counts = [len(grid) for grid in self.grids]
        else:
            self.grids = None
            counts = [repeat] * len(shapes)
        self.counts = counts
        self.first = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.first[-1])

    def locate(self, i: int) -> tuple[int, int]:
        """(frame, window) of item `i`."""
        f = int(np.searchsorted(self.first, i, side="right")) - 1
        return f, i - int(self.first[f])

    def cut(self, images, f: int, k: int, flips: bool, g: torch.Generator):
        """Window `k` of frame `f` of each of `images` (sliding, or random from `g`)."""
        if self.grids is not None:
            top, left = self.grids[f][k]
            ch, cw = self.crop
            images = [x[:, top : top + ch, left : left + cw] for x in images]
            return crop_flip(images, None, flips, g)
        return crop_flip(images, self.crop, flips, g)


class FrameCache:
    """The last few degraded frames, so the windows of one frame share its work."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._frames: dict = {}

    def get(self, key, make):
        if key in self._frames:
            self._frames[key] = self._frames.pop(key)  # most recent last
        else:
            self._frames[key] = make()
            while len(self._frames) > self.capacity:
                del self._frames[next(iter(self._frames))]
        return self._frames[key]


# Degraded frames kept per data set (per DataLoader worker): a frame-grouped batch order
# (distributed.ShardedBatchSampler with `frame_items`) needs about one batch of frames.
FRAME_CACHE = 64


def task_arg(task: str, preset: str) -> str:
    parse_task(task)
    check_preset(preset)
    return task
