"""Inference: per-video state kept apart from the networks (DeAOT memory, S2S recurrent states),
one module per job:

* :mod:`~vosuite.inference.memory`: DeAOT memory tensors and the one update rule (shared with training);
* :mod:`~vosuite.inference.step`: the pure DeAOT step;
* :mod:`~vosuite.inference.merge`: logits to labels, object-group merging;
* :mod:`~vosuite.inference.core`: per-video cores with ``step(rgb, mask)`` (DeAOT; S2S in
  :mod:`~vosuite.inference.s2s`);
* :mod:`~vosuite.inference.cores`: the core of any network from the shared options;
* :mod:`~vosuite.inference.backend`: what runs a network's graphs (the network, or ONNX Runtime);
* :mod:`~vosuite.inference.propagate`: a video (path or frames) + prompts -> label maps, in memory;
* :mod:`~vosuite.inference.preprocess`: frames to network inputs, labels between sizes.

Unsupervised discovery lives in :mod:`vosuite.unsupervised`; weights in :mod:`vosuite.checkpoints`.
"""

from vosuite.inference.core import InferenceCore, VideoCore, model_input_size
from vosuite.inference.memory import DeAOTMemory, GroupMemory, LongTermMemory, MemoryConfig
from vosuite.inference.merge import aggregate_groups, logits_to_label, separate_label, soft_aggregate
from vosuite.inference.preprocess import network_input_size, normalize_rgb, preprocess_image, resize_label
from vosuite.inference.s2s import DEFAULT_S2S_SIZE, S2SInferenceCore, merge_objects, s2s_input_size
from vosuite.inference.step import StepResult, deaot_step, start_memory

__all__ = [
    "DEFAULT_S2S_SIZE",
    "DeAOTMemory",
    "GroupMemory",
    "InferenceCore",
    "LongTermMemory",
    "MemoryConfig",
    "S2SInferenceCore",
    "StepResult",
    "VideoCore",
    "aggregate_groups",
    "deaot_step",
    "logits_to_label",
    "merge_objects",
    "model_input_size",
    "network_input_size",
    "normalize_rgb",
    "preprocess_image",
    "resize_label",
    "s2s_input_size",
    "separate_label",
    "soft_aggregate",
    "start_memory",
]
