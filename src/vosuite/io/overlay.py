"""Drawing label maps over frames, and writing the result as a video or a folder of PNGs.

Every object id gets its DAVIS-palette colour as a translucent fill plus an opaque contour along its
edge; background (0) is left untouched and void (255) is left untouched or drawn grey.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from vosuite.errors import InputError
from vosuite.io.atomic import write_bytes_atomic
from vosuite.io.frames import is_video_file
from vosuite.io.masks import VOID_ID, davis_palette
from vosuite.io.output import OutputFolder, claim_file
from vosuite.io.video_writer import VideoWriter

VOID_GREY = (128, 128, 128)


def label_colours(labels: np.ndarray) -> np.ndarray:
    """DAVIS-palette colour of every pixel's id, [H, W, 3] uint8; ids above 255 reuse colours 1..254."""
    ids = labels.astype(np.int64)
    wrapped = np.where(ids > VOID_ID, (ids - 1) % (VOID_ID - 1) + 1, ids)
    return davis_palette()[wrapped]  # [H, W] -> [H, W, 3]


def object_contours(labels: np.ndarray, width: int) -> np.ndarray:
    """Boolean [H, W]: object pixels within ``width`` pixels of a pixel with a different label.

    A morphological gradient on the label map: a pixel is on a contour when the minimum or maximum
    label in its (2*width+1)^2 neighbourhood differs from its own. The image border is not a contour.
    """
    compact = labels.astype(np.uint16 if labels.max(initial=0) > 255 else np.uint8)
    kernel = np.ones((2 * width + 1, 2 * width + 1), dtype=np.uint8)
    lowest = cv2.erode(compact, kernel, borderType=cv2.BORDER_REPLICATE)
    highest = cv2.dilate(compact, kernel, borderType=cv2.BORDER_REPLICATE)
    is_object = (compact != 0) & (compact != VOID_ID)
    return is_object & ((lowest != compact) | (highest != compact))


def overlay_masks(
    rgb: np.ndarray,
    labels: np.ndarray,
    alpha: float = 0.5,
    contour: bool = True,
    contour_width: int = 2,
    draw_void: bool = False,
) -> np.ndarray:
    """Draw the objects of ``labels`` over ``rgb``.

    Args:
        rgb: [H, W, 3] uint8 RGB frame (not modified).
        labels: [H, W] integer id map: 0 background, 255 void, other values object ids.
        alpha: weight of an object's colour in its fill (0 = invisible, 1 = opaque).
        contour: also draw each object's edge in its full colour.
        contour_width: contour thickness in pixels (inside the object).
        draw_void: blend void pixels with grey instead of leaving them untouched.

    Returns:
        a new [H, W, 3] uint8 RGB image.
    """
    _check_overlay_inputs(rgb, labels, alpha)
    colours = label_colours(labels)  # [H, W, 3] uint8
    is_object = (labels != 0) & (labels != VOID_ID)
    painted = is_object | (labels == VOID_ID) if draw_void else is_object
    colours[labels == VOID_ID] = VOID_GREY
    blended = rgb.astype(np.float32)
    blended[painted] = (1.0 - alpha) * blended[painted] + alpha * colours[painted]
    result = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    if contour and contour_width > 0:
        edge = object_contours(labels, contour_width)
        result[edge] = colours[edge]
    return result


def _check_overlay_inputs(rgb: np.ndarray, labels: np.ndarray, alpha: float) -> None:
    """ValueError unless rgb is [H, W, 3] uint8, labels is an integer [H, W] map, 0 <= alpha <= 1."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be [H, W, 3] uint8, got {rgb.shape} {rgb.dtype}")
    if labels.shape != rgb.shape[:2]:
        raise ValueError(f"labels shape {labels.shape} does not match the frame's {rgb.shape[:2]}")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise ValueError(f"labels must be integer ids, got {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError("labels must be non-negative")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG file bytes of an [H, W, 3] uint8 RGB image."""
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise RuntimeError("OpenCV could not encode a PNG image")
    return buffer.tobytes()


class OverlayWriter:
    """Context manager writing overlays either as a video or as numbered PNG files in a folder.

    ``out`` ending in .mp4 / .mov / .mkv / .avi becomes one video (through :class:`VideoWriter`,
    atomic as a whole); any other path is a folder that receives ``<name>.png`` per frame, each
    file written atomically at ``place(file_name)`` (default: ``out / file_name``; an
    :class:`~vosuite.io.output.OutputFolder`'s ``file`` registers each one). Claiming ``out``
    first is the caller's job: :func:`claimed_overlay` does it.
    """

    def __init__(
        self,
        out: str | os.PathLike,
        fps: float = 24.0,
        alpha: float = 0.5,
        contour: bool = True,
        draw_void: bool = False,
        place: Callable[[str], Path] | None = None,
    ) -> None:
        self.out = Path(out)
        self.place = place or (lambda file_name: self.out / file_name)
        self.alpha = alpha
        self.contour = contour
        self.draw_void = draw_void
        self.frames_written = 0
        self._video: VideoWriter | None = VideoWriter(self.out, fps=fps) if is_video_file(self.out) else None
        if self._video is None and self.out.exists() and not self.out.is_dir():
            raise InputError(f"{self.out}: overlay output exists and is not a folder")

    def __enter__(self) -> OverlayWriter:
        if self._video is not None:
            self._video.__enter__()
        else:
            self.out.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._video is not None:
            self._video.__exit__(exc_type, exc, traceback)

    def write(self, rgb: np.ndarray, labels: np.ndarray, name: str | None = None) -> None:
        """Draw ``labels`` [H, W] over ``rgb`` [H, W, 3] and write it; ``name`` names the PNG file
        (default: the running frame number, ``00000``)."""
        image = overlay_masks(rgb, labels, alpha=self.alpha, contour=self.contour, draw_void=self.draw_void)
        if self._video is not None:
            self._video.write(image)
        else:
            file_name = f"{name if name is not None else f'{self.frames_written:05d}'}.png"
            write_bytes_atomic(self.place(file_name), encode_png(image))
        self.frames_written += 1


@contextlib.contextmanager
def claimed_overlay(path: str | os.PathLike | None, fps: float | None, results: OutputFolder, overwrite: bool,
                    inputs: Iterable[str | os.PathLike | None]) -> Iterator[OverlayWriter | None]:
    """An :class:`OverlayWriter` for ``--overlay PATH`` under the output rule (:mod:`vosuite.io.output`).

    Inside the run's output folder ``results`` its files are registered there; elsewhere a video
    file is claimed (replaced only with ``overwrite``) and a PNG folder becomes an output folder
    of its own. Never the output folder itself, never inside an input. None when ``path`` is None.
    """
    if path is None:
        yield None
        return
    path, rate = Path(path), fps or 24.0
    if results.contains(path) and path.resolve() == results.path.resolve():
        raise InputError(f"--overlay {path}: is the masks' output folder; choose another path")
    if is_video_file(path):
        if results.contains(path):
            target = results.file(path.resolve().relative_to(results.path.resolve()))
        else:
            target = claim_file(path, overwrite=overwrite, inputs=inputs, option="--overlay")
        with OverlayWriter(target, fps=rate) as writer:
            yield writer
    elif results.contains(path):
        relative = path.resolve().relative_to(results.path.resolve())
        with OverlayWriter(path, fps=rate, place=lambda name: results.file(relative / name)) as writer:
            yield writer
    else:
        with OutputFolder(path, overwrite, inputs, option="--overlay") as folder, \
                OverlayWriter(path, fps=rate, place=folder.file) as writer:
            yield writer
