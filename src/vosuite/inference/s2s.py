"""S2S / S2S++ inference: one recurrent state per object, batched over the objects.

    core = S2SInferenceCore(model)                   # one per video (model: vosuite.models.s2s.S2S)
    prob = core.step(rgb0, mask=first_mask)          # [1 + K, H, W]; core.labels: [H, W] ids
    prob = core.step(rgb1)
    prob = core.step(rgb7, mask=new_objects)         # objects can join (or be corrected) at any frame

Same API and id conventions as :class:`~vosuite.inference.core.InferenceCore` (DeAOT), so the
:class:`~vosuite.segment.Segmenter` drives either.

* **One binary sequence per object** (Xu et al. 2018, Azimi et al. 2020, RS2S ``submit_ytvos.py``):
  the frame where an object is given and its 0/1 mask go through ``S2S.initial_state``; every
  later frame goes through ``S2S.step`` with that object's (h, c) state. The objects' states are
  stacked on the batch dimension (N = objects), so one ``step`` call serves them all. A mask
  given on a later frame starts its new objects there (their initial state is appended) and
  re-initialises the objects it names again (a correction); its pixels overwrite the prediction.
* **Memory is constant per object**: a video carries only the ConvLSTM states (for
  ``s2spp-mnv2`` at 256 x 448: 256 x 8 x 14 + 96 x 16 x 28 + 32 x 32 x 56 floats, h and c, i.e.
  about 1 MB per object; :attr:`S2SInferenceCore.state_bytes`); nothing grows with the number
  of frames.
* **Input size** (:func:`s2s_input_size`): the frame is scaled so its short side is ``size``
  (default 256, RS2S's training and test height; up or down: a recurrent network trained at one
  scale is run at that scale), keeping the aspect ratio, then each side is rounded to the nearest
  multiple of 32 (``S2S.stride``) by resizing, not padding: 480 x 854 becomes 256 x 448, RS2S's
  own input size. Resizing distorts the aspect ratio by at most 16 / side (under 3.6 % for sides
  >= 448), while padding would show the network borders it never saw in training. The mask
  logits are resized back to the frame (bilinear) before the sigmoid, so outputs are always at the
  input's resolution.
* **Merging objects** (:func:`merge_objects`): the per-object probabilities p_i = sigmoid(logit_i)
  are independent estimates; they become one label map in one of two ways:

  - ``"soft"`` (default): the soft aggregation of STM / AOT (the odds-based background
    competition, :func:`~vosuite.inference.merge.soft_aggregate`): background = prod_i (1 - p_i),
    then softmax over the log-odds of [background, p_1 .. p_K] (clamped to [1e-5, 1 - 1e-5]);
    the label is its argmax. It sums to 1 and is what DeAOT's multi-group merge does;
  - ``"rs2s"``: the authors' rule (RS2S ``submit_ytvos.py``): argmax over [0.5, p_1 .. p_K], a
    constant background score of 0.5; the returned "probabilities" are those scores normalised
    to sum 1 (their argmax is the label).

  With one object both give the same label (object where p > 0.5). With several they differ
  where the objects are unsure: ``soft`` lets two 0.4 objects beat the background (0.36),
  ``rs2s`` never labels a pixel whose best object has p <= 0.5. ``soft`` is the default because
  it yields a proper distribution over the labels and matches how vosuite merges DeAOT groups.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vosuite.errors import InputError
from vosuite.inference.backend import S2SBackend
from vosuite.inference.core import VideoCore
from vosuite.inference.merge import overwrite_with_given, soft_aggregate
from vosuite.inference.preprocess import preprocess_image, resize_label
from vosuite.models.s2s import S2S, S2SState
from vosuite.options import MERGES

#: Default internal resolution (short side) of S2S inference: RS2S trains and tests at 256 x 448.
DEFAULT_S2S_SIZE = 256
#: RS2S's constant background score.
RS2S_BACKGROUND = 0.5


def s2s_input_size(height: int, width: int, size: int = DEFAULT_S2S_SIZE, stride: int = S2S.stride
                   ) -> tuple[int, int]:
    """Network input (H, W) for a frame: short side scaled to ``size``, aspect kept, each side then
    rounded (half up) to a multiple of ``stride`` (at least one stride). 480 x 854 -> 256 x 448."""
    scale = size / min(height, width)

    def snap(n: int) -> int:
        return max(stride, int(math.floor(n * scale / stride + 0.5)) * stride)

    return snap(height), snap(width)


def merge_objects(prob: torch.Tensor, merge: str = "soft") -> torch.Tensor:
    """Per-object foreground probabilities [N, K, H, W] -> [N, 1 + K, H, W] summing to 1 over dim 1,
    channel 0 the background (``merge``: ``"soft"`` or ``"rs2s"``, see the module docstring)."""
    if merge == "soft":
        return soft_aggregate(1 - prob, prob)
    if merge == "rs2s":
        scores = torch.cat([torch.full_like(prob[:, :1], RS2S_BACKGROUND), prob], dim=1)
        return scores / scores.sum(dim=1, keepdim=True)
    raise InputError(f"unknown merge {merge!r}; known: {', '.join(MERGES)}")


class S2SInferenceCore(VideoCore):
    """One video's S2S inference state: network, per-object ConvLSTM states, id mapping.

    Args:
        model: an :class:`~vosuite.models.s2s.S2S` network (set to eval mode).
        size: internal resolution, the short side the frames are scaled to (:func:`s2s_input_size`);
            None = :data:`DEFAULT_S2S_SIZE`. Outputs are always at the frame's resolution.
        merge: ``"soft"`` (default) or ``"rs2s"`` (module docstring).
        backend: runs the network's graphs (encode, step, initial state); default: the network.
    """

    def __init__(self, model: S2S, size: int | None = None, merge: str = "soft",
                 device: str | torch.device = "cpu", backend: S2SBackend | None = None) -> None:
        if merge not in MERGES:
            raise InputError(f"unknown merge {merge!r}; known: {', '.join(MERGES)}")
        self.model = model.eval()
        self.graphs = backend or self.model
        self.merge = merge
        super().__init__(size, min_size=S2S.stride, device=device)

    def reset(self) -> None:
        """Forget the video (states, objects, sizes)."""
        self.state: S2SState | None = None
        #: internal object ids (1..K) in the order of the state's batch dimension
        self.slots: list[int] = []
        super().reset()

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        return s2s_input_size(height, width, self.size or DEFAULT_S2S_SIZE, self.model.stride)

    @property
    def state_bytes(self) -> int:
        """Bytes of the recurrent state (every object): all a video carries between frames."""
        return sum(t.numel() * t.element_size() for pair in self.state or [] for t in pair)

    @torch.no_grad()
    def step(self, frame: np.ndarray, mask: np.ndarray | None = None,
             object_ids: Sequence[int] | None = None) -> torch.Tensor:
        """:meth:`VideoCore.step`: one ``S2S.step`` for every object with a state, then the
        objects of ``mask`` (new ones or corrections) start their states from this frame."""
        rgb, internal = self.accept_frame(frame, mask, object_ids)
        if self.state is None and internal is None:
            return self.background()
        height, width = self.frame_size
        img = preprocess_image(rgb, self.input_size).to(self.device)  # [1, 3, h, w]
        foreground = torch.zeros(1, len(self.object_ids), height, width)
        if self.state is not None:
            out = self.graphs.step(None, self.state, features=self.graphs.encode(img))  # one encoder pass
            self.state = out.state
            logits = F.interpolate(out.mask_logits, size=(height, width), mode="bilinear", align_corners=False)
            foreground[0, torch.tensor(self.slots) - 1] = torch.sigmoid(logits[:, 0]).cpu()
        prob = merge_objects(foreground, self.merge)  # [1, 1 + K, H, W]
        label = prob.argmax(dim=1, keepdim=True)  # ties: the first channel (background first)
        if internal is not None:
            given = torch.from_numpy(internal)[None, None]  # [1, 1, H, W] internal ids
            self._start_objects(img, given.to(self.device))
            prob, label = overwrite_with_given(prob, label, given)
        self._label = label
        return prob[0]

    def _start_objects(self, img: torch.Tensor, given: torch.Tensor) -> None:
        """(Re)initialise the states of the objects in ``given`` [1, 1, H, W] from this frame."""
        ids = [int(k) for k in torch.unique(given) if k > 0]
        small = resize_label(given, self.input_size)  # [1, 1, h, w] float, nearest
        masks = (small == torch.tensor(ids, dtype=small.dtype).view(-1, 1, 1, 1)).to(img.dtype)  # [n, 1, h, w]
        init = self.graphs.initial_state(img.expand(len(ids), -1, -1, -1), masks)
        if self.state is None:
            self.state, self.slots = init, ids
            return
        old = [i for i, k in enumerate(ids) if k in self.slots]
        new = [i for i, k in enumerate(ids) if k not in self.slots]
        where = torch.tensor([self.slots.index(ids[i]) for i in old], dtype=torch.long)
        state = []
        for pair, fresh in zip(self.state, init, strict=True):
            merged = []
            for current, start in zip(pair, fresh, strict=True):
                if old:
                    current = current.index_copy(0, where, start[old])
                merged.append(torch.cat([current, start[new]]) if new else current)
            state.append((merged[0], merged[1]))
        self.state = state
        self.slots = self.slots + [ids[i] for i in new]
