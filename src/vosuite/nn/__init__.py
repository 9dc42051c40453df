"""Neural-network building blocks (plain PyTorch) for the DeAOT family."""

from vosuite.nn.attention import GatedPropagation, LocalGatedPropagation, local_dot, local_weighted_sum
from vosuite.nn.fpn_decoder import FPNSegmentationHead
from vosuite.nn.frozen_bn import FrozenBatchNorm2d
from vosuite.nn.gpm import DualBranchGPM, GatedPropagationLayer, LayerCurrent, LayerMemory
from vosuite.nn.mobilenetv2 import MobileNetV2
from vosuite.nn.position import SinePositionEmbedding, sine_position_embedding
from vosuite.nn.resnet import ResNet, resnet50

__all__ = [
    "DualBranchGPM",
    "FPNSegmentationHead",
    "FrozenBatchNorm2d",
    "GatedPropagation",
    "GatedPropagationLayer",
    "LayerCurrent",
    "LayerMemory",
    "LocalGatedPropagation",
    "MobileNetV2",
    "ResNet",
    "SinePositionEmbedding",
    "local_dot",
    "local_weighted_sum",
    "resnet50",
    "sine_position_embedding",
]
