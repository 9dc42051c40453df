"""Inference engines (per-video state kept apart from the networks), preprocessing and weights."""

from vosuite.inference.core import InferenceCore, model_input_size
from vosuite.inference.deaot import (
    DeAOTEngine,
    DeAOTMemory,
    DeAOTState,
    GroupMemory,
    MemoryConfig,
    StepResult,
    deaot_step,
    logits_to_label,
    start_memory,
)
from vosuite.inference.preprocess import network_input_size, preprocess_image, resize_label

__all__ = [
    "DeAOTEngine",
    "DeAOTMemory",
    "DeAOTState",
    "GroupMemory",
    "InferenceCore",
    "MemoryConfig",
    "StepResult",
    "deaot_step",
    "logits_to_label",
    "model_input_size",
    "network_input_size",
    "preprocess_image",
    "resize_label",
    "start_memory",
]
