"""Neural-network building blocks (plain PyTorch) for the DeAOT family."""

from vosuite.nn.attention import GatedPropagation, LocalGatedPropagation, local_dot, local_weighted_sum
from vosuite.nn.deformable_attention import (
    DeformableConfig,
    DeformableSampler,
    GatedDeformablePropagation,
    LocalGatedDeformablePropagation,
    OffsetNetwork,
    deformable_attention,
    reference_points,
)
from vosuite.nn.fpn_decoder import FPNSegmentationHead
from vosuite.nn.frozen_bn import FrozenBatchNorm2d
from vosuite.nn.gpm import DualBranchGPM, GatedPropagationLayer, LayerCurrent, LayerMemory, PropagationAttention
from vosuite.nn.mobilenetv2 import MobileNetV2
from vosuite.nn.position import SinePositionEmbedding, sine_position_embedding
from vosuite.nn.resnet import ResNet, resnet50

__all__ = [
    "DeformableConfig",
    "DeformableSampler",
    "DualBranchGPM",
    "FPNSegmentationHead",
    "FrozenBatchNorm2d",
    "GatedDeformablePropagation",
    "GatedPropagation",
    "GatedPropagationLayer",
    "LayerCurrent",
    "LayerMemory",
    "LocalGatedDeformablePropagation",
    "LocalGatedPropagation",
    "MobileNetV2",
    "OffsetNetwork",
    "PropagationAttention",
    "ResNet",
    "SinePositionEmbedding",
    "deformable_attention",
    "local_dot",
    "local_weighted_sum",
    "reference_points",
    "resnet50",
    "sine_position_embedding",
]
