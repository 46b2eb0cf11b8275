"""Paired (degraded, clean) data sets: a folder of clean images degraded online, paired
folders of a benchmark, and procedural thermal scenes when there is no folder at all.

Every data set returns ``(degraded, clean)``, two float32 tensors ``(1, h, w)`` in
``[0, 1]``, and is deterministic: item ``i`` of epoch ``e`` is the same on every run and in
every DataLoader worker (its generator is seeded from ``(seed, e, i)``; call
``set_epoch(e)`` once per epoch to get fresh crops and degradations).

Images are read by :func:`~sepkit_torch.data.read_image` (formats and the
scaling of 16-bit images: :mod:`sepkit_torch.data.image_io`).
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from sepkit_torch._errors import InvalidInputError
from sepkit_torch._files import atomic_write_text
from sepkit_torch.data.degradations import quantize
from sepkit_torch.data.image_io import (
    DatasetError,
    check_normalize,
    image_sizes,
    list_images,
    read_image,
    write_png,
)
from sepkit_torch.data.registry import check_preset, degrade, parse_task
from sepkit_torch.data.sampling import image_size, mix_seed
from sepkit_torch.data.synthetic import check_style, thermal_scene

__all__ = [
    "FRAME_CACHE",
    "DegradedImageFolder",
    "PairedImageFolder",
    "SyntheticThermalDataset",
    "make_dataset",
    "window_starts",
]

_TRAIN, _TEST = 0, 1


def _crop_arg(crop_size) -> tuple[int, int] | None:
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


def _check_sizes(root, files, sizes, crop) -> None:
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


def _crop_flip(images: Sequence[torch.Tensor], crop, flips: bool, g: torch.Generator):
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


def _index(i, n: int) -> int:
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


def _stride_arg(stride) -> int | None:
    if stride is None:
        return None
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise InvalidInputError(f"`stride` must be None or a positive int; got {stride!r}")
    return stride


class _Patches:
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
            return _crop_flip(images, None, flips, g)
        return _crop_flip(images, self.crop, flips, g)


class _FrameCache:
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


def _task_arg(task: str, preset: str) -> str:
    parse_task(task)
    check_preset(preset)
    return task


# --------------------------------------------------------------------------------------
# data sets


class DegradedImageFolder(Dataset):
    """Clean images from a folder, degraded online by a task: the training data of ECMRNet.

    Parameters
    ----------
    root : str or os.PathLike
        Folder of clean images (see :func:`read_image` for formats).
    task : str
        Degradation task, e.g. ``"CBN"`` (see :func:`~sepkit_torch.data.parse_task`).
    split : {'train', 'test', 'all'}
        ``'train'``: crops with flips, cut from whole images that are freshly degraded each
        epoch (degrade, then crop: the non-uniformity and vignetting scales belong to the
        whole frame, as in the test images). ``'test'``: whole images, degraded once and
        cached in `cache_dir`. ``'all'``: every image, as train.
    crop_size : int, (int, int) or None
        Side (or ``(h, w)``) of the training crops; None keeps whole images. Ignored by
        ``'test'``.
    stride : int, optional
        Cut every position of a sliding window of `crop_size` with this stride (the public
        code: 256-px patches at stride 128, 12 per 640 x 512 frame) instead of `repeat`
        random crops per image.
    preset : str
        Degradation parameters, ``"ecmrnet"`` (default) or ``"ppfn"``.
    seed : int
        Seed of crops, flips and degradations.
    test_fraction : float
        Share of images in the test split (0.2: the paper's 80/20).
    split_seed : int
        Seed of the split's permutation (fixed, so the split never changes).
    cache_dir : str or os.PathLike, optional
        Where the degraded test images are written (as PNG) and read back, under a
        subfolder named by task, preset and seed; default
        ``$XDG_CACHE_HOME/sepkit_torch/degraded/<folder hash>`` (or ``~/.cache/...``).
    normalize : {'image', 'full'} or (float, float)
        Scaling of 16-bit images (module docstring).
    flips : bool
        Random horizontal and vertical flips of training crops.
    quantize : bool
        Round degraded images to 8-bit grey levels, as the public code (which saves
        ``uint8`` PNGs) does; the test cache then stores 8-bit PNGs, else 16-bit.
    repeat : int
        Random crops per training image and epoch (small folders); not with `stride`.
    recursive : bool
        Also read images in subfolders.
    on_error : {'raise', 'skip'}
        An unreadable file raises :class:`ImageReadError` naming it, or is skipped with a
        warning. (A file whose header reads but whose pixels do not decode raises when the
        item is loaded, in both modes.)

    Raises
    ------
    DatasetError
        An empty folder, images smaller than `crop_size`, or an empty split.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from PIL import Image
    >>> from sepkit_torch.data import DegradedImageFolder, thermal_scene
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for i in range(5):
    ...     scene = (thermal_scene(40, i)[0].numpy() * 255).round().astype(np.uint8)
    ...     Image.fromarray(scene).save(root / f"{i}.png")
    >>> train = DegradedImageFolder(root, "CB", crop_size=32)
    >>> test = DegradedImageFolder(root, "CB", split="test", cache_dir=root / "cache")
    >>> len(train), len(test)
    (4, 1)
    >>> degraded, clean = train[0]
    >>> degraded.shape, clean.shape
    (torch.Size([1, 32, 32]), torch.Size([1, 32, 32]))
    >>> bool((test[0][0] == test[0][0]).all()), test[0][0].shape  # read back from the cache
    (True, torch.Size([1, 40, 40]))
    """

    def __init__(
        self,
        root,
        task: str = "CBN",
        *,
        split: str = "train",
        crop_size=256,
        stride: int | None = None,
        preset: str = "ecmrnet",
        seed: int = 0,
        test_fraction: float = 0.2,
        split_seed: int = 42,
        cache_dir=None,
        normalize="image",
        flips: bool = True,
        quantize: bool = True,
        repeat: int = 1,
        recursive: bool = False,
        on_error: str = "raise",
    ):
        if split not in ("train", "test", "all"):
            raise InvalidInputError(f"`split` must be 'train', 'test' or 'all'; got {split!r}")
        if not isinstance(test_fraction, (int, float)) or not 0.0 <= test_fraction < 1.0:
            raise InvalidInputError(f"`test_fraction` must be in [0, 1); got {test_fraction!r}")
        if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
            raise InvalidInputError(f"`repeat` must be a positive int; got {repeat!r}")
        self.root = Path(root)
        self.task = _task_arg(task, preset)
        self.split = split
        self.preset = preset
        self.seed = int(seed)
        self.normalize = check_normalize(normalize)
        self.flips = bool(flips)
        self.quantize = bool(quantize)
        self.repeat = repeat if split != "test" else 1
        self.crop_size = None if split == "test" else _crop_arg(crop_size)
        self.stride = None if split == "test" else _stride_arg(stride)
        if self.stride is not None and (self.crop_size is None or repeat != 1):
            raise InvalidInputError(
                f"`stride` cuts sliding windows of `crop_size`: it needs a crop size and "
                f"`repeat`=1; got crop_size={crop_size!r}, repeat={repeat!r}"
            )
        self.epoch = 0

        files, sizes = image_sizes(list_images(self.root, recursive=recursive), on_error)
        if not files:
            raise DatasetError(f"no readable image in {str(self.root)!r} (all were skipped)")
        n = len(files)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed)).tolist()
        n_train = int(np.floor(n * (1.0 - test_fraction) + 1e-9))
        chosen = {"train": order[:n_train], "test": order[n_train:], "all": order}[split]
        if not chosen:
            raise DatasetError(
                f"the {split!r} split of {str(self.root)!r} is empty: {n} image(s) with "
                f"`test_fraction`={test_fraction}"
            )
        self.files = [files[i] for i in sorted(chosen)]
        shapes = [sizes[i] for i in sorted(chosen)]
        _check_sizes(self.root, self.files, shapes, self.crop_size)
        self._patches = _Patches(shapes, self.crop_size, self.stride, self.repeat)
        self._frames = _FrameCache(FRAME_CACHE)
        self.cache = None
        if split == "test":
            self.cache = self._cache_folder(cache_dir, test_fraction, split_seed)

    def _cache_folder(self, cache_dir, test_fraction, split_seed) -> Path:
        if cache_dir is None:
            base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
            key = zlib.crc32(str(self.root.resolve()).encode())
            cache_dir = base / "sepkit_torch" / "degraded" / f"{self.root.name}-{key:08x}"
        folder = Path(cache_dir) / f"{self.task}-{self.preset}-seed{self.seed}"
        manifest = {
            "task": self.task,
            "preset": self.preset,
            "seed": self.seed,
            "normalize": list(self.normalize)
            if isinstance(self.normalize, tuple)
            else self.normalize,
            "quantize": self.quantize,
            "test_fraction": test_fraction,
            "split_seed": split_seed,
        }
        path = folder / "manifest.json"
        if path.exists():
            stored = json.loads(path.read_text())
            if stored != manifest:
                raise DatasetError(
                    f"the cache {str(folder)!r} was made with other settings ({stored}); "
                    "pass another `cache_dir` or delete it"
                )
        else:
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(manifest, indent=1))
        return folder

    def set_epoch(self, epoch: int) -> None:
        """Use the crops and degradations of `epoch` (training splits)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._patches)

    @property
    def frame_items(self) -> list[int]:
        """Items of every image, in order (they are consecutive): for a batch order that
        visits one image's windows close together."""
        return list(self._patches.counts)

    def frame(self, f: int, epoch: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Image `f` whole, ``(degraded, clean)``, degraded as in `epoch` of training."""
        f = _index(f, len(self.files))
        if self.split == "test":
            return self[f]
        return self._frames.get((epoch, f), lambda: self._degraded_frame(f, epoch))

    def _degraded_frame(self, f: int, epoch: int):
        clean = read_image(self.files[f], normalize=self.normalize)
        g = torch.Generator().manual_seed(mix_seed(self.seed, _TRAIN, epoch, f))
        degraded = degrade(clean, self.task, g, preset=self.preset)
        return (quantize(degraded) if self.quantize else degraded), clean

    def _name(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def cached_path(self, i: int) -> Path:
        """Where test item `i`'s degraded image is cached.

        The name carries a hash of the clean file's bytes: an image changed under the same
        name is degraded anew, never served from the old cache.
        """
        if self.cache is None:
            raise InvalidInputError("only the 'test' split caches its degraded images")
        path = self.files[_index(i, len(self))]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        name = self._name(path)
        stem = name[:-4] if name.lower().endswith(".png") else name
        return self.cache / f"{stem}.{digest}.png"

    def __getitem__(self, i):
        i = _index(i, len(self))
        if self.split == "test":
            path = self.files[i]
            clean = read_image(path, normalize=self.normalize)
            return self._cached(i, path, clean), clean
        f, k = self._patches.locate(i)
        frame = self.frame(f, self.epoch)
        g = torch.Generator().manual_seed(mix_seed(self.seed, _TRAIN, self.epoch, f, k))
        degraded, clean = self._patches.cut(frame, f, k, self.flips, g)
        return degraded, clean

    def _cached(self, i: int, path: Path, clean: torch.Tensor) -> torch.Tensor:
        target = self.cached_path(i)
        if not target.exists():
            name_key = zlib.crc32(self._name(path).encode())
            g = torch.Generator().manual_seed(mix_seed(self.seed, _TEST, name_key))
            degraded = degrade(clean, self.task, g, preset=self.preset)
            write_png(target, degraded, bits=8 if self.quantize else 16)
        return read_image(target, normalize="full")

    def prepare(self) -> None:
        """Write every missing degraded test image to the cache now (test split only)."""
        for i in range(len(self)):
            self[i]


class PairedImageFolder(Dataset):
    """Degraded and clean images in two folders, paired by file name (without extension).

    For real benchmark sets, e.g. HM-TIR's ``hard/`` and ``imgs/``.

    Parameters
    ----------
    degraded_root, clean_root : str or os.PathLike
        The two folders. Every name must appear in both, and paired images must have the
        same size.
    crop_size : int, (int, int) or None
        Random crops (the same window of both images), or None for whole images.
    flips : bool
        Random flips of both (for training on pairs).
    seed : int
        Seed of crops and flips (item ``i`` of epoch ``e`` from ``(seed, e, i)``).
    normalize : {'full', 'image'} or (float, float)
        Scaling of 16-bit images. The default here is ``'full'``: stretching each image to
        its own range would undo part of a contrast degradation.
    recursive, on_error
        As for :class:`DegradedImageFolder`.

    Raises
    ------
    DatasetError
        An empty folder, names in one folder only, pairs of different sizes.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from PIL import Image
    >>> from sepkit_torch.data import PairedImageFolder
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "hard").mkdir(); (root / "imgs").mkdir()
    >>> Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "hard" / "a.png")
    >>> Image.fromarray(np.full((8, 8), 255, np.uint8)).save(root / "imgs" / "a.png")
    >>> pairs = PairedImageFolder(root / "hard", root / "imgs")
    >>> pairs.names, float(pairs[0][1].mean())
    (['a'], 1.0)
    """

    def __init__(
        self,
        degraded_root,
        clean_root,
        *,
        crop_size=None,
        flips: bool = False,
        seed: int = 0,
        normalize="full",
        recursive: bool = False,
        on_error: str = "raise",
    ):
        self.degraded_root, self.clean_root = Path(degraded_root), Path(clean_root)
        self.crop_size = _crop_arg(crop_size)
        self.flips = bool(flips)
        self.seed = int(seed)
        self.normalize = check_normalize(normalize)
        self.epoch = 0
        sides = []
        for root in (self.degraded_root, self.clean_root):
            files, sizes = image_sizes(list_images(root, recursive=recursive), on_error)
            by_name: dict[str, tuple[Path, tuple[int, int]]] = {}
            for path, size in zip(files, sizes, strict=True):
                key = path.relative_to(root).with_suffix("").as_posix()
                if key in by_name:
                    raise DatasetError(
                        f"{str(root)!r} has two images named {key!r} "
                        f"({by_name[key][0].name}, {path.name}); pairs are matched by name"
                    )
                by_name[key] = (path, size)
            sides.append(by_name)
        degraded, clean = sides
        only_d = sorted(set(degraded) - set(clean))
        only_c = sorted(set(clean) - set(degraded))
        if only_d or only_c:
            raise DatasetError(
                "the folders must hold the same names: "
                f"{len(only_d)} only in {str(self.degraded_root)!r} {only_d[:5]}, "
                f"{len(only_c)} only in {str(self.clean_root)!r} {only_c[:5]}"
            )
        self.names = sorted(degraded)
        if not self.names:
            raise DatasetError(
                f"no readable pair in {str(self.degraded_root)!r} and {str(self.clean_root)!r}"
            )
        for name in self.names:
            if degraded[name][1] != clean[name][1]:
                raise DatasetError(
                    f"pair {name!r} differs in size: degraded {degraded[name][1]}, clean "
                    f"{clean[name][1]} (height, width)"
                )
        self.pairs = [(degraded[n][0], clean[n][0]) for n in self.names]
        _check_sizes(
            self.clean_root,
            [c for _, c in self.pairs],
            [clean[n][1] for n in self.names],
            self.crop_size,
        )

    def set_epoch(self, epoch: int) -> None:
        """Use the crops and flips of `epoch`."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i):
        i = _index(i, len(self))
        d_path, c_path = self.pairs[i]
        images = [read_image(p, normalize=self.normalize) for p in (d_path, c_path)]
        if self.crop_size is not None or self.flips:
            g = torch.Generator().manual_seed(mix_seed(self.seed, _TRAIN, self.epoch, i))
            images = _crop_flip(images, self.crop_size, self.flips, g)
        return images[0], images[1]


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
        self.task = _task_arg(task, preset)
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
        stride = _stride_arg(stride)
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
        self._patches = _Patches([shape] * length, crop, stride, 1 if split == "test" else repeat)
        self._frames = _FrameCache(FRAME_CACHE)

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
        f = _index(f, self.length)
        return self._frames.get((epoch, f), lambda: self._degraded_frame(f, epoch))

    def _degraded_frame(self, f: int, epoch: int):
        if self.split == "test":
            key = mix_seed(self.seed, _TEST, f)
        else:
            key = mix_seed(self.seed, _TRAIN, epoch, f)
        g = torch.Generator().manual_seed(key)
        clean = thermal_scene(self.frame_size or self.size, g, style=self.style)
        degraded = degrade(clean, self.task, g, preset=self.preset)
        return (quantize(degraded) if self.quantize else degraded), clean

    def __getitem__(self, i):
        i = _index(i, len(self))
        f, k = self._patches.locate(i)
        if self.frame_size is None and self._patches.counts[f] == 1:
            return self._degraded_frame(f, self.epoch)  # the frame is the item
        frame = self.frame(f, self.epoch)
        g = torch.Generator().manual_seed(mix_seed(self.seed, _TRAIN, self.epoch, f, k))
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
