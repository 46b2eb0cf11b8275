"""Paired (degraded, clean) data sets: a folder of clean images degraded online, paired
folders of a benchmark, and procedural thermal scenes when there is no folder at all.

Every data set returns ``(degraded, clean)``, two float32 tensors ``(1, h, w)`` in
``[0, 1]``, and is deterministic: item ``i`` of epoch ``e`` is the same on every run and in
every DataLoader worker (its generator is seeded from ``(seed, e, i)``; call
``set_epoch(e)`` once per epoch to get fresh crops and degradations).

Images are read by :func:`~sepkit_torch.data.read_image` (formats and the
scaling of 16-bit images: :mod:`sepkit_torch.data.image_io`). The folder data sets live in
:mod:`sepkit_torch.data.folders`, the windows every item is cut from in
:mod:`sepkit_torch.data.patches`; this module holds the procedural data set and
:func:`make_dataset`, which builds either kind.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from sepkit_torch._errors import InvalidInputError
from sepkit_torch.data.degradations import quantize
from sepkit_torch.data.folders import DegradedImageFolder
from sepkit_torch.data.patches import (
    FRAME_CACHE,
    TEST,
    TRAIN,
    FrameCache,
    Patches,
    stride_arg,
    task_arg,
    wrap_index,
)
from sepkit_torch.data.registry import degrade
from sepkit_torch.data.sampling import image_size, mix_seed
from sepkit_torch.data.synthetic import check_style, thermal_scene

__all__ = ["SyntheticThermalDataset", "make_dataset"]


class SyntheticThermalDataset(Dataset):
    """Procedural thermal scenes (:func:`~sepkit_torch.data.thermal_scene`), degraded by a task.

    The embedded default: no files needed. Frame ``f`` of epoch ``e`` is drawn and degraded
    whole from ``(seed, split, e, f)``; the test split ignores the epoch and uses other
    seeds than the training split, so it is a fixed, disjoint set that is regenerated
    exactly (no cache needed).

    By default a frame is a scene of `size` and is the item itself. With `frame_size`,
    training frames are scenes of that size, degraded whole, and the items are windows
    of `size` cut from them: every sliding-window position with `stride` (the paper's
    protocol: 256-px windows at stride 128 from 512 x 640 frames, 12 per frame), or
    `repeat` random windows per frame.

    Parameters
    ----------
    task : str
        Degradation task, e.g. ``"CBN"``.
    length : int
        Number of frames (per epoch, for training).
    size : int or (int, int)
        Side, or ``(height, width)``, of every item.
    frame_size : int or (int, int), optional
        Training frames' size when items are windows of bigger frames.
    stride : int, optional
        Sliding-window stride over `frame_size`.
    repeat : int
        Random windows per frame (with `frame_size` and no `stride`).
    split : {'train', 'test'}
        Which stream of scenes; the test split is whole scenes of `size`.
    seed : int
        Base seed.
    preset : str
        Degradation parameters.
    quantize : bool
        Round degraded images to 8-bit grey levels.
    style : {'soft', 'detailed'}
        The scene generator (:func:`~sepkit_torch.data.thermal_scene`).

    Examples
    --------
    >>> from sepkit_torch.data import SyntheticThermalDataset
    >>> data = SyntheticThermalDataset("N", length=3, size=32)
    >>> degraded, clean = data[2]
    >>> len(data), degraded.shape, bool((data[2][0] == degraded).all())
    (3, torch.Size([1, 32, 32]), True)
    >>> windows = SyntheticThermalDataset("N", length=2, size=32, frame_size=(64, 96), stride=32)
    >>> len(windows), windows.frame_items  # 2 x 3 windows per 64 x 96 frame
    (12, [6, 6])
    """

    def __init__(
        self,
        task: str = "CBN",
        *,
        length: int = 256,
        size=256,
        frame_size=None,
        stride: int | None = None,
        repeat: int = 1,
        split: str = "train",
        seed: int = 0,
        preset: str = "ecmrnet",
        quantize: bool = True,
        style: str = "soft",
    ):
        if split not in ("train", "test"):
            raise InvalidInputError(f"`split` must be 'train' or 'test'; got {split!r}")
        for name, value in (("length", length), ("repeat", repeat)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidInputError(f"`{name}` must be a positive int; got {value!r}")
        self.task = task_arg(task, preset)
        self.length = length
        self.size = image_size(size)
        self.split = split
        self.seed = int(seed)
        self.preset = preset
        self.quantize = bool(quantize)
        self.style = check_style(style)
        self.epoch = 0
        self.frame_size = None
        crop = None
        stride = stride_arg(stride)
        if split == "train" and frame_size is not None:
            self.frame_size = image_size(frame_size, name="frame_size")
            if self.frame_size[0] < self.size[0] or self.frame_size[1] < self.size[1]:
                raise InvalidInputError(
                    f"`frame_size` {self.frame_size} must be at least `size` {self.size}"
                )
            crop = self.size
        elif stride is not None:
            raise InvalidInputError("`stride` cuts windows from frames: it needs `frame_size`")
        if stride is not None and repeat != 1:
            raise InvalidInputError(f"`repeat` must be 1 with a `stride`; got {repeat!r}")
        shape = self.frame_size or self.size
        self._patches = Patches([shape] * length, crop, stride, 1 if split == "test" else repeat)
        self._frames = FrameCache(FRAME_CACHE)

    def set_epoch(self, epoch: int) -> None:
        """Use the scenes and degradations of `epoch` (training split)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._patches)

    @property
    def frame_items(self) -> list[int]:
        """Items of every frame, in order (they are consecutive)."""
        return list(self._patches.counts)

    def frame(self, f: int, epoch: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame `f` whole, ``(degraded, clean)``, as in `epoch` of training."""
        f = wrap_index(f, self.length)
        return self._frames.get((epoch, f), lambda: self._degraded_frame(f, epoch))

    def _degraded_frame(self, f: int, epoch: int):
        if self.split == "test":
            key = mix_seed(self.seed, TEST, f)
        else:
            key = mix_seed(self.seed, TRAIN, epoch, f)
        g = torch.Generator().manual_seed(key)
        clean = thermal_scene(self.frame_size or self.size, g, style=self.style)
        degraded = degrade(clean, self.task, g, preset=self.preset)
        return (quantize(degraded) if self.quantize else degraded), clean

    def __getitem__(self, i):
        i = wrap_index(i, len(self))
        f, k = self._patches.locate(i)
        if self.frame_size is None and self._patches.counts[f] == 1:
            return self._degraded_frame(f, self.epoch)  # the frame is the item
        frame = self.frame(f, self.epoch)
        g = torch.Generator().manual_seed(mix_seed(self.seed, TRAIN, self.epoch, f, k))
        return tuple(self._patches.cut(frame, f, k, False, g))


def make_dataset(root=None, task: str = "CBN", *, split: str = "train", **kwargs) -> Dataset:
    """:class:`DegradedImageFolder` of `root`, or procedural scenes when `root` is None.

    `kwargs` go to the chosen class; for the procedural set ``crop_size`` becomes its
    ``size`` and ``length`` defaults to 256 (train) or 64 (test). A folder's frames are
    its images, so `frame_size` and `style` apply to procedural scenes only.

    Examples
    --------
    >>> from sepkit_torch.data import make_dataset
    >>> type(make_dataset(None, "C", crop_size=16)).__name__
    'SyntheticThermalDataset'
    """
    if root is not None:
        if kwargs.pop("frame_size", None) is not None:
            raise InvalidInputError(
                "`frame_size` sets the size of procedural frames; a folder's frames are its images"
            )
        if kwargs.pop("style", None) is not None:
            raise InvalidInputError(
                "`style` chooses the generator of procedural scenes; a folder's images are its own"
            )
        return DegradedImageFolder(root, task, split=split, **kwargs)
    if "crop_size" in kwargs:
        kwargs["size"] = kwargs.pop("crop_size")
    kwargs.setdefault("length", 256 if split == "train" else 64)
    return SyntheticThermalDataset(task, split=split, **kwargs)
