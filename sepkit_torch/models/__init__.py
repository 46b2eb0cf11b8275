"""Pure ``nn.Module`` building blocks of ECMRNet (no training code)."""

from sepkit_torch.models.backbone import (
    PRESETS,
    STAGE_NAMES,
    Backbone,
    BackboneConfig,
    Branch,
    GResBlock,
    Stage,
    check_images,
    pad_to_multiple,
)
from sepkit_torch.models.skmm import (
    SKMM_VARIANTS,
    PaperSKMM,
    ReleasedSKMM,
    SKMMConfig,
    make_skmm,
)

__all__ = [
    "PRESETS",
    "SKMM_VARIANTS",
    "STAGE_NAMES",
    "Backbone",
    "BackboneConfig",
    "Branch",
    "GResBlock",
    "PaperSKMM",
    "ReleasedSKMM",
    "SKMMConfig",
    "Stage",
    "check_images",
    "make_skmm",
    "pad_to_multiple",
]
