"""A run's data: training, test and validation sets, SEP's pool of whole frames, and the
seed of every stage's randomness."""

from __future__ import annotations

import torch

from sepkit_torch.data import make_dataset
from sepkit_torch.data.sampling import mix_seed

__all__ = ["frame_batches", "stage_seed", "test_set", "train_set", "validation_set"]

# seed of the validation images (strength tuning), apart from every stage's seed
_VALIDATION_SEED = 0x5EED_7A11


def stage_seed(config, stage: str, *salt: int) -> int:
    """The seed of `stage`'s randomness (its data, batch order, ...; `salt` tells them
    apart): a function of ``(config.seed, stage)`` only, so a resumed run draws the same."""
    return mix_seed(config.seed, _hash(stage), *salt)


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
    return int.from_bytes(stage.encode()[:8].ljust(8, b"\0"), "little") ^ len(stage)
