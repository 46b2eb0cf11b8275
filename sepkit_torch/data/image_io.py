"""Reading and writing single-channel images: the file formats of the data sets.

Reading (Pillow): PNG, TIFF, JPEG and BMP. 8-bit images are divided by 255. RGB (or
palette, or grey + alpha) images become grey by ITU-R 601-2 luma (Pillow's ``convert("L")``,
as the public code does). 16-bit (and 32-bit integer or float) images are normalised by
`normalize`: ``"image"`` stretches each image's own minimum..maximum to 0..1 (thermal
cameras' automatic gain; a constant image becomes 0), ``"full"`` divides 16-bit values by
65535, and a pair ``(low, high)`` maps that raw range to 0..1 and clips -- use a fixed range
to keep temperatures comparable across images.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from sepkit_torch._errors import DatasetError, ImageFileError, InvalidInputError
from sepkit_torch._files import atomic_write

__all__ = [
    "IMAGE_EXTENSIONS",
    "GREY_FORMATS",
    "DatasetError",
    "ImageFileError",
    "check_normalize",
    "image_sizes",
    "list_images",
    "read_grey",
    "read_image",
    "write_grey",
    "write_png",
]

#: File endings read as images (case-insensitive).
IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
#: File endings :func:`write_grey` writes, and their Pillow formats.
GREY_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".jpg": "JPEG", ".jpeg": "JPEG"}


def check_normalize(normalize):
    """`normalize` as read_image takes it: ``"image"``, ``"full"`` or a ``(low, high)`` pair.

    Examples
    --------
    >>> from sepkit_torch.data.image_io import check_normalize
    >>> check_normalize("full"), check_normalize([0, 4000])
    ('full', (0.0, 4000.0))
    """
    if normalize in ("image", "full"):
        return normalize
    try:
        lo, hi = (float(v) for v in normalize)
        if lo < hi:
            return (lo, hi)
    except (TypeError, ValueError):
        pass
    raise InvalidInputError(
        f"`normalize` must be 'image', 'full' or a (low, high) pair with low < high; "
        f"got {normalize!r}"
    )


def open_image(path: Path):
    """``PIL.Image.open(path)``, with the errors of an unreadable file as ImageFileError.

    An image whose header claims more pixels than ``PIL.Image.MAX_IMAGE_PIXELS`` (Pillow's
    guard against decompression bombs, about 89 million by default) is refused before it
    is decoded: one such file must not take the memory of everything else.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # over the limit is refused below, not warned of
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise ImageFileError(f"cannot read image {str(path)!r}: {exc}") from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise ImageFileError(f"cannot read image {str(path)!r}: {exc}") from exc
    limit = Image.MAX_IMAGE_PIXELS
    w, h = img.size
    if limit is not None and w * h > limit:
        img.close()
        raise ImageFileError(
            f"image {str(path)!r} claims {w} x {h} pixels, more than the limit of {limit:,} "
            "(PIL.Image.MAX_IMAGE_PIXELS); raise that limit to read it"
        )
    return img


def read_image(path, *, normalize="image") -> torch.Tensor:
    """One image file as a grey float32 tensor ``(1, H, W)`` in ``[0, 1]``.

    Parameters
    ----------
    path : str or os.PathLike
        A PNG, TIFF, JPEG or BMP file (the first frame of a multi-frame file).
    normalize : {'image', 'full'} or (float, float)
        How images of more than 8 bits are scaled (module docstring); 8-bit images are
        always divided by 255.

    Raises
    ------
    ImageFileError
        If Pillow cannot open or decode the file (the message names it).

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from PIL import Image
    >>> from sepkit_torch.data import read_image
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.png"
    >>> Image.fromarray(np.array([[1000, 3000]], dtype=np.uint16)).save(path)
    >>> read_image(path)  # 16-bit, stretched per image
    tensor([[[0., 1.]]])
    >>> read_image(path, normalize=(0, 4000))
    tensor([[[0.2500, 0.7500]]])
    """
    normalize = check_normalize(normalize)
    path = Path(path)
    img = open_image(path)
    try:
        img.load()
        mode = img.mode
        if mode in ("L", "1", "P", "LA", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB"):
            arr = np.asarray(img.convert("L"), dtype=np.float32) / np.float32(255.0)
            return torch.from_numpy(arr.copy())[None]
        arr = np.asarray(img)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageFileError(f"cannot decode image {str(path)!r}: {exc}") from exc
    finally:
        img.close()
    if arr.ndim != 2:
        raise ImageFileError(f"cannot read image {str(path)!r}: unsupported mode {mode!r}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ImageFileError(f"image {str(path)!r} has NaN or infinite pixels")
    if normalize == "image":
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    elif normalize == "full":
        if mode.startswith("F"):
            raise InvalidInputError(
                f"`normalize`='full' needs integer pixels; {str(path)!r} is floating point "
                "(mode 'F'): pass 'image' or a (low, high) range"
            )
        arr = arr / 65535.0
    else:
        lo, hi = normalize
        arr = (arr - lo) / (hi - lo)
    return torch.from_numpy(np.clip(arr, 0.0, 1.0).astype(np.float32))[None]


def list_images(root, *, recursive: bool = False) -> list[Path]:
    """The image files under `root` (sorted; hidden files skipped).

    Raises
    ------
    DatasetError
        If `root` is not a folder, or holds no file with an :data:`IMAGE_EXTENSIONS` ending.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"`root` must be a folder of images; {str(root)!r} is not a folder")
    found = root.rglob("*") if recursive else root.iterdir()
    files, others = [], set()
    for p in found:
        if p.name.startswith(".") or not p.is_file():
            continue
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            files.append(p)
        else:
            others.add(p.suffix.lower() or p.name)
    if not files:
        hint = f"; it holds only {sorted(others)}" if others else " (it is empty)"
        raise DatasetError(
            f"no image ({', '.join(IMAGE_EXTENSIONS)}) in {str(root)!r}{hint}"
            + ("" if recursive else "; pass recursive=True to look into subfolders")
        )
    return sorted(files)


def image_sizes(files, on_error: str = "raise") -> tuple[list[Path], list[tuple[int, int]]]:
    """The readable `files` and the ``(height, width)`` of each, from its header alone.

    A file Pillow cannot open raises :class:`ImageFileError` (``on_error="raise"``) or is
    left out with a warning (``"skip"``).
    """
    if on_error not in ("raise", "skip"):
        raise InvalidInputError(f"`on_error` must be 'raise' or 'skip'; got {on_error!r}")
    kept, sizes = [], []
    for path in files:
        try:
            with open_image(path) as img:
                w, h = img.size
        except ImageFileError as exc:
            if on_error == "raise":
                raise
            warnings.warn(f"skipping {exc}", stacklevel=3)
            continue
        kept.append(path)
        sizes.append((h, w))
    return kept, sizes


def write_png(target, image: torch.Tensor, bits: int = 8) -> None:
    """Save ``(1, H, W)`` in ``[0, 1]`` as an 8- or 16-bit grey PNG, atomically.

    The file is written under a temporary name and renamed, so a reader never sees a
    partial image.
    """
    target = Path(target)
    from PIL import Image

    levels = 2**bits - 1
    arr = torch.round(image[0].double().clamp(0, 1) * levels).numpy()
    arr = arr.astype(np.uint8 if bits == 8 else np.uint16)
    target.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(arr)
    atomic_write(target, lambda f: image.save(f, format="PNG"))


def read_grey(path: str | os.PathLike) -> np.ndarray:
    """The pixels of `path` unchanged, as a 2-D uint8 (8-bit or colour files, made grey)
    or uint16 array (16-bit files); what restoring a file reads."""
    from PIL import UnidentifiedImageError

    try:
        with open_image(Path(path)) as img:
            frames = getattr(img, "n_frames", 1)
            if frames > 1:  # restoring the first alone would write a file of one frame
                raise ImageFileError(
                    f"{str(path)!r} holds {frames} frames (a multi-page or animated file); "
                    "restore reads single images: split it into one file per frame"
                )
            img.load()
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
                arr = np.asarray(img).astype(np.uint16)
            elif mode == "I":  # Pillow's mode for some 16-bit PNG/TIFF files
                arr = np.asarray(img)
                if arr.min() < 0 or arr.max() > 65535:
                    raise ImageFileError(
                        f"{str(path)!r}: 32-bit integer pixels outside 0..65535 "
                        f"({arr.min()}..{arr.max()}); only 8- and 16-bit images are supported"
                    )
                arr = arr.astype(np.uint16)
            elif mode in ("F", "I;32", "I;32B"):
                raise ImageFileError(
                    f"{str(path)!r}: mode {mode!r} (32-bit); only 8- and 16-bit images are "
                    "supported"
                )
            else:
                arr = np.asarray(img.convert("L"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        if isinstance(exc, ImageFileError):
            raise
        raise ImageFileError(f"cannot read image {str(path)!r}: {exc}") from exc
    if arr.ndim != 2:
        raise ImageFileError(f"{str(path)!r}: expected one grey channel; got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def write_grey(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a 2-D uint8/uint16 array to `path` (format from its ending, one of
    :data:`GREY_FORMATS`), atomically."""
    from PIL import Image

    path = Path(path)
    fmt = GREY_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageFileError(
            f"{str(path)!r}: images are written as {', '.join(GREY_FORMATS)} files; got the "
            f"ending {path.suffix!r}"
        )
    if fmt == "JPEG" and array.dtype != np.uint8:
        raise ImageFileError(f"{str(path)!r}: JPEG holds 8-bit images only; got {array.dtype}")
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    options = {"quality": 95} if fmt == "JPEG" else {}
    atomic_write(path, lambda f: image.save(f, format=fmt, **options))
