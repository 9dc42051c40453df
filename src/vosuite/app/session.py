"""One browser session of ``vosuite app``: its work folder, the video's frames, the user's masks and
the propagated ones.

Layout of a session folder (created by vosuite, removed with the session)::

    <work>/<session id>/
        video-*/                       the open video (one folder per opened video):
            frames/00000.jpg ...       its frames, extracted once (streamed from disk afterwards)
            annotations/00000.png ...  masks the user drew or imported (palette PNGs, object ids)
            masks/00000.png ...        masks vosuite propagated (palette PNGs)
            exports/                   masks.zip and overlay.mp4 for download
        upload-*/                      an uploaded file (one folder per request) while it is read

Opening a video is atomic: its frames go to a fresh ``video-*`` folder, which replaces the open
video's (and so its masks) only once extraction succeeded; a failed open leaves the session as it
was. Nothing is held in memory per frame: the browser asks for one frame and one mask at a time.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vosuite.errors import InputError
from vosuite.io.atomic import atomic_path
from vosuite.io.frames import open_frames, read_image_rgb
from vosuite.io.masks import encode_mask_png, read_mask, write_mask

FRAME_QUALITY = 95  # JPEG quality of the extracted frames
SESSION_ENDED = "this page's session has ended: reload the page"
MAX_MASK_PIXELS = 8192 * 8192  # an imported mask PNG's largest size, checked before it is decoded


@dataclass
class VideoInfo:
    """What the page needs to know of the open video."""

    name: str
    num_frames: int
    height: int
    width: int
    fps: float


class SessionClosed(InputError):
    """A write (a job's mask, a video being opened) to a session that has ended: its folder is gone."""


@dataclass
class AppSession:
    """A session's files. ``lock`` guards the folders against a job writing while a request reads;
    ``start_lock`` makes checking for a running job and starting the next one (or opening another
    video) one step; once ``closed``, nothing more is written. ``video_dir`` is the open video's
    folder (frames, annotations, masks, exports), None before the first video."""

    folder: Path
    id: str = ""
    video: VideoInfo | None = None
    video_dir: Path | None = None
    last_seen: float = field(default_factory=time.monotonic)
    lock: threading.RLock = field(default_factory=threading.RLock)
    start_lock: threading.Lock = field(default_factory=threading.Lock)
    job: object | None = None  # the running or last vosuite.app.jobs.Job
    closed: bool = False

    @property
    def frames_dir(self) -> Path:
        return self._in_video("frames")

    @property
    def annotations_dir(self) -> Path:
        return self._in_video("annotations")

    @property
    def masks_dir(self) -> Path:
        return self._in_video("masks")

    @property
    def exports_dir(self) -> Path:
        return self._in_video("exports")

    def _in_video(self, name: str) -> Path:
        if self.video_dir is None:
            raise InputError("open a video first")
        return self.video_dir / name

    # -- the video ----------------------------------------------------------------------------
    def open_video(self, source: Path, name: str | None = None, max_frames: int = 10_000,
                   make_room: Callable[[], None] = lambda: None) -> VideoInfo:
        """Open a video file or frames folder: extract its frames into a fresh ``video-*`` folder,
        then, holding ``start_lock``, call ``make_room`` (the server stops the session's job there)
        and make it the open video, removing the previous video's folder and masks. An InputError
        when the source is no video, is empty, has more than ``max_frames`` frames or cannot be
        stored, or from ``make_room``: then the new folder is gone and the open video, its
        annotations and masks are as they were."""
        video, folder = self._extract_video(source, name, max_frames)
        try:
            with self.start_lock:
                make_room()
                self._switch_video(video, folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return video

    def _extract_video(self, source: Path, name: str | None, max_frames: int) -> tuple[VideoInfo, Path]:
        """The video's frames in a fresh folder of the session (removed again on failure)."""
        failed = f"{source.name}: cannot extract its frames"
        try:
            folder = Path(tempfile.mkdtemp(prefix="video-", dir=self.folder))
        except OSError as error:
            raise self._storage_error(failed, error) from None
        try:
            return _extract(source, folder / "frames", max_frames, name), folder
        except BaseException as error:
            shutil.rmtree(folder, ignore_errors=True)
            if isinstance(error, OSError):
                raise self._storage_error(failed, error) from None
            raise

    def _switch_video(self, video: VideoInfo, folder: Path) -> None:
        with self.lock:
            if self.closed:
                raise SessionClosed(SESSION_ENDED)
            previous, self.video, self.video_dir = self.video_dir, video, folder
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)

    def scratch(self) -> Path:
        """A fresh ``upload-*`` folder for a file being received (the caller removes it)."""
        try:
            return Path(tempfile.mkdtemp(prefix="upload-", dir=self.folder))
        except OSError as error:
            raise self._storage_error("cannot store the upload", error) from None

    def _storage_error(self, failed: str, error: OSError) -> InputError:
        """An OSError in the session's folder as a one-line error, ``failed`` and the system's
        reason: no server folder named (or the session's end, when it ended meanwhile)."""
        if self.closed:
            return SessionClosed(SESSION_ENDED)
        return InputError(f"{failed} ({error.strerror or type(error).__name__})")

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
        _check_pixels(png)
        labels = read_prompt_mask(png, (video.height, video.width))
        self.set_annotation(index, labels)
        return labels

    def clear_annotation(self, index: int) -> None:
        with self.lock:
            (self.annotations_dir / frame_name(self.frame_index(index), "png")).unlink(missing_ok=True)

    def annotated_frames(self) -> list[int]:
        if self.video_dir is None or not self.annotations_dir.is_dir():
            return []
        return sorted(int(p.stem) for p in self.annotations_dir.glob("*.png"))

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
        if self.video_dir is None or not self.masks_dir.is_dir():
            return 0
        return len(list(self.masks_dir.glob("*.png")))

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


def _extract(source: Path, frames_dir: Path, max_frames: int, name: str | None) -> VideoInfo:
    """Write the frames of ``source`` as JPEGs into ``frames_dir`` (created here)."""
    frames = open_frames(source)  # InputError for a non-video file
    frames_dir.mkdir()
    count = 0
    for frame in frames:
        if count >= max_frames:
            raise InputError(f"{source.name}: more than {max_frames} frames (the app's --max-frames)")
        _write_jpeg(frames_dir / frame_name(count, "jpg"), frame.rgb)
        count += 1
    if count == 0:
        raise InputError(f"{source.name}: no frames")
    height, width = frames.size
    return VideoInfo(name=_video_name(name or source.name), num_frames=count, height=height, width=width,
                     fps=float(frames.fps or 24.0))


def _check_pixels(png: Path) -> None:
    """Refuse an image whose header states more than MAX_MASK_PIXELS pixels before decoding it (a
    small PNG can hold a huge plain image); a file that is no image is left to the mask reader."""
    from PIL import Image, UnidentifiedImageError

    too_large = InputError(f"{png}: the mask is larger than {MAX_MASK_PIXELS // 2**20} megapixels")
    try:
        with Image.open(png) as image:
            width, height = image.size
    except Image.DecompressionBombError:
        raise too_large from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return
    if width * height > MAX_MASK_PIXELS:
        raise too_large


def _video_name(name: str) -> str:
    """A file-system-safe video name for the zip's folder (``my clip.mp4`` -> ``my_clip``)."""
    stem = Path(name).stem or "video"
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:64] or "video"


def _write_jpeg(path: Path, rgb: np.ndarray) -> None:
    """A frame of the session's own copy (no fsync: nothing reads it before extraction ends)."""
    from PIL import Image

    Image.fromarray(rgb).save(path, format="JPEG", quality=FRAME_QUALITY)
