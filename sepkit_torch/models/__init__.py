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

__all__ = [
    "PRESETS",
    "STAGE_NAMES",
    "Backbone",
    "BackboneConfig",
    "Branch",
    "GResBlock",
    "Stage",
    "check_images",
    "pad_to_multiple",
]
