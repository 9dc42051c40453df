"""Writing RGB frames to a video file (H.264 in .mp4 by default), atomically.

    with VideoWriter("out.mp4", fps=30) as writer:
        for rgb in frames:            # [H, W, 3] uint8
            writer.write(rgb)

The video is encoded into a temporary file beside ``out.mp4`` and renamed onto it only when the
``with`` block ends without an exception; otherwise the temporary file is deleted and nothing is left.
"""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from vosuite.errors import InputError
from vosuite.io.atomic import atomic_path

# container format FFmpeg should write, by output suffix
WRITABLE_CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}
PREFERRED_CODECS = ("libx264", "mpeg4")


def pick_video_codec() -> str:
    """libx264 (H.264) when this FFmpeg build has it, else the always-present MPEG-4 part 2 encoder."""
    for codec in PREFERRED_CODECS:
        if codec in av.codecs_available:
            return codec
    raise RuntimeError("this FFmpeg build has neither the libx264 nor the mpeg4 encoder")


def pad_to_even(rgb: np.ndarray) -> np.ndarray:
    """Repeat the last row / column once where H or W is odd (yuv420p needs even sizes)."""
    pad_rows = rgb.shape[0] % 2
    pad_cols = rgb.shape[1] % 2
    if not (pad_rows or pad_cols):
        return rgb
    return np.pad(rgb, ((0, pad_rows), (0, pad_cols), (0, 0)), mode="edge")  # [H + H%2, W + W%2, 3]


class VideoWriter:
    """Context manager that encodes RGB uint8 frames into a video file, renamed into place on success.

    Args:
        path: output file; its suffix (.mp4, .mov, .mkv, .avi) chooses the container.
        fps: frames per second.
        codec: FFmpeg encoder name; default libx264, or mpeg4 where libx264 is missing.
        crf: libx264 constant rate factor (lower = better quality, 18 is visually lossless).

    All frames must have the size of the first one; odd heights/widths are padded by one pixel.
    """

    def __init__(
        self, path: str | os.PathLike, fps: float = 24.0, codec: str | None = None, crf: int = 18
    ) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in WRITABLE_CONTAINERS:
            raise InputError(
                f"{self.path}: cannot write this video format; use one of {', '.join(WRITABLE_CONTAINERS)}"
            )
        if not fps > 0:
            raise InputError(f"fps must be positive, got {fps!r}")
        self.fps = float(fps)
        self.codec = codec or pick_video_codec()
        self.crf = crf
        self.frames_written = 0
        self._files: contextlib.ExitStack | None = None
        self._container: av.container.OutputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._frame_size: tuple[int, int] | None = None  # (H, W) of the first frame, before padding

    def __enter__(self) -> VideoWriter:
        if self._files is not None:
            raise RuntimeError(f"{self.path}: VideoWriter is already open")
        self._files = contextlib.ExitStack()
        temp_path = self._files.enter_context(atomic_path(self.path))
        try:
            container_format = WRITABLE_CONTAINERS[self.path.suffix.lower()]
            self._container = av.open(str(temp_path), mode="w", format=container_format)
        except BaseException as error:
            self._discard(error)
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if exc is None:
            self.close()
        else:
            self._discard(exc)

    def write(self, rgb: np.ndarray) -> None:
        """Encode one [H, W, 3] uint8 RGB frame."""
        if self._container is None:
            raise RuntimeError(f"{self.path}: use VideoWriter as a context manager ('with') before write()")
        rgb = self._checked_frame(rgb)
        stream = self._stream or self._add_stream(*rgb.shape[:2])
        video_frame = av.VideoFrame.from_ndarray(pad_to_even(rgb), format="rgb24")
        for packet in stream.encode(video_frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder, close the file and rename it onto ``path``; on failure nothing is left."""
        if self._container is None or self._files is None:
            return
        try:
            if self._stream is None:
                raise ValueError(f"{self.path}: no frames were written, so no video was saved")
            for packet in self._stream.encode(None):  # drain the frames the encoder still holds
                self._container.mux(packet)
            self._container.close()
        except BaseException as error:
            self._discard(error)
            raise
        self._container = None
        files, self._files = self._files, None
        files.close()  # atomic_path renames the temporary file onto self.path

    def _checked_frame(self, rgb: np.ndarray) -> np.ndarray:
        """The frame as contiguous uint8 [H, W, 3], checked against the first frame's size."""
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"{self.path}: frames must be [H, W, 3] RGB, got shape {rgb.shape}")
        if rgb.dtype != np.uint8:
            raise ValueError(f"{self.path}: frames must be uint8, got {rgb.dtype}")
        if self._frame_size is not None and rgb.shape[:2] != self._frame_size:
            raise ValueError(
                f"{self.path}: frame {self.frames_written} is {rgb.shape[1]}x{rgb.shape[0]}, "
                f"the first frame was {self._frame_size[1]}x{self._frame_size[0]}"
            )
        return np.ascontiguousarray(rgb)

    def _add_stream(self, height: int, width: int) -> av.VideoStream:
        """Create the video stream for frames of [height, width] (padded to even sizes)."""
        assert self._container is not None
        stream = self._container.add_stream(self.codec, rate=Fraction(self.fps).limit_denominator(1001))
        stream.height = height + height % 2
        stream.width = width + width % 2
        stream.pix_fmt = "yuv420p"
        if self.codec == "libx264":
            stream.options = {"crf": str(self.crf), "preset": "veryfast"}
        else:  # MPEG-4 part 2 has no CRF; give it a generous bit rate (~0.3 bit per pixel)
            stream.bit_rate = max(1_000_000, int(0.3 * stream.width * stream.height * self.fps))
        self._stream = stream
        self._frame_size = (height, width)
        return stream

    def _discard(self, error: BaseException) -> None:
        """Close the container without finishing it and delete the temporary file."""
        container, self._container = self._container, None
        if container is not None:
            with contextlib.suppress(Exception):
                container.close()
        files, self._files = self._files, None
        if files is not None:
            files.__exit__(type(error), error, error.__traceback__)  # atomic_path deletes the temp file
