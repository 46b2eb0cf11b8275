"""Image-folder data sets: a folder of clean images degraded online
(:class:`DegradedImageFolder`), and the paired degraded/clean folders of a benchmark
(:class:`PairedImageFolder`).

Both follow the contract of :mod:`sepkit_torch.data.datasets`.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
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
from sepkit_torch.data.patches import (
    FRAME_CACHE,
    TEST,
    TRAIN,
    FrameCache,
    Patches,
    check_sizes,
    crop_arg,
    crop_flip,
    stride_arg,
    task_arg,
    wrap_index,
)
from sepkit_torch.data.registry import degrade
from sepkit_torch.data.sampling import mix_seed

__all__ = ["DegradedImageFolder", "PairedImageFolder"]


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
        An unreadable file raises :class:`ImageFileError` naming it, or is skipped with a
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
        self.task = task_arg(task, preset)
        self.split = split
        self.preset = preset
        self.seed = int(seed)
        self.normalize = check_normalize(normalize)
        self.flips = bool(flips)
        self.quantize = bool(quantize)
        self.repeat = repeat if split != "test" else 1
        self.crop_size = None if split == "test" else crop_arg(crop_size)
        self.stride = None if split == "test" else stride_arg(stride)
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
        check_sizes(self.root, self.files, shapes, self.crop_size)
        self._patches = Patches(shapes, self.crop_size, self.stride, self.repeat)
        self._frames = FrameCache(FRAME_CACHE)
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
        f = wrap_index(f, len(self.files))
        if self.split == "test":
            return self[f]
        return self._frames.get((epoch, f), lambda: self._degraded_frame(f, epoch))

    def _degraded_frame(self, f: int, epoch: int):
        clean = read_image(self.files[f], normalize=self.normalize)
        g = torch.Generator().manual_seed(mix_seed(self.seed, TRAIN, epoch, f))
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
        path = self.files[wrap_index(i, len(self))]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        name = self._name(path)
        stem = name[:-4] if name.lower().endswith(".png") else name
        return self.cache / f"{stem}.{digest}.png"

    def __getitem__(self, i):
        i = wrap_index(i, len(self))
        if self.split == "test":
            path = self.files[i]
            clean = read_image(path, normalize=self.normalize)
            return self._cached(i, path, clean), clean
        f, k = self._patches.locate(i)
        frame = self.frame(f, self.epoch)
        g = torch.Generator().manual_seed(mix_seed(self.seed, TRAIN, self.epoch, f, k))
        degraded, clean = self._patches.cut(frame, f, k, self.flips, g)
        return degraded, clean

    def _cached(self, i: int, path: Path, clean: torch.Tensor) -> torch.Tensor:
        target = self.cached_path(i)
        if not target.exists():
            name_key = zlib.crc32(self._name(path).encode())
            g = torch.Generator().manual_seed(mix_seed(self.seed, TEST, name_key))
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
        self.crop_size = crop_arg(crop_size)
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
        check_sizes(
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
        i = wrap_index(i, len(self))
        d_path, c_path = self.pairs[i]
        images = [read_image(p, normalize=self.normalize) for p in (d_path, c_path)]
        if self.crop_size is not None or self.flips:
            g = torch.Generator().manual_seed(mix_seed(self.seed, TRAIN, self.epoch, i))
            images = crop_flip(images, self.crop_size, self.flips, g)
        return images[0], images[1]
