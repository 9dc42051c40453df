"""``propagate-features``: label propagation with frozen features (DINO Sec. 4.2 / Appendix; CRW).
The core equals a float64 reference written from the protocol's definition; its context never
holds more than the first + 7 previous frames; it follows the synthetic clip's objects; segment
runs it with the shipped student's encoder or a --checkpoint, and refuses a bad one in one line."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import vosuite
from conftest import one_line_error, write_box_clip
from vosuite.checkpoints.dino import save_vit
from vosuite.cli import main
from vosuite.datasets.synthetic import SyntheticClipConfig, render_clip, write_clip
from vosuite.factory import feature_backbone, save_model
from vosuite.inference.feature_propagation import FeaturePropagationCore, PropagationSettings
from vosuite.io.masks import read_mask
from vosuite.metrics.region import region_similarity
from vosuite.models.baseline import BASELINES, TrainingFreeTracker
from vosuite.models.feature_backbone import FeatureBackbone
from vosuite.nn.mobilenetv2 import MobileNetV2
from vosuite.nn.vit import VIT_VARIANTS, VisionTransformer
from vosuite.segment import Segmenter

#: Largest |core - reference| of a soft label over the two cases below with seeds 0, 1, 2: 1.0e-6
#: (float32 against float64); no label differed.
SOFT_TOLERANCE = 1e-5
#: Mean J of the synthetic clip's objects (120 x 160, at the protocol's 240 px): 0.827 and 0.920
#: with the shipped student's encoder; a random label per pixel: 0.044 for the smaller one.
J_FLOOR = 0.75


# -- the reference, written from the protocol's definition (float64, one cell at a time) ----------------

def centre_one_hot(mask: np.ndarray, objects: int, rows: int, cols: int) -> np.ndarray:
    """[H, W] ids -> [1 + objects, rows, cols]: the one-hot of the pixel at each cell's centre."""
    height, width = mask.shape
    y = np.floor((np.arange(rows) + 0.5) * height / rows).astype(int)
    x = np.floor((np.arange(cols) + 0.5) * width / cols).astype(int)
    return np.stack([mask[np.ix_(y, x)] == k for k in range(objects + 1)]) * 1.0


def bilinear(soft: np.ndarray, height: int, width: int) -> np.ndarray:
    """[K, h, w] -> [K, H, W], half-pixel centres, edges clamped."""
    def taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.maximum((np.arange(size_out) + 0.5) * size_in / size_out - 0.5, 0.0)
        low = np.floor(src).astype(int)
        return low, np.minimum(low + 1, size_in - 1), src - low

    y0, y1, ly = taps(soft.shape[1], height)
    x0, x1, lx = taps(soft.shape[2], width)
    rows = soft[:, y0] * (1 - ly)[None, :, None] + soft[:, y1] * ly[None, :, None]
    return rows[:, :, x0] * (1 - lx) + rows[:, :, x1] * lx


def reference_cell(query: np.ndarray, context: list[tuple[np.ndarray, np.ndarray]], i: int, j: int,
                   settings: PropagationSettings) -> np.ndarray:
    """One cell's labels: softmax(sim / T) over its top-k neighbours in the window of every context frame."""
    r = settings.radius
    sims, labels = [], []
    for features, soft in context:
        window = features[:, max(0, i - r):i + r + 1, max(0, j - r):j + r + 1]  # [C, a, b]
        sims.append(np.einsum("c,cab->ab", query, window).ravel())
        labels.append(soft[:, max(0, i - r):i + r + 1, max(0, j - r):j + r + 1].reshape(soft.shape[0], -1).T)
    sims, labels = np.concatenate(sims), np.concatenate(labels)
    top = np.argsort(-sims, kind="stable")[:settings.topk]
    weight = np.exp(sims[top] / settings.temperature)
    return (weight / weight.sum()) @ labels[top]


def reference_stream(features: np.ndarray, masks: dict[int, np.ndarray], objects: int,
                     settings: PropagationSettings) -> list[tuple[np.ndarray, np.ndarray]]:
    """(soft labels [1 + objects, h, w], label map [H, W]) of every frame; ``masks[0]`` starts it."""
    features = features / np.linalg.norm(features, axis=1, keepdims=True)  # [N, C, h, w]
    _, _, rows, cols = features.shape
    height, width = masks[0].shape
    history, out, first = [], [], 0  # first: the context's first frame, the last one with a mask
    for t, query in enumerate(features):
        given = masks.get(t)
        one_hot = None if given is None else centre_one_hot(given, objects, rows, cols)
        if t == 0:
            soft, labels = one_hot, given
        else:
            context = [history[first], *history[max(first + 1, t - settings.previous):t]]
            soft = np.stack([[reference_cell(query[:, i, j], context, i, j, settings) for j in range(cols)]
                             for i in range(rows)]).transpose(2, 0, 1)
            if one_hot is not None:
                soft = (1 - one_hot[1:].sum(0)) * soft + np.concatenate([np.zeros_like(one_hot[:1]), one_hot[1:]])
            up = bilinear(soft, height, width)
            labels = up.argmax(0)
            if given is not None:
                labels, first = np.where(given > 0, given, labels), t
        history.append((query, soft))
        out.append((soft, labels))
    return out


class ScriptedEncoder(nn.Module):
    """A stand-in encoder: call t returns feature map t (at stride 8) whatever the image."""

    def __init__(self, features: torch.Tensor) -> None:
        super().__init__()
        self.features, self.calls = features, 0

    def forward(self, img: torch.Tensor) -> list[torch.Tensor | None]:
        assert tuple(img.shape[-2:]) == tuple(8 * n for n in self.features.shape[-2:])
        self.calls += 1
        return [None, self.features[self.calls - 1][None]]


def blocky_mask(rng: np.random.Generator, rows: int, cols: int, ids: tuple[int, ...], scale: int) -> np.ndarray:
    """Random ids on a coarse grid, nearest-upsampled by ``scale`` and offset by a few pixels."""
    coarse = rng.choice(np.array((0, *ids), np.uint8), size=(rows, cols))
    return np.roll(np.kron(coarse, np.ones((scale, scale), np.uint8)), 3, axis=(0, 1))


@pytest.mark.parametrize("frames, grid, settings", [
    (20, (6, 8), PropagationSettings(radius=2, short_side=48)),  # the window and the queue both bite
    (10, (30, 32), PropagationSettings()),  # the protocol itself: 240 px, radius 12, top-5, 0.07, 1 + 7
])
def test_core_equals_the_reference(frames: int, grid: tuple[int, int], settings: PropagationSettings) -> None:
    assert PropagationSettings() == PropagationSettings(topk=5, temperature=0.07, radius=12, previous=7,
                                                        short_side=240)
    rng = np.random.default_rng(0)
    rows, cols = grid
    features = rng.normal(size=(frames, 16, rows, cols))
    first = blocky_mask(rng, rows // 2, cols // 2, (1, 2), 16)
    later = np.zeros_like(first)
    later[8:24, 16:40] = 3  # a third object joins at frame 12 and the context restarts there (20 frames)
    masks = {0: first, 12: later}
    want = reference_stream(features, masks, objects=3 if frames > 12 else 2, settings=settings)

    tracker = TrainingFreeTracker(BASELINES["propagate-features"],
                                  FeatureBackbone(ScriptedEncoder(torch.from_numpy(features).float())))
    core = FeaturePropagationCore(tracker, settings=settings)
    worst = 0.0
    for t, (soft, labels) in enumerate(want):
        core.step(np.zeros((8 * rows, 8 * cols, 3), np.uint8), masks.get(t))
        objects = core.soft.shape[0]
        worst = max(worst, float(np.abs(core.soft.double().numpy() - soft[:objects]).max()))
        up = np.sort(bilinear(soft, 8 * rows, 8 * cols), axis=0)
        clear = up[-1] - up[-2] > 1e-4  # pixels whose argmax no rounding can flip
        assert np.array_equal(core.labels[clear], labels[clear]), t
    assert worst < SOFT_TOLERANCE


# -- one run over the synthetic clip: bounded context, objects followed ------------------------------------

@pytest.fixture(scope="module")
def synthetic_run() -> dict:
    frames, truth = render_clip(SyntheticClipConfig(num_frames=30, height=120, width=160))
    core = Segmenter(model="propagate-features", progress=False).core()
    sizes, predictions = [], []
    for t, rgb in enumerate(frames):
        core.step(rgb, truth[0] if t == 0 else None)
        sizes.append((len(core.context), len(core.previous), sum(c.features.numel() + c.labels.numel()
                                                                for c in core.context)))
        predictions.append(core.labels)
    return {"truth": truth, "predictions": predictions, "sizes": sizes, "core": core}


def test_context_holds_at_most_the_first_and_seven_previous_frames(synthetic_run: dict) -> None:
    sizes, core = synthetic_run["sizes"], synthetic_run["core"]
    assert [s[0] for s in sizes] == [min(t + 1, 8) for t in range(30)]
    assert max(s[1] for s in sizes) == 7 and core.previous.maxlen == 7
    assert len({s[2] for s in sizes[8:]}) == 1  # the stored numbers stop growing after frame 8
    assert core.context[-1].labels is core.soft  # the newest context frame is the last one propagated


def test_follows_the_synthetic_objects(synthetic_run: dict) -> None:
    truth, predictions = synthetic_run["truth"], synthetic_run["predictions"]
    assert np.array_equal(predictions[0], truth[0])
    scores = [np.mean([region_similarity(p == k, g == k) for p, g in zip(predictions[1:], truth[1:], strict=True)])
              for k in (1, 2)]
    rng = np.random.default_rng(0)
    chance = np.mean([region_similarity(rng.integers(0, 3, g.shape) == 1, g == 1) for g in truth[1:]])
    assert min(scores) > J_FLOOR > chance, (scores, chance)


# -- the CLI and the backbones --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_box_clip(tmp_path_factory.mktemp("propagate-features"), 6, 72, 96)


def segment(clip: dict[str, Path], out: Path, *extra: str) -> int:
    return main(["segment", str(clip["frames"]), "--mask", str(clip["first"]), "--masks-dir", str(clip["later"]),
                 "--model", "propagate-features", "--out", str(out), "--no-progress", "--threads", "1", *extra])


def test_segment_with_the_student_encoder_and_later_objects(clip: dict[str, Path], tmp_path: Path) -> None:
    assert segment(clip, tmp_path / "out") == 0
    first, later = read_mask(clip["first"]), read_mask(clip["later"] / "00003.png")
    masks = [read_mask(tmp_path / "out" / f"{t:05d}.png") for t in range(6)]
    assert np.array_equal(masks[0], first)
    assert np.array_equal(masks[3][later > 0], later[later > 0])
    assert all((m == 2).sum() > 0.8 * (later == 2).sum() for m in masks[3:])  # object 2 followed after frame 3
    assert all((m == 1).sum() > 0.8 * (first == 1).sum() for m in masks)


def test_infer_runs_a_dataset(tmp_path: Path) -> None:
    root = write_clip(tmp_path / "clip", SyntheticClipConfig(num_frames=4, height=96, width=128))
    assert main(["infer", "--dataset", "generic", "--root", str(root), "--model", "propagate-features", "--out",
                 str(tmp_path / "pred"), "--threads", "1", "--no-progress"]) == 0
    assert sorted(p.name for p in (tmp_path / "pred" / "shapes").glob("*.png")) == [f"{t:05d}.png" for t in range(4)]


def test_segment_with_a_deaot_checkpoint(clip: dict[str, Path], tmp_path: Path) -> None:
    torch.manual_seed(0)
    deaot = vosuite.create_model("deaot-t", weights=None)
    path = save_model(deaot, tmp_path / "deaot-t.pt")
    assert segment(clip, tmp_path / "out", "--checkpoint", str(path)) == 0
    assert len(list((tmp_path / "out").glob("*.png"))) == 6
    backbone = vosuite.create_model("propagate-features", weights=path).backbone
    assert all(torch.equal(v, deaot.encoder.state_dict()[k]) for k, v in backbone.encoder.state_dict().items())


def test_backbones_of_every_accepted_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    encoder = MobileNetV2()
    torch.save({"format": "vosuite-encoder", "version": 1, "state_dict": encoder.state_dict()}, tmp_path / "in.pt")
    torch.save({"format": "vosuite-train", "model": {f"encoder.{k}": v for k, v in encoder.state_dict().items()}},
               tmp_path / "last.pt")
    vit = save_vit(VisionTransformer(VIT_VARIANTS["dino-vitt16"]), tmp_path / "vit.pt")
    img = torch.zeros(1, 3, 48, 64)
    for name in ("in.pt", "last.pt"):
        backbone = feature_backbone(tmp_path / name)
        assert backbone.stride == 8 and tuple(backbone(img).shape) == (1, 32, 6, 8)
        assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in backbone.encoder.state_dict().items())
    backbone = feature_backbone(vit)
    assert backbone.is_vit and backbone.stride == 16 and tuple(backbone(img).shape) == (1, 192, 3, 4)
    default = feature_backbone()
    assert default.source == "deaot-t-deform encoder" and tuple(default(img).shape) == (1, 32, 6, 8)
    image = torch.randn(1, 3, 48, 64)
    assert torch.equal(default(image), default.encoder(image)[1])  # the stride-8 stage, later ones not run


def test_a_bad_checkpoint_is_one_line_and_status_2(clip: dict[str, Path], tmp_path: Path, capsys) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    cases = {"junk.pt": "cannot read checkpoint", "other.pt": "not a backbone propagate-features can use",
             "missing.pt": "checkpoint not found"}
    for name, message in cases.items():
        assert segment(clip, tmp_path / "out", "--checkpoint", str(tmp_path / name)) == 2
        assert message in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_window_and_softmax_constants_are_dinos_and_crws() -> None:
    """A cell with one exact match and four at cosine 0 puts e^(1/0.07) / (e^(1/0.07) + 4) on it."""
    from vosuite.inference.feature_propagation import propagate_labels, window_mask

    settings = PropagationSettings()
    keys = torch.zeros(1, 2, 1, 30)
    keys[0, 0, 0, 0] = 1.0  # the match, at column 0
    keys[0, 1, 0, 1:] = 1.0  # orthogonal everywhere else
    labels = torch.zeros(1, 2, 1, 30)
    labels[0, 1, 0, 0] = 1.0
    query = keys[0, :, :, :1].expand(2, 1, 30).contiguous()
    soft = propagate_labels(query, keys, labels, window_mask(1, 30, settings.radius), settings)
    share = math.exp(1 / 0.07) / (math.exp(1 / 0.07) + 4)
    assert soft[1, 0, :13].tolist() == pytest.approx([share] * 13)  # column 0 within 12 cells
    assert soft[1, 0, 13:].abs().max() == 0  # out of the window
