"""sepkit_torch: ECMRNet, continual thermal-image restoration built on sepkit.

Install with the ``[torch]`` extra. The ECMRNet backbone and SKMM (:mod:`sepkit_torch.models`),
SCGE expansion (:class:`ECMRNet`), SEP pruning and SKMM mining
(:mod:`sepkit_torch.continual`), degradations and datasets (:mod:`sepkit_torch.data`),
PSNR/SSIM (:mod:`sepkit_torch.metrics`), the paper's complexity counter, the task-sequence
pipeline (:mod:`sepkit_torch.pipeline`, ``python -m sepkit_torch.pipeline``), and blind
restoration with a trained run (:func:`load` -> :class:`Restorer`, with the degradation
recognizer of :mod:`sepkit_torch.continual.recognition`; ``python -m sepkit_torch restore``).

>>> import torch
>>> import sepkit_torch
>>> model = sepkit_torch.ECMRNet.from_preset("tiny")
>>> _ = model.add_task("C")
>>> model(torch.rand(1, 1, 24, 24), task="C").shape
torch.Size([1, 1, 24, 24])
"""

from sepkit_torch._errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    ImageFileError,
    InvalidInputError,
    RunFolderError,
    SepkitTorchError,
    TaskStateError,
    TrainingDivergedError,
    UnknownDegradationError,
    UnknownTaskError,
)
from sepkit_torch.complexity import Complexity, complexity
from sepkit_torch.continual.expansion import ECMRNet, TaskInfo
from sepkit_torch.inference import Restorer, load
from sepkit_torch.metrics import psnr, ssim
from sepkit_torch.models.backbone import MODEL_PRESETS, Backbone, BackboneConfig
from sepkit_torch.training import fit, make_optimizer, train_step, trainable_parameters

__all__ = [
    "MODEL_PRESETS",
    "Restorer",
    "Backbone",
    "BackboneConfig",
    "CheckpointError",
    "Complexity",
    "ConfigError",
    "DatasetError",
    "ECMRNet",
    "ImageFileError",
    "InvalidInputError",
    "RunFolderError",
    "SepkitTorchError",
    "TaskInfo",
    "TaskStateError",
    "TrainingDivergedError",
    "UnknownDegradationError",
    "UnknownTaskError",
    "complexity",
    "load",
    "fit",
    "make_optimizer",
    "psnr",
    "ssim",
    "train_step",
    "trainable_parameters",
]
