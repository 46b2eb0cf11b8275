"""Pure ``nn.Module`` building blocks of ECMRNet (no training code)."""

from sepkit_torch.models.backbone import (
    MODEL_PRESETS,
    STAGE_NAMES,
    Backbone,
    BackboneConfig,
    Branch,
    GResBlock,
    Stage,
    check_images,
    pad_to_multiple,
)
from sepkit_torch.models.nafnet import (
    NAFNET_PRESETS,
    LayerNorm2d,
    NAFBlock,
    NAFNet,
    NAFNetConfig,
    SimpleGate,
)
from sepkit_torch.models.recognizer import DegradationRecognizer, LetterHead
from sepkit_torch.models.skmm import (
    SKMM_VARIANTS,
    PaperSKMM,
    ReleasedSKMM,
    SKMMConfig,
    make_skmm,
)

__all__ = [
    "NAFNET_PRESETS",
    "MODEL_PRESETS",
    "SKMM_VARIANTS",
    "STAGE_NAMES",
    "Backbone",
    "BackboneConfig",
    "Branch",
    "DegradationRecognizer",
    "GResBlock",
    "LayerNorm2d",
    "LetterHead",
    "NAFBlock",
    "NAFNet",
    "NAFNetConfig",
    "PaperSKMM",
    "ReleasedSKMM",
    "SKMMConfig",
    "SimpleGate",
    "Stage",
    "check_images",
    "make_skmm",
    "pad_to_multiple",
]
