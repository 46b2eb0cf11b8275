"""Restore images with a trained pipeline run: ``load(run) -> Restorer``.

```python
import sepkit_torch
restorer = sepkit_torch.load("runs/demo")    # a pipeline run folder
restored = restorer(image)                    # recognize the degradation, then restore
restored = restorer(image, task="CB")         # the degradation is known
```

Images larger than a tile are restored in overlapping tiles whose seams are blended
(:func:`tiled_apply`), so a 4k frame needs the memory of a few tiles only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from sepkit_torch._errors import (
    CheckpointError,
    InvalidInputError,
    TaskStateError,
    UnknownTaskError,
)
from sepkit_torch.checkpoint import read_state
from sepkit_torch.continual.expansion import ECMRNet
from sepkit_torch.continual.recognition import Recognition, verdicts
from sepkit_torch.data import parse_task
from sepkit_torch.models.backbone import MULTIPLE
from sepkit_torch.models.recognizer import DegradationRecognizer

__all__ = ["Restorer", "load", "tile_windows", "tiled_apply"]

_TORCH_UINT16 = getattr(torch, "uint16", None)  # torch >= 2.3
# The last axis of a 3-D array that is a colour (RGB, RGBA) or a single channel, never
# read as a stack of images so narrow: (48, 64, 3) is one colour image, not 48 of 64 x 3.
_CHANNELS_LAST = (1, 3, 4)


# ----------------------------------------------------------------------------- tiling


def _axis_windows(n: int, tile: int, overlap: int, align: int) -> list[tuple[int, int]]:
    if n <= tile:
        return [(0, n)]
    step = max(align, (tile - overlap) // align * align)
    last = (n - tile) // align * align  # the last tile runs to the border: tile..tile+align-1
    starts = list(range(0, last, step))
    return [(s, s + tile) for s in starts] + [(last, n)]


def tile_windows(
    height: int, width: int, *, tile: int = 512, overlap: int = 32, align: int = MULTIPLE
) -> list[tuple[int, int, int, int]]:
    """The tiles ``(top, bottom, left, right)`` covering a ``height x width`` image.

    Tiles are `tile` pixels square and start at multiples of `align` (so a U-Net's
    down-sampling grid stays the image's); neighbours overlap by at least `overlap`; the
    last tile of a row or column ends at the border (up to ``align - 1`` pixels larger).
    An image no larger than `tile` is one window.

    Examples
    --------
    >>> from sepkit_torch.inference import tile_windows
    >>> tile_windows(100, 60, tile=64, overlap=16)
    [(0, 64, 0, 60), (36, 100, 0, 60)]
    """
    return [
        (t, b, l, r)
        for t, b in _axis_windows(height, tile, overlap, align)
        for l, r in _axis_windows(width, tile, overlap, align)
    ]


def _ramp(start: int, end: int, n: int, overlap: int, dtype, device) -> torch.Tensor:
    """Blend weights along one axis: 1 inside; along an inner edge, 0 over the outer
    ``overlap // 4`` pixels (where padding distorts a tile's output), then rising
    linearly to 1 over the rest of the overlap."""
    w = torch.ones(end - start, dtype=dtype, device=device)
    k = min(overlap, end - start)
    if k == 0:
        return w
    margin = overlap // 4
    rise = ((torch.arange(k, dtype=dtype, device=device) - margin + 0.5) / (k - margin)).clamp(0, 1)
    if start > 0:
        w[:k] = torch.minimum(w[:k], rise)
    if end < n:
        w[-k:] = torch.minimum(w[-k:], rise.flip(0))
    return w


def _check_tiling(tile, overlap) -> None:
    for name, value in (("tile", tile), ("overlap", overlap)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidInputError(f"`{name}` must be an int; got {value!r}")
    if tile < 4 * MULTIPLE or tile % MULTIPLE:
        raise InvalidInputError(
            f"`tile` must be a multiple of {MULTIPLE} and at least {4 * MULTIPLE}; got {tile!r}"
        )
    if not 0 <= overlap <= tile // 2:
        raise InvalidInputError(
            f"`overlap` must be in [0, tile // 2 = {tile // 2}]; got {overlap!r}"
        )


def tiled_apply(
    fn: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    *,
    tile: int = 512,
    overlap: int = 32,
    batch_size: int = 4,
) -> torch.Tensor:
    """``fn(images)``, computed tile by tile with blended seams.

    Parameters
    ----------
    fn : callable
        Maps ``(b, C, h, w)`` to an output of the same shape (e.g. a restorer).
    images : torch.Tensor
        ``(B, C, H, W)``.
    tile, overlap : int
        Tile side (a multiple of 4) and the least overlap of neighbouring tiles
        (:func:`tile_windows`).
    batch_size : int
        Tiles of equal size per call of `fn`.

    Notes
    -----
    Each tile's output is weighted by a window that is 1 except over `overlap` pixels
    along its inner edges (those not on the image border): there it is 0 over the outer
    ``overlap // 4`` pixels and then rises linearly to 1; the weighted outputs are
    averaged. A pixel covered by one tile at weight 1 gets exactly that tile's output.
    For an operator that sees at most ``overlap // 4`` pixels around each output pixel
    (a stack of convolutions), every weighted value is then the untiled one: the result
    equals the untiled output exactly away from the seams and to rounding on them.
    Networks with image-wide operations (ECMRNet's GroupNorm and channel attention,
    which pool over the whole input) see each tile's statistics instead: their tiled
    output approximates the untiled one everywhere (``docs/restore.md`` measures by how
    much).

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch.inference import tiled_apply
    >>> x = torch.rand(1, 1, 100, 70)
    >>> y = tiled_apply(lambda t: 2 * t, x, tile=32, overlap=8)  # 12 tiles
    >>> torch.allclose(y, 2 * x)
    True
    """
    _check_tiling(tile, overlap)
    b, c, h, w = images.shape
    windows = tile_windows(h, w, tile=tile, overlap=overlap)
    if len(windows) == 1:
        return _batched(fn, images, batch_size)
    out = torch.zeros_like(images)
    norm = torch.zeros((1, 1, h, w), dtype=images.dtype, device=images.device)
    by_size: dict[tuple[int, int], list[tuple[int, int, int, int]]] = {}
    for window in windows:
        t, bottom, left, r = window
        by_size.setdefault((bottom - t, r - left), []).append(window)
    for i in range(b):
        for group in by_size.values():
            for k in range(0, len(group), batch_size):
                chunk = group[k : k + batch_size]
                crops = torch.cat([images[i : i + 1, :, t:bt, lf:rt] for t, bt, lf, rt in chunk])
                restored = fn(crops)
                for (t, bt, lf, rt), y in zip(chunk, restored, strict=True):
                    weight = torch.outer(
                        _ramp(t, bt, h, overlap, images.dtype, images.device),
                        _ramp(lf, rt, w, overlap, images.dtype, images.device),
                    )
                    out[i, :, t:bt, lf:rt] += weight * y
                    if i == 0:
                        norm[0, 0, t:bt, lf:rt] += weight
    return out / norm


def _batched(fn, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([fn(images[k : k + batch_size]) for k in range(0, len(images), batch_size)])


# ----------------------------------------------------------------------------- images


def _to_batch(image, name: str = "image") -> tuple[torch.Tensor, dict[str, Any]]:
    """`image` as float32 ``(B, 1, H, W)`` in [0, 1], and how to give the result back."""
    if isinstance(image, np.ndarray):
        kind, dtype, shape = "numpy", image.dtype, image.shape
        if _unsigned(image.dtype) == 1:  # any byte order: raw thermal files are often big-endian
            x = torch.from_numpy(image.astype(np.float32) / 255.0)
        elif _unsigned(image.dtype) == 2:
            x = torch.from_numpy(image.astype(np.float32) / 65535.0)
        elif np.issubdtype(image.dtype, np.floating):
            x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
        else:
            raise TypeError(
                f"`{name}` must hold floats in [0, 1], uint8 or uint16 values; got dtype "
                f"{image.dtype}"
            )
        device = torch.device("cpu")
    elif isinstance(image, torch.Tensor):
        kind, dtype, shape, device = "torch", image.dtype, tuple(image.shape), image.device
        if image.dtype == torch.uint8:
            x = image.float() / 255.0
        elif image.dtype == _TORCH_UINT16:
            x = image.float() / 65535.0
        elif image.is_floating_point():
            x = image.detach().float()
        else:
            raise TypeError(
                f"`{name}` must hold floats in [0, 1], uint8 or uint16 values; got dtype "
                f"{image.dtype}"
            )
    else:
        raise TypeError(
            f"`{name}` must be a numpy array or a torch tensor; got {type(image).__name__}"
        )
    if x.ndim == 3 and shape[-1] in _CHANNELS_LAST:
        raise InvalidInputError(
            f"`{name}` of shape {tuple(shape)} looks like an image with its channels last "
            f"(H, W, {shape[-1]}); the model restores grey images: convert it to grey "
            "(H, W) first, or pass a stack of narrow images as (N, 1, H, W)"
        )
    if x.ndim == 2:
        x = x[None, None]
    elif x.ndim == 3:
        x = x[:, None]  # (1, H, W) or a stack (N, H, W): the same either way
    elif x.ndim != 4 or x.shape[1] != 1:
        raise InvalidInputError(
            f"`{name}` must be a grey image (H, W), (1, H, W), a stack (N, H, W) or a batch "
            f"(N, 1, H, W); got shape {tuple(shape)}"
        )
    if x.numel() == 0:
        raise InvalidInputError(f"`{name}` must not be empty; got shape {tuple(shape)}")
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise InvalidInputError(f"`{name}` has NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        raise InvalidInputError(
            f"`{name}` must have values in [0, 1] (floats) or be uint8/uint16; got values "
            f"in [{lo:.4g}, {hi:.4g}]"
        )
    return x, {"kind": kind, "dtype": dtype, "shape": shape, "device": device}


def _unsigned(dtype) -> int:
    """The byte size of an unsigned integer numpy dtype (either byte order), else 0."""
    return dtype.itemsize if dtype.kind == "u" else 0


def _from_batch(x: torch.Tensor, like: dict[str, Any]):
    x = x.reshape(like["shape"])
    dtype = like["dtype"]
    if like["kind"] == "numpy":
        arr = x.cpu().numpy()
        if _unsigned(dtype) == 1:
            return np.round(arr * 255.0).astype(dtype)
        if _unsigned(dtype) == 2:
            return np.round(arr.astype(np.float64) * 65535.0).astype(dtype)
        return arr.astype(dtype)
    if dtype == torch.uint8:
        return torch.round(x * 255.0).to(torch.uint8).to(like["device"])
    if dtype == _TORCH_UINT16:
        return torch.round(x.double() * 65535.0).to(torch.uint16).to(like["device"])
    return x.to(dtype=dtype, device=like["device"])


# ----------------------------------------------------------------------------- restorer


class Restorer:
    """A trained ECMRNet (and its degradation recognizer), ready to restore images.

    Build it with :func:`load`. Calling it restores images along a task's branch; with
    ``task=None`` the recognizer picks the task of each image first (blind restoration).

    Parameters
    ----------
    model : ECMRNet
    recognizer : DegradationRecognizer, optional
        Needed for ``task=None``.
    tasks : sequence of str, optional
        The task names (as the pipeline spells them, e.g. ``"C+haze"``); default the
        model's.
    device : str or torch.device, default "cpu"
    tile : int, default 1024
        Images with a side above `tile` are restored in tiles (:func:`tiled_apply`).
        ECMRNet normalises over the whole input, so smaller tiles cost accuracy: on a
        640 x 512 frame, 512-pixel tiles stayed within 43 dB of the untiled output,
        256-pixel tiles within 29 dB (``docs/restore.md``).
    overlap : int, default 32
        Least overlap of neighbouring tiles.
    batch_size : int, default 4
        Images (or tiles) per forward pass.
    threshold : float, default 0.5
        A letter counts as recognized when its probability is at least this (the
        probabilities are shifted by the heads' calibrated thresholds, if any, so that 0.5
        is each head's own boundary).
    source : str, optional
        Where the networks come from, for messages (set by :func:`load`).

    Examples
    --------
    >>> import numpy as np
    >>> from sepkit_torch import ECMRNet
    >>> from sepkit_torch.inference import Restorer
    >>> model = ECMRNet.from_preset("tiny")
    >>> _ = model.add_task("C")
    >>> restorer = Restorer(model)
    >>> frame = np.zeros((40, 30), np.uint16)
    >>> out = restorer(frame, task="C")
    >>> out.shape, out.dtype
    ((40, 30), dtype('uint16'))
    >>> restorer(frame)
    Traceback (most recent call last):
    ...
    sepkit_torch.TaskStateError: `task` is None (recognize first), but this model
    has no recognizer; pass one of ['C']
    """

    def __init__(
        self,
        model: ECMRNet,
        recognizer: DegradationRecognizer | None = None,
        *,
        tasks: Sequence[str] | None = None,
        device: str | torch.device = "cpu",
        tile: int = 1024,
        overlap: int = 32,
        batch_size: int = 4,
        threshold: float = 0.5,
        source: str | None = None,
    ):
        if not isinstance(model, ECMRNet):
            raise TypeError(f"`model` must be an ECMRNet; got {type(model).__name__}")
        if recognizer is not None and not isinstance(recognizer, DegradationRecognizer):
            raise TypeError(
                f"`recognizer` must be a DegradationRecognizer or None; got "
                f"{type(recognizer).__name__}"
            )
        _check_tiling(tile, overlap)
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InvalidInputError(f"`batch_size` must be a positive int; got {batch_size!r}")
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, (int, float))
            or not 0 < threshold < 1
        ):
            raise InvalidInputError(f"`threshold` must be a number in (0, 1); got {threshold!r}")
        names = model.task_names
        tasks = tuple(names if tasks is None else tasks)
        if [t.replace("+", "_") for t in tasks] != list(names):
            raise InvalidInputError(
                f"`tasks` must name the model's tasks {list(names)} in order; got {list(tasks)}"
            )
        self.model = model.eval()
        self.recognizer = None if recognizer is None else recognizer.eval()
        self.tasks = tasks
        self.tile, self.overlap, self.batch_size = tile, overlap, batch_size
        self.threshold = threshold
        #: where the networks come from (a run, a weights file, the built-in model)
        self.source = source
        letters = () if recognizer is None else recognizer.letters
        #: the tasks blind restoration can route to: those whose letters all have a head
        self.routable = tuple(t for t in tasks if all(p in letters for p in _parts(t)))
        self.device = torch.device("cpu")
        self.to(device)

    def to(self, device: str | torch.device) -> Restorer:
        """Move the networks to `device` (``"cpu"``, ``"cuda"``, ...); returns self."""
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError):
            raise InvalidInputError(
                f"`device` must be 'cpu', 'cuda' or 'cuda:N'; got {device!r}"
            ) from None
        if device.type not in ("cpu", "cuda"):
            raise InvalidInputError(f"`device` must be 'cpu', 'cuda' or 'cuda:N'; got {device!r}")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InvalidInputError("`device` is 'cuda' but no CUDA device is available")
        self.model.to(device)
        if self.recognizer is not None:
            self.recognizer.to(device)
        self.device = device
        return self

    def __repr__(self) -> str:
        letters = None if self.recognizer is None else list(self.recognizer.letters)
        return (
            f"Restorer(tasks={list(self.tasks)}, recognizer letters={letters}, "
            f"device={str(self.device)!r}, tile={self.tile})"
        )

    def __call__(self, image, task: str | None = None):
        """Restore `image`; same container (numpy or torch), shape and dtype back.

        Parameters
        ----------
        image : numpy.ndarray or torch.Tensor
            A grey image ``(H, W)``, ``(1, H, W)``, a stack ``(N, H, W)`` or a batch
            ``(N, 1, H, W)``: floats in ``[0, 1]``, or uint8 / uint16 (scaled by 255 /
            65535, and scaled back on return). A 3-D array whose last axis is 1, 3 or 4
            is refused as an image with its channels last (make it grey first).
        task : str, optional
            The degradation, one of :attr:`tasks`; None recognizes each image's task
            first. An image in which no degradation is recognized comes back unchanged.
        """
        return self.restore(image, task)[0]

    def restore(self, image, task: str | None = None) -> tuple[Any, list[str | None]]:
        """Like calling the restorer, but also returns the task used per image."""
        x, like = _to_batch(image)
        if task is None:
            routes = [r.task for r in self._recognize(x)]
        else:
            routes = [self.check_task(task)] * len(x)
        out = x.clone()
        for t in dict.fromkeys(r for r in routes if r is not None):
            index = [i for i, r in enumerate(routes) if r == t]
            out[index] = self._restore_task(x[index], t)
        return _from_batch(out, like), routes

    def recognize(self, image) -> list[Recognition]:
        """The recognizer's verdict per image (:class:`Recognition`): letters, task."""
        x, _ = _to_batch(image)
        return self._recognize(x)

    def check_task(self, task) -> str:
        """`task` if this restorer knows it, else :class:`UnknownTaskError` naming them."""
        if task not in self.tasks:
            raise UnknownTaskError(
                f"`task` must be one of {list(self.tasks)} or None; got {task!r}"
            )
        return task

    # -- internals

    def _recognize(self, x: torch.Tensor) -> list[Recognition]:
        if self.recognizer is None:
            raise TaskStateError(
                "`task` is None (recognize first), but this model has no recognizer; pass "
                f"one of {list(self.tasks)}"
            )
        probabilities = []
        with torch.inference_mode():
            for i in range(len(x)):
                probabilities.append(self._probabilities(x[i : i + 1].to(self.device)))
        p = torch.cat(probabilities).cpu()
        return verdicts(p, self.recognizer.letters, self.routable, self.threshold)

    def _probabilities(self, image: torch.Tensor) -> torch.Tensor:
        """Per letter, from the whole image, or from the mean logit over its tiles (shifted
        by the heads' calibrated thresholds)."""
        h, w = image.shape[-2:]
        windows = tile_windows(h, w, tile=self.tile, overlap=self.overlap)
        logits = torch.stack([self.recognizer(image[..., t:b, lf:r])[0] for t, b, lf, r in windows])
        area = torch.tensor([(b - t) * (r - lf) for t, b, lf, r in windows], dtype=logits.dtype).to(
            logits.device
        )
        mean = (logits * area[:, None]).sum(0, keepdim=True) / area.sum()
        probabilities = torch.sigmoid(self.recognizer.decision_logits(mean))
        if not bool(torch.isfinite(probabilities).all()):  # NaN would recognize nothing
            raise InvalidInputError(
                f"the recognizer ({self.source or 'this restorer'}) gives NaN on this image: "
                "its weights or the image are broken"
            )
        return probabilities

    def _restore_task(self, x: torch.Tensor, task: str) -> torch.Tensor:
        name = task.replace("+", "_")

        def run(batch):
            restored = self.model(batch.to(self.device), task=name)
            if not bool(torch.isfinite(restored).all()):  # would be written as black
                raise InvalidInputError(
                    f"the model of task {task!r} ({self.source or 'this restorer'}) gives NaN "
                    "or infinite values on this image: its weights or the image are broken; "
                    "nothing is returned"
                )
            return restored.clamp(0, 1).to(x.device)

        with torch.inference_mode():
            return tiled_apply(
                run, x, tile=self.tile, overlap=self.overlap, batch_size=self.batch_size
            )


def _parts(task: str) -> tuple[str, ...]:
    try:
        return parse_task(task)
    except ValueError:  # a model task that is no registered degradation: never routed
        return (task,)


def load(
    checkpoint: str | os.PathLike | None = None,
    *,
    device: str | torch.device = "cpu",
    **options,
) -> Restorer:
    """A :class:`Restorer` from a pipeline run, a weights file, or the built-in model.

    Parameters
    ----------
    checkpoint : str or os.PathLike, optional
        A run folder (``--out`` of ``python -m sepkit_torch.pipeline``), a checkpoint file
        written by it, or a weights file (``python -m sepkit_torch.pipeline export``).
        None: the built-in default model (:data:`~sepkit_torch.checkpoint.DEFAULT_WEIGHTS`, the
        ``cpu`` preset's run).
    device : str or torch.device, default "cpu"
    **options
        ``tile``, ``overlap``, ``batch_size``, ``threshold`` of :class:`Restorer`.

    Returns
    -------
    Restorer
        Its :attr:`~Restorer.source` says which model it is.

    Raises
    ------
    TypeError
        If `checkpoint` is not a path (str or os.PathLike) or None.
    FileNotFoundError
        If there is no checkpoint at `checkpoint`.
    CheckpointError
        If the file is not a safe, readable checkpoint or weights file (it is never
        executed), or its model or recognizer has NaN or infinite weights.
    InvalidInputError
        If the checkpoint holds no ECMRNet (e.g. a NAFNet baseline's run).

    Examples
    --------
    >>> import sepkit_torch
    >>> restorer = sepkit_torch.load()  # the built-in model
    >>> restorer.tasks
    ('C', 'N', 'B', 'CB', 'CN', 'BN', 'CBN')
    >>> print(restorer.source)  # doctest: +ELLIPSIS
    built-in default model (.../default.pt; preset cpu; model tiny; detailed procedural ...)
    """
    state = read_state(checkpoint)
    where = f"the checkpoint {state['source']}"
    if not ECMRNet.is_state_dict(state["model"]):
        method = state["config"].get("method")
        if method not in (None, "ecmrnet"):
            raise InvalidInputError(
                f"`checkpoint` {str(checkpoint)!r} is a run of the NAFNet baseline {method!r}; "
                "restoring needs an ECMRNet run (method 'ecmrnet')"
            )
        raise CheckpointError(f"{where} holds no ECMRNet model")
    model = _built(lambda: ECMRNet.from_state_dict(state["model"]), where, "model")
    recognizer = state["recognizer"]
    if recognizer is not None:
        recognizer = _built(
            lambda: DegradationRecognizer.from_state_dict(recognizer), where, "recognizer"
        )
    tasks = state["tasks"]
    names = [t.replace("+", "_") for t in tasks] if _is_names(tasks) else None
    if tasks is not None and names != list(model.task_names):
        raise CheckpointError(
            f"{where} lists the tasks {tasks!r}, but its model holds {list(model.task_names)}"
        )
    return Restorer(
        model, recognizer, tasks=tasks, device=device, source=state["source"], **options
    )


def _is_names(tasks) -> bool:
    return isinstance(tasks, (list, tuple)) and all(isinstance(t, str) for t in tasks)


def _built(build, where: str, part: str):
    """``build()`` of a network from a checkpoint's state; a state that does not fit its
    network (keys missing, shapes changed) is a CheckpointError naming the file."""
    try:
        return build()
    except CheckpointError:
        raise
    except (InvalidInputError, RuntimeError, KeyError, ValueError, TypeError) as err:
        first = str(err).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:2])[:300]
        raise CheckpointError(
            f"{where} holds a {part} that does not load ({type(err).__name__}: {detail})"
        ) from None
