"""Video object segmentation networks: the DeAOT family and S2S / S2S++ (names: :mod:`vosuite.registry`)."""

from vosuite.models.build import build, extract_state_dict, load_checkpoint, load_state_dict_strict
from vosuite.models.deaot import DEFORMABLE_VARIANTS, VARIANTS, DeAOT, DeAOTConfig, get_config
from vosuite.models.s2s import S2S, S2S_VARIANTS, S2SConfig, get_s2s_config

__all__ = [
    "DEFORMABLE_VARIANTS",
    "S2S",
    "S2S_VARIANTS",
    "VARIANTS",
    "DeAOT",
    "DeAOTConfig",
    "S2SConfig",
    "build",
    "extract_state_dict",
    "get_config",
    "get_s2s_config",
    "load_checkpoint",
    "load_state_dict_strict",
]
