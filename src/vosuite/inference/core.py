"""Per-video stateful inference on top of the pure DeAOT step (like Cutie's ``InferenceCore``,
whose ``step`` it mirrors; :mod:`vosuite.inference.step`).

    core = InferenceCore(model)                      # one per video
    prob = core.step(rgb0, mask=first_mask)          # [1 + K, H, W]; core.labels: [H, W] ids
    prob = core.step(rgb1)
    prob = core.step(rgb7, mask=new_objects)         # objects can join at any frame

Frames are RGB uint8 [H, W, 3] at their own resolution; masks hold the caller's object ids
(0 = background, 255 = void, treated as background). Inside, ids are renumbered 1..K in order of
appearance (as aot-benchmark squeezes them); probabilities and labels come back at the frame's
resolution, channel ``k`` of the probabilities being ``object_ids[k - 1]``.

:class:`VideoCore` holds what every family's per-video state shares (frame-size checks, id
mapping, the last label map); :class:`InferenceCore` is DeAOT's, and
:class:`vosuite.inference.s2s.S2SInferenceCore` the recurrent S2S / S2S++ one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from vosuite.errors import InputError
from vosuite.inference.backend import DeAOTBackend
from vosuite.inference.memory import DeAOTMemory, MemoryConfig
from vosuite.inference.preprocess import (
    DEFAULT_MAX_LONG_EDGE,
    network_input_size,
    preprocess_image,
    resize_label,
)
from vosuite.inference.step import deaot_step, start_memory
from vosuite.io.masks import VOID_ID, ids_from_binary_0_255
from vosuite.models.deaot import DeAOT

#: Largest object id that fits a palette PNG next to void (255).
MAX_OBJECT_ID = 254


def model_input_size(model: DeAOT, height: int, width: int, size: int | None = None) -> tuple[int, int]:
    """The network input (H, W) for a frame: the model's preprocessing (aot-benchmark
    ``MultiRestrictSize``: long edge <= 1040, sides snapped to 16 n + 1 with align_corners) after
    shrinking so the short side is <= ``size`` when given."""
    cfg = model.cfg
    max_long_edge = getattr(cfg, "max_long_edge", DEFAULT_MAX_LONG_EDGE)
    return network_input_size(height, width, max_long_edge=max_long_edge, max_short_edge=size,
                              align_corners=cfg.align_corners)


class VideoCore:
    """What every per-video inference state shares: the video's frame size and network input size,
    the caller's object ids (``object_ids``, internal id k = ``object_ids[k - 1]``), the frame
    count and the last label map. Subclasses define :meth:`network_size` and ``step``.

    Args:
        size: internal resolution (its meaning is the subclass's); None = the model's default.
        min_size: the smallest ``size`` accepted.
        device: where the network runs (frames are preprocessed on the CPU and moved there;
            probabilities and labels come back on the CPU).
    """

    def __init__(self, size: int | None = None, min_size: int = 16, device: str | torch.device = "cpu") -> None:
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < min_size):
            raise InputError(f"size must be an integer >= {min_size}, got {size!r}")
        self.size = size
        self.device = torch.device(device)
        self.reset()

    def reset(self) -> None:
        """Forget the video (objects, sizes)."""
        self.object_ids: list[int] = []
        self.frame_size: tuple[int, int] | None = None
        self.input_size: tuple[int, int] | None = None
        self.frames_seen = 0
        self._label: torch.Tensor | None = None

    @property
    def labels(self) -> np.ndarray:
        """The last frame's label map [H, W] with the caller's object ids (uint8)."""
        if self._label is None:
            raise RuntimeError("step() a frame first")
        lookup = np.asarray([0, *self.object_ids], dtype=np.uint8)
        return lookup[self._label[0, 0].numpy()]

    def _internal_mask(self, mask: np.ndarray, object_ids: Sequence[int] | None) -> np.ndarray | None:
        """The mask with internal ids (new objects get new ones); None when it holds no object. A
        mask holding only 0 and 255 (DAVIS-2016 style) is one object, as in mask files."""
        mask = ids_from_binary_0_255(np.asarray(mask))
        if mask.ndim != 2 or tuple(mask.shape) != self.frame_size:
            raise InputError(f"mask shape {mask.shape} differs from the frame's {self.frame_size}")
        if object_ids is None:
            present = np.unique(mask)
            object_ids = [int(v) for v in present if v != 0 and v != VOID_ID]
        internal = np.zeros(mask.shape, dtype=np.int64)
        for ext in object_ids:
            ext = int(ext)
            if not 1 <= ext <= MAX_OBJECT_ID:
                raise InputError(f"object id {ext} outside 1..{MAX_OBJECT_ID}")
            if ext not in self.object_ids:
                self.object_ids.append(ext)
            internal[mask == ext] = self.object_ids.index(ext) + 1
        return internal if internal.any() else None

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        """The network input (H, W) for frames of (height, width)."""
        raise NotImplementedError

    def step(self, frame: np.ndarray, mask: np.ndarray | None = None,
             object_ids: Sequence[int] | None = None) -> torch.Tensor:
        """Segment one frame; returns probabilities [1 + K, H, W] (float32, at the frame's size).

        Args:
            frame: RGB uint8 [H, W, 3]; every frame of a video has the same size.
            mask: optional [H, W] ids for this frame: the objects in it (all but 0 / 255, or only
                ``object_ids``) overwrite the prediction there and the model restarts from them
                (DeAOT: a reference frame; S2S: their recurrent states start from this frame).
                Before the first mask with an object, frames come out as background.
            object_ids: which ids of ``mask`` to use (default: every id present).
        """
        raise NotImplementedError

    def accept_frame(self, frame: np.ndarray, mask: np.ndarray | None,
                     object_ids: Sequence[int] | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Check a frame (the first fixes the video's size), count it, and turn ``mask`` into
        internal ids (None when it holds no object): (RGB, internal mask or None)."""
        rgb = np.asarray(frame)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise InputError(f"frame must be [H, W, 3] RGB, got shape {rgb.shape}")
        height, width = rgb.shape[:2]
        if self.frame_size is None:
            self.frame_size = (height, width)
            self.input_size = self.network_size(height, width)
        elif (height, width) != self.frame_size:
            raise InputError(f"frame size {width}x{height} differs from the video's "
                             f"{self.frame_size[1]}x{self.frame_size[0]}")
        internal = None if mask is None else self._internal_mask(mask, object_ids)
        self.frames_seen += 1
        return rgb, internal

    def background(self) -> torch.Tensor:
        """A frame before any object: label 0 everywhere, probabilities [1, H, W] of ones."""
        height, width = self.frame_size
        self._label = torch.zeros(1, 1, height, width, dtype=torch.long)
        return torch.ones(1, height, width)


class InferenceCore(VideoCore):
    """One video's DeAOT inference state: network, memory tensors (:class:`DeAOTMemory`), id mapping.

    Args:
        model: a DeAOT network (set to eval mode; it should live on ``device``).
        memory: memory rules (default: the model's, with the default long-term cap).
        size: internal resolution: frames are shrunk so their short side is <= ``size`` before the
            model's size rule; None = the model's default preprocessing. Outputs are always at
            the frame's resolution.
        device: see :class:`VideoCore`.
        backend: runs the network's graphs (encode, propagate, decode); default: the network
            itself (:mod:`vosuite.inference.backend`; ONNX Runtime: :mod:`vosuite.onnx.runtime`).
    """

    def __init__(self, model: DeAOT, memory: MemoryConfig | None = None, size: int | None = None,
                 device: str | torch.device = "cpu", backend: DeAOTBackend | None = None) -> None:
        self.model = model.eval()
        self.backend = backend
        self.config = memory or MemoryConfig.for_model(model.cfg)
        super().__init__(size, device=device)

    def reset(self) -> None:
        """Forget the video (memory, objects, sizes)."""
        self.memory: DeAOTMemory | None = None
        #: the last :class:`~vosuite.inference.step.StepResult` (raw logits for tests and tools)
        self.last = None
        super().reset()

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        return model_input_size(self.model, height, width, self.size)

    @torch.no_grad()
    def step(self, frame: np.ndarray, mask: np.ndarray | None = None,
             object_ids: Sequence[int] | None = None) -> torch.Tensor:
        """:meth:`VideoCore.step`; a frame with a mask becomes a reference frame of the memory."""
        rgb, internal = self.accept_frame(frame, mask, object_ids)
        if self.memory is None and internal is None:
            return self.background()
        img = preprocess_image(rgb, self.input_size).to(self.device)
        if self.memory is None:
            label = torch.from_numpy(internal)[None, None]
            self.memory = start_memory(self.model, img, resize_label(label, self.input_size).to(self.device),
                                       len(self.object_ids), self.config, self.backend)
            self._label = label
            ids = torch.arange(len(self.object_ids) + 1).view(1, -1, 1, 1)
            return (label == ids).float()[0]
        new = None if internal is None else torch.from_numpy(internal)[None, None].to(self.device)
        self.last = deaot_step(self.model, img, self.memory, self.config, self.frame_size, new, self.backend)
        self.memory = self.last.memory
        self._label = self.last.label.cpu()
        return self.last.prob[0].cpu()
