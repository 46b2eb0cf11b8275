"""Thermal degradations, the task registry, datasets and procedural thermal scenes.

Modules, bottom up: ``sampling`` (seeded draws, argument checks), ``registry`` (task names,
presets), ``degradations`` (the operations; registers C, B, N, D), ``image_io`` (image
files), ``shapes`` (drawing primitives), ``soft_scenes`` and ``detailed_scenes`` (the two
styles of procedural scenes), ``synthetic`` (the scene API), ``patches`` (how items are cut
from frames), ``folders`` (image-folder data sets) and ``datasets``; beside them
``estimation`` (fitting degradation parameters to real pairs) and ``statistics`` (how
close scenes come to real images).
"""

from sepkit_torch.data.datasets import SyntheticThermalDataset, make_dataset
from sepkit_torch.data.degradations import (
    dead_hot_pixels,
    gaussian_blur,
    gaussian_noise,
    low_contrast,
    optical_nonuniformity,
    quantize,
    stripe_noise,
    tir_noise,
    vignetting,
)
from sepkit_torch.data.folders import DegradedImageFolder, PairedImageFolder
from sepkit_torch.data.image_io import (
    IMAGE_EXTENSIONS,
    DatasetError,
    ImageFileError,
    list_images,
    read_grey,
    read_image,
    write_grey,
)
from sepkit_torch.data.registry import (
    APPENDIX_TASKS,
    DEGRADATION_PRESETS,
    PAPER_TASKS,
    Degradation,
    UnknownDegradationError,
    degrade,
    get_degradation,
    list_degradations,
    list_tasks,
    parse_task,
    register_degradation,
    task_name,
    unregister_degradation,
)
from sepkit_torch.data.synthetic import SCENE_STYLES, thermal_scene, thermal_scenes

__all__ = [
    "APPENDIX_TASKS",
    "DEGRADATION_PRESETS",
    "IMAGE_EXTENSIONS",
    "PAPER_TASKS",
    "SCENE_STYLES",
    "DatasetError",
    "Degradation",
    "DegradedImageFolder",
    "ImageFileError",
    "PairedImageFolder",
    "SyntheticThermalDataset",
    "UnknownDegradationError",
    "dead_hot_pixels",
    "degrade",
    "gaussian_blur",
    "gaussian_noise",
    "get_degradation",
    "list_degradations",
    "list_images",
    "list_tasks",
    "low_contrast",
    "make_dataset",
    "optical_nonuniformity",
    "parse_task",
    "quantize",
    "read_grey",
    "read_image",
    "register_degradation",
    "stripe_noise",
    "task_name",
    "thermal_scene",
    "thermal_scenes",
    "tir_noise",
    "unregister_degradation",
    "write_grey",
    "vignetting",
]
