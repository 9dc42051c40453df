"""One browser session of ``vosuite app``: its work folder, the video's frames, the user's masks and
the propagated ones.

Layout of a session folder (created by vosuite, removed with the session)::

    <work>/<session id>/
        frames/00000.jpg ...       the video's frames, extracted once (streamed from disk afterwards)
        annotations/00000.png ...  masks the user drew or imported (palette PNGs, object ids)
        masks/00000.png ...        masks vosuite propagated (palette PNGs)
        upload-*/                  an uploaded file (one folder per request) while it is read
        exports/                   masks.zip and overlay.mp4 for download

Nothing is held in memory per frame: the browser asks for one frame and one mask at a time.
"""

from __future__ import annotations

import shutil
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vosuite.errors import InputError
from vosuite.io.atomic import atomic_path
from vosuite.io.frames import open_frames, read_image_rgb
from vosuite.io.masks import encode_mask_png, read_mask, write_mask

FRAME_QUALITY = 95  # JPEG quality of the extracted frames


@dataclass
class VideoInfo:
    """What the page needs to know of the open video."""

    name: str
    num_frames: int
    height: int
    width: int
    fps: float


class SessionClosed(InputError):
    """A job wrote to a session that has ended (its folder is gone)."""


@dataclass
class AppSession:
    """A session's files. ``lock`` guards the folders against a job writing while a request reads;
    ``start_lock`` makes checking for a running job and starting the next one (or opening another
    video) one step; once ``closed``, nothing more is written."""

    folder: Path
    id: str = ""
    video: VideoInfo | None = None
    last_seen: float = field(default_factory=time.monotonic)
    lock: threading.RLock = field(default_factory=threading.RLock)
    start_lock: threading.Lock = field(default_factory=threading.Lock)
    job: object | None = None  # the running or last vosuite.app.jobs.Job
    closed: bool = False

    @property
    def frames_dir(self) -> Path:
        return self.folder / "frames"

    @property
    def annotations_dir(self) -> Path:
        return self.folder / "annotations"

    @property
    def masks_dir(self) -> Path:
        return self.folder / "masks"

    @property
    def exports_dir(self) -> Path:
        return self.folder / "exports"

    # -- the video ----------------------------------------------------------------------------
    def open_video(self, source: Path, name: str | None = None, max_frames: int = 10_000) -> VideoInfo:
        """Extract the frames of a video file or frames folder (an InputError when it is neither,
        is empty, or has more than ``max_frames`` frames); forgets the previous video's masks."""
        frames = open_frames(source)  # InputError for a non-video file
        self._clear()
        self.frames_dir.mkdir(parents=True)
        count = 0
        for frame in frames:
            if count >= max_frames:
                self._clear()
                raise InputError(f"{source.name}: more than {max_frames} frames (the app's --max-frames)")
            _write_jpeg(self.frames_dir / frame_name(count, "jpg"), frame.rgb)
            count += 1
        if count == 0:
            raise InputError(f"{source.name}: no frames")
        height, width = frames.size
        self.video = VideoInfo(name=_video_name(name or source.name), num_frames=count, height=height, width=width,
                               fps=float(frames.fps or 24.0))
        return self.video

    def _clear(self) -> None:
        for folder in (self.frames_dir, self.annotations_dir, self.masks_dir, self.exports_dir):
            shutil.rmtree(folder, ignore_errors=True)
        self.video = None

    def require_video(self) -> VideoInfo:
        if self.video is None:
            raise InputError("open a video first")
        return self.video

    def frame_index(self, index: int) -> int:
        video = self.require_video()
        if not 0 <= index < video.num_frames:
            raise InputError(f"frame {index}: the video has frames 0 to {video.num_frames - 1}")
        return index

    def frame_path(self, index: int) -> Path:
        return self.frames_dir / frame_name(self.frame_index(index), "jpg")

    def frame_rgb(self, index: int) -> np.ndarray:
        return read_image_rgb(self.frame_path(index))

    # -- masks --------------------------------------------------------------------------------
    def check_labels(self, labels: np.ndarray, what: str) -> np.ndarray:
        """An [H, W] uint8 label map of the video's size with at least one object, else an InputError."""
        video = self.require_video()
        if labels.shape != (video.height, video.width):
            raise InputError(f"{what} is {labels.shape[1]}x{labels.shape[0]}, the video's frames are "
                             f"{video.width}x{video.height}")
        if not np.any((labels > 0) & (labels < 255)):
            raise InputError(f"{what} is empty: draw at least one object")
        return labels.astype(np.uint8, copy=False)

    def set_annotation(self, index: int, labels: np.ndarray) -> None:
        labels = self.check_labels(labels, "the mask")
        with self.lock:
            write_mask(self.annotations_dir / frame_name(self.frame_index(index), "png"), labels)

    def import_annotation(self, index: int, png: Path) -> np.ndarray:
        """A mask PNG (palette, grey or RGB ids; a 0/255 mask is one object, as DAVIS-2016 stores
        them; ids up to 254) becomes frame ``index``'s annotation."""
        from vosuite.inference.prompts import read_prompt_mask

        video = self.require_video()
        labels = read_prompt_mask(png, (video.height, video.width))
        self.set_annotation(index, labels)
        return labels

    def clear_annotation(self, index: int) -> None:
        with self.lock:
            (self.annotations_dir / frame_name(self.frame_index(index), "png")).unlink(missing_ok=True)

    def annotated_frames(self) -> list[int]:
        return sorted(int(p.stem) for p in self.annotations_dir.glob("*.png")) if self.annotations_dir.is_dir() else []

    def labels(self, index: int) -> tuple[np.ndarray, str]:
        """Frame ``index``'s mask and where it came from: the user's (``"annotation"``), vosuite's
        (``"propagated"``) or none yet (``"empty"``, zeros)."""
        name = frame_name(self.frame_index(index), "png")
        with self.lock:
            for folder, kind in ((self.annotations_dir, "annotation"), (self.masks_dir, "propagated")):
                if (folder / name).is_file():
                    return read_mask(folder / name), kind
        video = self.require_video()
        return np.zeros((video.height, video.width), np.uint8), "empty"

    def write_result(self, index: int, labels: np.ndarray) -> None:
        with self.lock:
            if self.closed:
                raise SessionClosed("the session has ended")
            write_mask(self.masks_dir / frame_name(index, "png"), labels)

    def propagated_frames(self) -> int:
        return len(list(self.masks_dir.glob("*.png"))) if self.masks_dir.is_dir() else 0

    # -- downloads ----------------------------------------------------------------------------
    def masks_zip(self) -> Path:
        """Every frame's mask (the user's where drawn, else vosuite's, else background) as palette
        PNGs in DAVIS layout, ``<video>/<frame>.png``, in one zip."""
        video = self.require_video()
        out = self.exports_dir / f"{video.name}_masks.zip"
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out, suffix=".zip") as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            for index in range(video.num_frames):
                # encoded in memory, one at a time
                archive.writestr(f"{video.name}/{frame_name(index, 'png')}", encode_mask_png(self.labels(index)[0]))
        return out

    def overlay_video(self) -> Path:
        """The frames with their masks drawn on them, as an mp4."""
        from vosuite.io.overlay import OverlayWriter

        video = self.require_video()
        out = self.exports_dir / f"{video.name}_overlay.mp4"
        out.parent.mkdir(parents=True, exist_ok=True)
        with OverlayWriter(out, fps=video.fps) as writer:  # written atomically as a whole
            for index in range(video.num_frames):
                writer.write(self.frame_rgb(index), self.labels(index)[0])
        return out

    def remove(self) -> None:
        """Delete the session folder (vosuite created all of it); later writes are refused."""
        with self.lock:
            self.closed = True
            shutil.rmtree(self.folder, ignore_errors=True)


def frame_name(index: int, extension: str) -> str:
    return f"{index:05d}.{extension}"


def _video_name(name: str) -> str:
    """A file-system-safe video name for the zip's folder (``my clip.mp4`` -> ``my_clip``)."""
    stem = Path(name).stem or "video"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:64] or "video"


def _write_jpeg(path: Path, rgb: np.ndarray) -> None:
    """A frame of the session's own copy (no fsync: nothing reads it before extraction ends)."""
    from PIL import Image

    Image.fromarray(rgb).save(path, format="JPEG", quality=FRAME_QUALITY)
