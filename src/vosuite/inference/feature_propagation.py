"""Per-video state of ``propagate-features``: label propagation with frozen features, the standard
evaluation of self-supervised video features (DINO: Caron et al., "Emerging Properties in
Self-Supervised Vision Transformers", ICCV 2021, Sec. 4.2 and Appendix, ``eval_video_segmentation.py``;
CRW: Jabri et al., "Space-Time Correspondence as a Contrastive Random Walk", NeurIPS 2020, Sec. 4),
with the :class:`~vosuite.inference.core.VideoCore` API (``step(rgb, mask)``, ``labels``).

The protocol (:class:`PropagationSettings`):

* frames are resized so the short side is 240 px (``size``), both sides snapped to multiples of
  the backbone's stride, and encoded at that stride
  (:class:`~vosuite.models.feature_backbone.FeatureBackbone`); features are L2-normalised over
  channels, so a dot product is a cosine similarity;
* the context is the first frame (the one with the mask) plus the 7 previous frames (a
  fixed-length queue);
  its labels are soft label maps at feature resolution: the first frame's is the one-hot of its
  mask sampled at the cells' centres (DINO's ``read_seg``: a nearest resize to the feature grid);
  every later frame's is its own propagated soft map;
* each cell of a new frame takes the top-5 most similar context cells (over all context frames
  together) inside a square window of radius 12 cells around its own position (DINO's
  ``size_mask_neighborhood = 12``), weights them by a softmax of similarity / 0.07, and averages
  their label distributions;
* the soft map is upsampled bilinearly to the frame size and its argmax is the label map.

Masks given on later frames overwrite the labels where they hold objects (as for every vosuite
tracker), and the context restarts from them, as the learned trackers restart from a mask: the
frame becomes the context's first frame, its soft map the mask's one-hot on the cells whose centre
the mask's objects cover and the propagated map elsewhere (new objects get a channel), and the
previous frames are dropped (they label the new objects background). Memory is bounded: at most
1 + ``previous`` feature and label maps are kept.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vosuite.inference.core import VideoCore
from vosuite.inference.preprocess import preprocess_image
from vosuite.models.baseline import TrainingFreeTracker
from vosuite.models.feature_backbone import FeatureBackbone
from vosuite.nn.vit import dino_preprocess

#: Query cells per affinity block (bounds the [cells, context cells] similarity matrix).
CHUNK = 1024



def backbone_input(backbone: FeatureBackbone, rgb: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """RGB uint8 [H, W, 3] -> the backbone's input [1, 3, h, w] (``size`` = (h, w), multiples of its
    stride): DINO's normalisation for a ViT, vosuite's for a CNN encoder."""
    return dino_preprocess(rgb, size) if backbone.is_vit else preprocess_image(rgb, size)

@dataclass(frozen=True)
class PropagationSettings:
    """The protocol's constants (DINO Sec. 4.2 / Appendix; CRW Sec. 4)."""

    topk: int = 5
    temperature: float = 0.07
    radius: int = 12  # square window, in feature cells (DINO's size_mask_neighborhood)
    previous: int = 7  # previous frames in the context, next to the first one (DINO's n_last_frames)
    short_side: int = 240  # network input short side, in pixels


@dataclass
class ContextFrame:
    """One context frame: L2-normalised features [C, h, w] and soft labels [1 + K, h, w]."""

    features: torch.Tensor
    labels: torch.Tensor


def feature_input_size(height: int, width: int, short_side: int, stride: int) -> tuple[int, int]:
    """The network input (h, w) of a frame: short side ``short_side``, the aspect kept, each side
    rounded to a multiple of ``stride`` (at least one stride)."""
    scale = short_side / min(height, width)
    return tuple(max(stride, round(side * scale / stride) * stride) for side in (height, width))


def window_mask(rows: int, cols: int, radius: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """[rows * cols, rows * cols] bool: cell j lies within ``radius`` cells of cell i along both axes."""
    y, x = torch.meshgrid(torch.arange(rows, device=device), torch.arange(cols, device=device), indexing="ij")
    y, x = y.flatten(), x.flatten()  # [hw]
    return ((y[:, None] - y[None, :]).abs() <= radius) & ((x[:, None] - x[None, :]).abs() <= radius)


def propagate_labels(query: torch.Tensor, keys: torch.Tensor, labels: torch.Tensor, window: torch.Tensor,
                     settings: PropagationSettings) -> torch.Tensor:
    """One frame's soft labels from its context (module docstring; DINO's ``label_propagation``).

    Args:
        query: the new frame's L2-normalised features [C, h, w].
        keys: the context frames' L2-normalised features [T, C, h, w].
        labels: the context frames' soft labels [T, K, h, w].
        window: :func:`window_mask` of the grid [hw, hw].
    Returns:
        soft labels [K, h, w], each cell a convex combination of ``topk`` context cells' labels.
    """
    frames, channels, rows, cols = keys.shape
    cells = rows * cols
    q = query.reshape(channels, cells).T  # [hw, C]
    k = keys.reshape(frames, channels, cells).permute(1, 0, 2).reshape(channels, frames * cells)  # [C, T*hw]
    v = labels.reshape(frames, -1, cells).permute(0, 2, 1).reshape(frames * cells, -1)  # [T*hw, K]
    out = torch.empty(cells, v.shape[1], dtype=v.dtype, device=v.device)  # [hw, K]
    for start in range(0, cells, CHUNK):
        stop = min(start + CHUNK, cells)
        sim = (q[start:stop] @ k).view(stop - start, frames, cells)  # [n, T, hw]
        sim = sim.masked_fill(~window[start:stop, None, :], float("-inf")).view(stop - start, -1)  # [n, T*hw]
        top, index = sim.topk(min(settings.topk, sim.shape[1]), dim=1)  # [n, k]
        weight = torch.softmax(top / settings.temperature, dim=1)  # [n, k]
        out[start:stop] = torch.einsum("nk,nkc->nc", weight, v[index])
    return out.T.reshape(-1, rows, cols)


def mask_labels(internal: np.ndarray, objects: int, grid: tuple[int, int]) -> torch.Tensor:
    """An internal-id mask [H, W] as labels [1 + objects, h, w]: the one-hot of its value at each
    cell's centre (pixel ``floor((i + 0.5) * H / h)``, as PIL's nearest resize in DINO's ``read_seg``)."""
    small = F.interpolate(torch.from_numpy(internal)[None, None].float(), size=grid, mode="nearest-exact")[0]
    return (small == torch.arange(objects + 1).view(-1, 1, 1)).float()  # [1+K, h, w]


def pad_objects(labels: torch.Tensor, objects: int) -> torch.Tensor:
    """Soft labels [1 + k, h, w] with zero channels for objects k + 1 .. ``objects``."""
    return F.pad(labels, (0, 0, 0, 0, 0, objects + 1 - labels.shape[0]))


class FeaturePropagationCore(VideoCore):
    """One video's label-propagation state (module docstring).

    Args:
        model: a ``propagate-features`` tracker (its ``backbone`` lives on ``device``).
        size: the network input's short side (default 240, the protocol's).
        settings: the protocol's constants (default: DINO's / the module docstring's).
    """

    def __init__(self, model: TrainingFreeTracker, size: int | None = None, device: str | torch.device = "cpu",
                 settings: PropagationSettings | None = None) -> None:
        self.model = model
        self.backbone = model.backbone.eval()
        self.settings = settings or PropagationSettings()
        super().__init__(size, device=device)

    def reset(self) -> None:
        self.first: ContextFrame | None = None
        self.previous: deque[ContextFrame] = deque(maxlen=self.settings.previous)
        self.window: torch.Tensor | None = None  # [hw, hw] bool
        self.soft: torch.Tensor | None = None  # the last frame's soft labels [1 + K, h, w]
        super().reset()

    @property
    def context(self) -> list[ContextFrame]:
        """The context of the next frame: the first frame, then the previous ones (oldest first)."""
        return [] if self.first is None else [self.first, *self.previous]

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        return feature_input_size(height, width, self.size or self.settings.short_side, self.backbone.stride)

    @torch.no_grad()
    def step(self, frame: np.ndarray, mask: np.ndarray | None = None,
             object_ids: Sequence[int] | None = None) -> torch.Tensor:
        """:meth:`VideoCore.step`: probabilities are the upsampled soft labels [1 + K, H, W]."""
        rgb, internal = self.accept_frame(frame, mask, object_ids)
        if self.first is None and internal is None:
            return self.background()
        features = self.features(rgb)  # [C, h, w]
        objects = len(self.object_ids)
        if self.first is None:
            self.soft = mask_labels(internal, objects, features.shape[1:]).to(self.device)
            self.first = ContextFrame(features, self.soft)
            self._label = torch.from_numpy(internal)[None, None]
            return (self._label[0] == torch.arange(objects + 1).view(-1, 1, 1)).float()  # the mask as given
        self.soft = self._propagate(features, objects)
        if internal is None:
            self.previous.append(ContextFrame(features, self.soft))
        else:  # the given mask starts the context afresh
            self.soft = self._overwrite(self.soft, internal, objects)
            self.first = ContextFrame(features, self.soft)
            self.previous.clear()
        return self._output(internal)

    def features(self, rgb: np.ndarray) -> torch.Tensor:
        """L2-normalised features of a frame [C, h, w]."""
        img = backbone_input(self.backbone, rgb, self.input_size).to(self.device)  # [1, 3, h*s, w*s]
        return F.normalize(self.backbone(img)[0].float(), dim=0)

    def _propagate(self, features: torch.Tensor, objects: int) -> torch.Tensor:
        context = self.context
        if self.window is None:
            self.window = window_mask(*features.shape[1:], self.settings.radius, device=features.device)
        keys = torch.stack([c.features for c in context])  # [T, C, h, w]
        labels = torch.stack([pad_objects(c.labels, objects) for c in context])  # [T, 1+K, h, w]
        return propagate_labels(features, keys, labels, self.window, self.settings)

    def _overwrite(self, soft: torch.Tensor, internal: np.ndarray, objects: int) -> torch.Tensor:
        """The context map of a frame with a mask: the mask on the cells whose centre holds an object."""
        given = mask_labels(internal, objects, soft.shape[1:]).to(soft.device)  # [1+K, h, w]
        covered = given[1:].sum(0, keepdim=True)  # [1, h, w]: 1 where a given object holds the centre
        return (1 - covered) * soft + torch.cat([torch.zeros_like(covered), given[1:]])

    def _output(self, internal: np.ndarray | None) -> torch.Tensor:
        """Upsampled soft labels [1 + K, H, W] (CPU); the label map, with a given mask's objects on top."""
        prob = F.interpolate(self.soft[None], size=self.frame_size, mode="bilinear", align_corners=False)[0].cpu()
        label = prob.argmax(0)  # [H, W]
        if internal is not None:
            given = torch.from_numpy(internal)
            label = torch.where(given > 0, given, label)
        self._label = label[None, None]
        return prob
