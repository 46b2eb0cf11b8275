"""A run's data: training, test and validation sets, SEP's pool of whole frames, and the
seed of every stage's randomness."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from sepkit_torch._errors import InvalidInputError
from sepkit_torch.data import list_images, make_dataset
from sepkit_torch.data.sampling import mix_seed

__all__ = [
    "example_pairs",
    "CALIBRATION_FRAMES",
    "SEED_STREAMS",
    "calibration_frames",
    "frame_batches",
    "stage_seed",
    "test_set",
    "train_set",
    "validation_set",
]

# seed of the validation images (strength tuning), apart from every stage's seed
_VALIDATION_SEED = 0x5EED_7A11
# seed of the recognizer's calibration frames, apart from every other seed
_CALIBRATION_SEED = 0x5EED_CA1B

#: Clean frames the ``"mixtures"`` recognizer calibrates each head's threshold on.
CALIBRATION_FRAMES = 64


#: The independent random streams of a stage: its training data (crops and degradations),
#: the order of its batches, and the recognizer head it trains.
SEED_STREAMS = ("data", "batches", "recognizer")


def stage_seed(config, stage: str, stream: str = "data") -> int:
    """The seed of one random `stream` (:data:`SEED_STREAMS`) of `stage`: a function of
    ``(config.seed, stage, stream)`` only, so a resumed run draws the same.

    The stage's whole name is hashed (BLAKE2b): stages of different names get independent
    seeds, however long or alike their names are.

    Examples
    --------
    >>> from sepkit_torch.pipeline import PipelineConfig, stage_seed
    >>> config = PipelineConfig.from_preset("smoke")
    >>> stage_seed(config, "C+stripes:train") != stage_seed(config, "C+stripes:prune")
    True
    >>> stage_seed(config, "C:train", "batches") != stage_seed(config, "C:train")
    True
    """
    if stream not in SEED_STREAMS:
        raise InvalidInputError(f"`stream` must be one of {list(SEED_STREAMS)}; got {stream!r}")
    salt = SEED_STREAMS.index(stream)
    return mix_seed(config.seed, _hash(stage), *((salt,) if salt else ()))


def train_set(config, task: str, stage: str):
    """The training images `stage` of a run with `config` uses for `task` (its crops and
    degradations follow :func:`stage_seed`)."""
    return make_dataset(
        config.data,
        task,
        split="train",
        crop_size=config.crop_size,
        preset=config.degradation_preset,
        seed=stage_seed(config, stage),
        stride=config.stride or None,
        repeat=config.repeat,
        **(
            {
                "length": config.train_length,
                "frame_size": config.frame_size or None,
                "style": config.scene_style,
            }
            if config.data is None
            else {}
        ),
    )


def test_set(config, task: str, *, length: int | None = None):
    """The fixed test images of `task` in a run with `config`.

    For procedural data `length` (default ``config.test_length``) extends the set: item
    ``i`` depends on ``(seed, i)`` only, so the run's images are its first ones.
    """
    extra = {}
    if config.data is None:
        extra = {
            "length": length or config.test_length,
            "crop_size": config.test_size,
            "style": config.scene_style,
        }
    return make_dataset(
        config.data, task, split="test", preset=config.degradation_preset, seed=config.seed, **extra
    )


def validation_set(config, task: str):
    """Fixed validation images of `task`: training-split images (never the test split)
    with their own seed, at the test size for procedural scenes."""
    size = config.test_size if config.data is None else config.crop_size
    extra = (
        {"length": config.test_length, "style": config.scene_style} if config.data is None else {}
    )
    data = make_dataset(
        config.data,
        task,
        split="train",
        crop_size=size,
        preset=config.degradation_preset,
        seed=mix_seed(config.seed, _VALIDATION_SEED),
        **extra,
    )
    data.set_epoch(0)
    return data


def calibration_frames(config, length: int = CALIBRATION_FRAMES) -> list[torch.Tensor]:
    """Clean frames ``(1, H, W)`` to calibrate the recognizer's thresholds on: procedural
    scenes of the run's style and frame size (the test size without frames), or random
    crops of a folder's training images, from a seed of their own (neither the training
    nor the test images)."""
    if config.data is None:
        size = tuple(config.frame_size) or config.test_size
        extra = {"length": length, "style": config.scene_style}
    else:
        size, extra = config.crop_size, {}
    data = make_dataset(
        config.data,
        config.tasks[0],
        split="train",
        crop_size=size,
        preset=config.degradation_preset,
        seed=mix_seed(config.seed, _CALIBRATION_SEED),
        **extra,
    )
    data.set_epoch(0)
    return [data[i][1] for i in range(min(length, len(data)))]


def frame_batches(frames: list[torch.Tensor], device, size: int = 4) -> list[torch.Tensor]:
    """Whole frames ``(1, H, W)`` as batches of up to `size` frames of one shape."""
    batches: list[list[torch.Tensor]] = []
    for frame in frames:
        if batches and len(batches[-1]) < size and batches[-1][0].shape == frame.shape:
            batches[-1].append(frame)
        else:
            batches.append([frame])
    return [torch.stack(b).to(device) for b in batches]


def _hash(stage: str) -> int:
    """A 64-bit hash of the whole name (stable across processes, unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(stage.encode(), digest_size=8).digest(), "little")


def example_pairs(folder) -> list[Path]:
    """The degraded images of an `examples` folder (``hard/``), each with its clean image
    in ``imgs/``; checked before a run trains, since the examples are scored at its end."""
    folder = Path(folder)
    clean_dir, hard_dir = folder / "imgs", folder / "hard"
    if not (clean_dir.is_dir() and hard_dir.is_dir()):
        raise InvalidInputError(f"`examples` must hold the folders imgs/ and hard/; got {folder}")
    hard = list_images(hard_dir)
    unpaired = [p.name for p in hard if not (clean_dir / p.name).is_file()]
    if unpaired:
        raise InvalidInputError(
            f"`examples`: every image of {hard_dir} needs a clean image of the same name in "
            f"{clean_dir}; {unpaired[:5]} have none"
        )
    return hard
