"""The networks, one module per family; importing this package registers every family and model
name (:mod:`vosuite.registry`). Build and load them with :func:`vosuite.factory.create_model`."""

# The order of registration is the order of `vosuite models`.
# isort: off
from vosuite.models.deaot import DEFORMABLE_VARIANTS, VARIANTS, DeAOT, DeAOTConfig, get_config
from vosuite.models.s2s import S2S, S2S_VARIANTS, S2SConfig, get_s2s_config
from vosuite.models.baseline import BASELINES, BaselineConfig, TrainingFreeTracker
from vosuite.models.bba import BBA_VARIANTS, BbAConfig, BetrayedByAttention
from vosuite.models.dino import DINO_VARIANTS, DINOConfig, DINOPretraining
# isort: on

__all__ = [
    "BASELINES",
    "BBA_VARIANTS",
    "DEFORMABLE_VARIANTS",
    "DINO_VARIANTS",
    "S2S",
    "S2S_VARIANTS",
    "VARIANTS",
    "BaselineConfig",
    "BbAConfig",
    "BetrayedByAttention",
    "DINOConfig",
    "DINOPretraining",
    "DeAOT",
    "DeAOTConfig",
    "S2SConfig",
    "TrainingFreeTracker",
    "get_config",
    "get_s2s_config",
]
