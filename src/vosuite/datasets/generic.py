"""A generic folder of videos, and a single video (file or frames folder) with a first-frame mask."""

from __future__ import annotations

import os
from pathlib import Path

from vosuite.datasets.base import (
    Dataset,
    MaskReader,
    SplitArg,
    VideoRecord,
    files_by_stem,
    folder_record,
    require_dir,
    subdirs,
)
from vosuite.errors import InputError
from vosuite.io.frames import IMAGE_SUFFIXES, VideoFileSource
from vosuite.io.masks import read_mask


class GenericFolder(Dataset):
    """Any DAVIS-2017-like folder of videos.

    Layout::

        <root>/JPEGImages/<video>/<frame>.jpg|.png ...    every frame (any image type, natural order)
        <root>/Annotations/<video>/<frame>.png ...        masks for any subset of the frames
        <root>/ImageSets/<split>.txt                      optional: video names, one per line

    Masks are read with ``read_labels`` (default :func:`read_mask`: pixel value = object id,
    255 void). ``frames`` and ``annotations`` rename the two top-level folders.
    """

    name = "generic"

    def __init__(
        self,
        root: str | os.PathLike,
        split: SplitArg = None,
        frames: str = "JPEGImages",
        annotations: str = "Annotations",
        read_labels: MaskReader = read_mask,
    ) -> None:
        self.frames_name = frames
        self.annotations_name = annotations
        self.read_labels = read_labels
        super().__init__(root, split)

    def _all_videos(self) -> list[str]:
        return subdirs(require_dir(self.root / self.frames_name, "frames folder"))

    def _record(self, name: str) -> VideoRecord:
        return folder_record(
            name,
            self.root / self.frames_name / name,
            self.root / self.annotations_name / name,
            self.read_labels,
        )


def single_video(video: Path, first_mask: Path, read_labels: MaskReader = read_mask) -> VideoRecord:
    """One video with a mask for its first frame.

    ``video`` is either a video file (mp4, avi, ...: ``video_file`` is set, frames are named
    ``00000``, ``00001``, ... and ``frame_paths`` is empty) or a folder of frame images (natural
    order). ``first_mask`` annotates the first frame, whatever its file name.
    """
    video, first_mask = Path(video), Path(first_mask)
    if not first_mask.is_file():
        raise InputError(f"{first_mask}: first-frame mask not found")
    if video.is_dir():
        return _frames_folder_video(video, first_mask, read_labels)
    if not video.is_file():
        raise InputError(f"{video}: video not found")
    count = VideoFileSource(video, short_side=None).count_frames()
    if count == 0:
        raise InputError(f"{video}: video has no frames")
    frame_names = [f"{index:05d}" for index in range(count)]
    return VideoRecord(
        name=video.stem,
        frame_names=frame_names,
        frame_paths=[],
        annotation_paths={frame_names[0]: first_mask},
        read_labels=read_labels,
        video_file=video,
    )


def _frames_folder_video(folder: Path, first_mask: Path, read_labels: MaskReader) -> VideoRecord:
    """A record for a folder of frame images, annotated on its first frame."""
    frames = files_by_stem(folder, IMAGE_SUFFIXES)
    if not frames:
        raise InputError(f"{folder}: no frame images ({', '.join(IMAGE_SUFFIXES)})")
    first = next(iter(frames))
    return VideoRecord(
        name=folder.name,
        frame_names=list(frames),
        frame_paths=list(frames.values()),
        annotation_paths={first: first_mask},
        read_labels=read_labels,
    )
