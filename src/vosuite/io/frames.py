"""Reading a video as a stream of RGB frames, from a folder of images or from a video file.

Frames are decoded one at a time, so memory stays bounded by one frame whatever the video's length:

    source = open_frames("chair.mp4", short_side=480)
    for frame in source:          # Frame(index, name, rgb [H, W, 3] uint8)
        ...

A folder's images are ordered by natural sort (``frame2`` before ``frame10``). Image files are
decoded with Pillow without applying EXIF orientation, the same way masks are read, so a frame and
its mask stay aligned. Video files are decoded with PyAV (FFmpeg).
"""

from __future__ import annotations

import numbers
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from vosuite.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")  # frame images, lower case
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".webm", ".mkv"})

_DIGIT_RUNS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes:
        index: position in the video, from 0.
        name: the image file's stem, or ``f"{index:05d}"`` for frames of a video file.
        rgb: the pixels, [H, W, 3] uint8 RGB (after the optional short-side resize).
    """

    index: int
    name: str
    rgb: np.ndarray


def is_video_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a video container by its suffix (.mp4, .mov, .avi, .webm, .mkv)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a frame image by its suffix (one of :data:`IMAGE_SUFFIXES`, any case)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def natural_sort_key(name: str) -> tuple[tuple[str | int, ...], str]:
    """Sort key that orders digit runs by value: ``frame2`` < ``frame10`` < ``Frame11``.

    Text runs compare case-insensitively; a name that is a prefix of another sorts first
    (``frame`` < ``frame1``), and the exact name breaks remaining ties (``a01`` < ``a1``).
    """
    parts = _DIGIT_RUNS.split(name)  # text, digits, text, digits, ..., text: same kinds at same places
    key = tuple(int(part) if position % 2 else part.casefold() for position, part in enumerate(parts))
    return key, name


def natural_sorted(names: Iterable[str]) -> list[str]:
    """``names`` in natural order (see :func:`natural_sort_key`)."""
    return sorted(names, key=natural_sort_key)


def resized_size(height: int, width: int, short_side: int | None) -> tuple[int, int]:
    """(H, W) after scaling so the shorter side equals ``short_side``, aspect ratio kept, rounded."""
    if short_side is None:
        return height, width
    scale = short_side / min(height, width)
    if height <= width:
        return short_side, max(1, int(width * scale + 0.5))
    return max(1, int(height * scale + 0.5)), short_side


def resize_short_side(rgb: np.ndarray, short_side: int | None) -> np.ndarray:
    """Resize [H, W, 3] so the short side equals ``short_side`` (INTER_AREA to shrink, LINEAR to enlarge)."""
    height, width = rgb.shape[:2]
    new_height, new_width = resized_size(height, width, short_side)
    if (new_height, new_width) == (height, width):
        return rgb
    shrinking = new_height * new_width < height * width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(rgb, (new_width, new_height), interpolation=interpolation)  # [H', W', 3]


class FrameSource(ABC):
    """A re-iterable stream of :class:`Frame`; each iteration decodes the video again from the start."""

    def __init__(self, path: Path, short_side: int | None) -> None:
        self.path = path
        self.short_side = short_side

    @property
    @abstractmethod
    def size(self) -> tuple[int, int]:
        """(H, W) of the original frames, before any resize."""

    @property
    @abstractmethod
    def num_frames(self) -> int | None:
        """Number of frames, or None when the container does not state it."""

    @property
    def fps(self) -> float | None:
        """Frames per second, or None when unknown (always None for an image folder)."""
        return None

    @property
    def names(self) -> list[str] | None:
        """Every frame's name in order, when known without decoding (image folders)."""
        return None

    @property
    def output_size(self) -> tuple[int, int]:
        """(H, W) of the frames this source yields, after the optional short-side resize."""
        return resized_size(*self.size, self.short_side)

    @abstractmethod
    def _decode(self) -> Iterator[tuple[int, str, np.ndarray]]:
        """Yield (index, name, rgb [H, W, 3] uint8) at the original size."""

    def __iter__(self) -> Iterator[Frame]:
        for index, name, rgb in self._decode():
            yield Frame(index=index, name=name, rgb=resize_short_side(rgb, self.short_side))

    def __len__(self) -> int:
        if self.num_frames is None:
            raise TypeError(f"{self.path}: the number of frames is not known before decoding")
        return self.num_frames

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.path)!r}, frames={self.num_frames}, "
            f"size={self.size}, fps={self.fps}, short_side={self.short_side})"
        )


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    """A decoded Pillow image as [H, W, 3] uint8 RGB (16-bit grey is reduced to its top 8 bits)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        grey = (np.clip(np.asarray(image, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)  # [H, W]
        return np.repeat(grey[:, :, None], 3, axis=2)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def read_image_rgb(path: Path) -> np.ndarray:
    """Decode one image file as [H, W, 3] uint8 RGB; an unreadable file raises InputError naming it."""
    try:
        with Image.open(path) as image:
            image.load()
            return _pil_to_rgb(image)
    except FileNotFoundError:
        raise InputError(f"{path}: frame image not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InputError(f"{path}: cannot decode frame image ({_one_line(error)})") from None


def _read_image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image from its header, without decoding the pixels."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InputError(f"{path}: cannot decode frame image ({_one_line(error)})") from None
    return height, width


def _one_line(error: BaseException) -> str:
    """An exception's message squeezed onto one line."""
    return " ".join(str(error).split()) or type(error).__name__


class ImageFolderSource(FrameSource):
    """Frames from the image files (:data:`IMAGE_SUFFIXES`) of one folder, in natural order of their names."""

    def __init__(self, folder: Path, short_side: int | None) -> None:
        super().__init__(folder, short_side)
        self.paths = _list_frame_images(folder)
        self._size = _read_image_size(self.paths[0])

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def num_frames(self) -> int:
        return len(self.paths)

    @property
    def names(self) -> list[str]:
        return [path.stem for path in self.paths]

    def _decode(self) -> Iterator[tuple[int, str, np.ndarray]]:
        for index, path in enumerate(self.paths):
            rgb = read_image_rgb(path)
            if rgb.shape[:2] != self._size:
                raise InputError(
                    f"{path}: frame size {rgb.shape[1]}x{rgb.shape[0]} differs from the "
                    f"first frame's {self._size[1]}x{self._size[0]}"
                )
            yield index, path.stem, rgb


def _list_frame_images(folder: Path) -> list[Path]:
    """The folder's image files (hidden files skipped) in natural order; InputError if none or stems clash."""
    paths = [
        path
        for path in folder.iterdir()
        if is_image_file(path) and not path.name.startswith(".") and path.is_file()
    ]
    if not paths:
        raise InputError(f"{folder}: no frame images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    paths.sort(key=lambda path: natural_sort_key(path.name))
    seen: dict[str, Path] = {}
    for path in paths:
        if path.stem in seen:
            raise InputError(
                f"{folder}: two frames share the name {path.stem!r} ({seen[path.stem].name}, {path.name})"
            )
        seen[path.stem] = path
    return paths


class VideoFileSource(FrameSource):
    """Frames of the first video stream of a container, decoded one by one with PyAV."""

    def __init__(self, video: Path, short_side: int | None) -> None:
        super().__init__(video, short_side)
        with self._open() as container:
            stream = self._video_stream(container)
            self._size = (stream.codec_context.height, stream.codec_context.width)
            self._num_frames = stream.frames if stream.frames and stream.frames > 0 else None
            rate = stream.average_rate or stream.guessed_rate
            self._fps = float(rate) if rate else None
        if min(self._size) <= 0:
            raise InputError(f"{video}: the video stream states no frame size")

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def num_frames(self) -> int | None:
        return self._num_frames

    @property
    def fps(self) -> float | None:
        return self._fps

    def count_frames(self) -> int:
        """Number of frames: the count the container states, else the non-empty packets of the
        first video stream, counted by demuxing (no decoding)."""
        if self._num_frames is not None:
            return self._num_frames
        with self._open() as container:
            stream = self._video_stream(container)
            try:
                return sum(1 for packet in container.demux(stream) if packet.size > 0)
            except av.FFmpegError as error:
                raise InputError(f"{self.path}: cannot read video ({_one_line(error)})") from None

    def _open(self) -> av.container.InputContainer:
        try:
            return av.open(str(self.path), mode="r")
        except av.FFmpegError as error:
            raise InputError(f"{self.path}: cannot open video ({_one_line(error)})") from None

    def _video_stream(self, container: av.container.InputContainer) -> av.VideoStream:
        if not container.streams.video:
            raise InputError(f"{self.path}: the file has no video stream")
        return container.streams.video[0]

    def _decode(self) -> Iterator[tuple[int, str, np.ndarray]]:
        container = self._open()
        index = 0
        try:
            stream = self._video_stream(container)
            stream.thread_type = "AUTO"  # frame + slice threads; frames still come out in order
            try:
                for video_frame in container.decode(stream):
                    yield index, f"{index:05d}", video_frame.to_ndarray(format="rgb24")  # [H, W, 3]
                    index += 1
            except av.FFmpegError as error:
                raise InputError(
                    f"{self.path}: cannot decode video frame {index} ({_one_line(error)})"
                ) from None
        finally:
            container.close()


def open_frames(source: str | os.PathLike, short_side: int | None = None) -> FrameSource:
    """Open a folder of frame images or a video file as a stream of RGB frames.

    Args:
        source: a folder of images (.jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp), or a video file
            (.mp4, .mov, .avi, .webm, .mkv).
        short_side: if given, every frame is resized so its shorter side has this many pixels.

    Raises:
        InputError: the path is missing, of an unsupported kind, empty, or cannot be decoded.
    """
    path = Path(source)
    if short_side is not None:
        if isinstance(short_side, bool) or not isinstance(short_side, numbers.Integral) or short_side < 1:
            raise InputError(f"short_side must be a positive integer, got {short_side!r}")
        short_side = int(short_side)
    if not path.exists():
        raise InputError(f"{path}: no such video file or frame folder")
    if path.is_dir():
        return ImageFolderSource(path, short_side)
    if is_video_file(path):
        return VideoFileSource(path, short_side)
    raise InputError(f"{path}: not a frame folder or a video file ({', '.join(sorted(VIDEO_SUFFIXES))})")
