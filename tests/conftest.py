"""Shared test helpers: where the read-only shared data lives (never copied into the repository)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_ROOT = Path(os.environ.get("VOSUITE_DATA", REPO_ROOT.parent / "shared"))


def shared_data_root() -> Path | None:
    """The shared data folder, ``$VOSUITE_DATA`` or ``<repo>/../shared``; None when it does not exist."""
    return SHARED_ROOT if SHARED_ROOT.is_dir() else None


def requires_shared(relative: str, what: str) -> pytest.MarkDecorator:
    """Skip marker for tests that need ``<shared>/<relative>``, with the reason spelled out."""
    path = SHARED_ROOT / relative
    return pytest.mark.skipif(not path.exists(),
                              reason=f"{what} not found at {path} (set VOSUITE_DATA to the shared data folder)")


def shared_path(recorded: str | Path) -> Path:
    """A path that a fixture file records from the shared folder (``shared/...``) resolved here."""
    recorded = Path(recorded)
    return SHARED_ROOT.joinpath(*recorded.parts[1:]) if recorded.parts[0] == "shared" else SHARED_ROOT / recorded


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's cache folder (``VOSUITE_CACHE_DIR``): tests never write to the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("cache")
        patch.setenv("VOSUITE_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture
def shared_root() -> Path:
    """The shared data folder; skips the test when it is absent."""
    root = shared_data_root()
    if root is None:
        pytest.skip("VOSUITE_DATA (or ../shared beside the repository) not found")
    return root


# -- a two-box clip for the segment / infer CLI tests --------------------------------------------


def box_frame(t: int, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Frame ``t`` (RGB uint8) of a clip with a red box moving down and a green box moving right."""
    img = np.full((height, width, 3), 40, np.uint8)
    img[10 + t:30 + t, 20:40] = (200, 60, 60)
    img[40:60, 50 + t:80 + t] = (60, 200, 60)
    return np.clip(img + rng.integers(0, 20, img.shape), 0, 255).astype(np.uint8)


def box_mask(height: int, width: int) -> np.ndarray:
    """The first frame's mask of :func:`box_frame`: the red box as object 1."""
    mask = np.zeros((height, width), np.uint8)
    mask[10:30, 20:40] = 1
    return mask


def write_box_clip(root: Path, frames: int, height: int, width: int) -> dict[str, Path]:
    """``root/frames/00000.jpg ...`` of :func:`box_frame`, ``root/first.png`` (:func:`box_mask`) and
    ``root/later/00003.png`` starting the green box as object 2; returns those paths."""
    from PIL import Image

    from vosuite.io.masks import write_mask

    folder = root / "frames"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for t in range(frames):
        Image.fromarray(box_frame(t, rng, height, width)).save(folder / f"{t:05d}.jpg", quality=95)
    write_mask(root / "first.png", box_mask(height, width))
    new = np.zeros((height, width), np.uint8)
    new[40:60, 53:83] = 2
    write_mask(root / "later" / "00003.png", new)
    return {"root": root, "frames": folder, "first": root / "first.png", "later": root / "later"}


def one_line_error(capsys: pytest.CaptureFixture) -> str:
    """The CLI's stderr, checked to be one ``vosuite: error:`` line."""
    err = capsys.readouterr().err.strip()
    assert err.startswith("vosuite: error: ") and "\n" not in err, err
    return err


# -- tiny DAVIS-2017-style trees for the evaluator tests ------------------------------------------

H, W = 24, 32


def box(labels: np.ndarray, object_id: int, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    labels = labels.copy()
    labels[rows[0] : rows[1], cols[0] : cols[1]] = object_id
    return labels


def blank() -> np.ndarray:
    return np.zeros((H, W), np.uint8)


def write_tree(root: Path, videos: dict[str, list[np.ndarray]]) -> None:
    """A DAVIS-2017 tree: JPEGImages/480p, Annotations/480p (palette PNGs), ImageSets/2017/val.txt."""
    from vosuite.io.masks import write_mask

    for name, masks in videos.items():
        frames = root / "JPEGImages" / "480p" / name
        annotations = root / "Annotations" / "480p" / name
        frames.mkdir(parents=True)
        annotations.mkdir(parents=True)
        for index, mask in enumerate(masks):
            Image.fromarray(np.zeros((*mask.shape, 3), np.uint8)).save(frames / f"{index:05d}.jpg")
            write_mask(annotations / f"{index:05d}.png", mask)
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("".join(f"{name}\n" for name in videos))


def write_predictions(root: Path, video: str, masks: list[np.ndarray], skip: tuple[int, ...] = ()) -> None:
    from vosuite.io.masks import write_mask

    folder = root / video
    folder.mkdir(parents=True, exist_ok=True)
    for index, mask in enumerate(masks):
        if index not in skip:
            write_mask(folder / f"{index:05d}.png", mask)


def evaluate(tmp_path: Path, truth: dict[str, list[np.ndarray]], predicted: dict[str, list[np.ndarray]],
             **config: object):
    """Write ``truth`` and ``predicted`` as DAVIS-2017 trees under ``tmp_path`` and evaluate them."""
    from vosuite.datasets import open_dataset
    from vosuite.metrics.evaluator import EvaluationConfig, Evaluator

    write_tree(tmp_path / "gt", truth)
    for video, masks in predicted.items():
        write_predictions(tmp_path / "pred", video, masks)
    videos = list(open_dataset("davis2017", tmp_path / "gt", split="val"))
    return Evaluator(EvaluationConfig(**config)).evaluate(videos, tmp_path / "pred")


