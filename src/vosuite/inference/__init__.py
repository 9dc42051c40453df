"""Inference engines (per-video state kept apart from the networks) and preprocessing."""

from vosuite.inference.deaot import DeAOTEngine, DeAOTState, logits_to_label
from vosuite.inference.preprocess import network_input_size, preprocess_image, read_rgb, resize_label

__all__ = [
    "DeAOTEngine",
    "DeAOTState",
    "logits_to_label",
    "network_input_size",
    "preprocess_image",
    "read_rgb",
    "resize_label",
]
