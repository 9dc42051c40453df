"""Follow objects through a video in memory: a generator of label maps (like SAM2's
``propagate_in_video``), on which ``vosuite segment`` / ``infer`` and training validation build.

    for index, labels in propagate(core, "clip.mp4", {0: first_mask, 40: new_objects}):
        ...                                   # labels: [H, W] uint8, the caller's object ids

``video`` is a video file or a frames folder (decoded one frame at a time) or any iterable of RGB
uint8 arrays [H, W, 3]. ``prompts`` maps a frame index to a label map [H, W] of object ids (0 =
background, 255 = void; a mask holding only 0 and 255, DAVIS-2016 style, is one object): its
objects overwrite the prediction there and are followed from there on, new ids included. A
prompt may also be a function of the frame size (H, W) returning the label map, so masks are read
only when their frame comes. Memory stays bounded: one frame and one
label map at a time, plus the core's capped memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from vosuite.errors import InputError
from vosuite.inference.core import VideoCore

#: A prompt: a label map, or a function of the frame size (H, W) that reads one.
Prompt = np.ndarray | Callable[[tuple[int, int]], np.ndarray]
#: A video: a file or frames folder, or an iterable of RGB arrays.
Video = str | os.PathLike | Iterable[np.ndarray]


def video_frames(video: Video) -> Iterator[np.ndarray]:
    """RGB uint8 [H, W, 3] frames of a video file, a frames folder or an iterable of arrays."""
    if isinstance(video, (str, os.PathLike)):
        from vosuite.io.frames import open_frames

        for frame in open_frames(Path(video)):
            yield frame.rgb
        return
    yield from video


def propagate(core: VideoCore, video: Video, prompts: Mapping[int, Prompt]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_index, label_map)`` for every frame of ``video``, tracking with ``core`` (reset
    first). Frames before the first prompt with an object come out as background; a prompt index
    past the last frame is an InputError once the video ends."""
    core.reset()
    pending = dict(prompts)
    for index, rgb in enumerate(video_frames(video)):
        prompt = pending.pop(index, None)
        if callable(prompt):
            prompt = prompt(tuple(np.asarray(rgb).shape[:2]))
        core.step(rgb, prompt)
        yield index, core.labels
    if pending:
        raise InputError(f"prompts for frames {sorted(pending)} past the video's end ({core.frames_seen} frames)")
