"""Video object segmentation networks."""

from vosuite.models.build import build, extract_state_dict, load_checkpoint, load_state_dict_strict
from vosuite.models.deaot import DEFORMABLE_VARIANTS, VARIANTS, DeAOT, DeAOTConfig, get_config

__all__ = [
    "DEFORMABLE_VARIANTS",
    "VARIANTS",
    "DeAOT",
    "DeAOTConfig",
    "build",
    "extract_state_dict",
    "get_config",
    "load_checkpoint",
    "load_state_dict_strict",
]
