"""Inference engines (per-video state kept apart from the networks: DeAOT memory, S2S recurrent
states), preprocessing and weights."""

from vosuite.inference.core import InferenceCore, VideoCore, model_input_size
from vosuite.inference.deaot import (
    DeAOTEngine,
    DeAOTMemory,
    DeAOTState,
    GroupMemory,
    MemoryConfig,
    StepResult,
    deaot_step,
    logits_to_label,
    soft_aggregate,
    start_memory,
)
from vosuite.inference.preprocess import network_input_size, preprocess_image, resize_label
from vosuite.inference.s2s import DEFAULT_S2S_SIZE, S2SInferenceCore, merge_objects, s2s_input_size

__all__ = [
    "DEFAULT_S2S_SIZE",
    "DeAOTEngine",
    "DeAOTMemory",
    "DeAOTState",
    "GroupMemory",
    "InferenceCore",
    "MemoryConfig",
    "S2SInferenceCore",
    "StepResult",
    "VideoCore",
    "deaot_step",
    "logits_to_label",
    "merge_objects",
    "model_input_size",
    "network_input_size",
    "preprocess_image",
    "resize_label",
    "s2s_input_size",
    "soft_aggregate",
    "start_memory",
]
