"""YouTube-VOS 2018 / 2019: objects that enter mid-video, sparse validation annotations."""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import Any

from vosuite.datasets.base import (
    Dataset,
    SplitArg,
    VideoRecord,
    folder_record,
    is_split_file,
    require_dir,
    subdirs,
)
from vosuite.errors import InputError
from vosuite.io.masks import read_mask

ALL_FRAMES_SUFFIX = "_all_frames"


def _split_folder(root: Path, folder: str | None) -> Path:
    """The split folder (``<root>/<folder>``, or ``root`` itself when it is one)."""
    if folder is not None:
        return require_dir(root / folder, "YouTube-VOS split folder")
    if (root / "JPEGImages").is_dir():
        return root
    choices = [name for name in subdirs(root) if (root / name / "JPEGImages").is_dir()]
    raise InputError(f"{root}: not a YouTube-VOS split folder; give a split (one of {choices})")


def _first_annotated_frames(
    objects: dict[str, Any], annotated: dict[str, Path], where: Path
) -> dict[int, str]:
    """Object id -> the first frame of its ``meta.json`` list that has an annotation file."""
    first: dict[int, str] = {}
    for key, info in objects.items():
        try:
            object_id = int(key)
            frames = list(info.get("frames", []))
        except (TypeError, ValueError, AttributeError):
            raise InputError(f"{where}: bad object entry {key!r}") from None
        found = next((frame for frame in frames if frame in annotated), None)
        if found is not None:
            first[object_id] = found
    return dict(sorted(first.items()))


class YouTubeVOS(Dataset):
    """YouTube-VOS 2018 / 2019 (same layout for both).

    Layout::

        <root>/<split>/JPEGImages/<video>/00000.jpg ...    frames (every 5th frame of the source video)
        <root>/<split>/Annotations/<video>/00000.png ...   palette masks, pixel value = object id
        <root>/<split>/meta.json                          {"videos": {vid: {"objects": {"1":
                                                              {"category": ..., "frames": [...]}}}}}
        <root>/<split>_all_frames/JPEGImages/<video>/...  optional: every frame (valid / test)

    ``train`` is annotated on every stored (5th) frame; ``valid`` / ``test`` only on the frame where
    each object first appears (sparse). ``first_frame_of_object`` comes from ``meta.json``: the first
    frame in an object's list that has an annotation file.

    ``split`` is a split folder name (``train``, ``valid``, ``valid_all_frames``...), or a text file of
    video names (then ``folder`` names the split folder, unless ``root`` is one itself), or None
    (``root`` is the split folder). ``all_frames=True`` (implied by a ``*_all_frames`` folder) reads
    the frames from ``<split>_all_frames`` while annotations and ``meta.json`` stay in ``<split>``.
    """

    name = "youtubevos"

    def __init__(
        self,
        root: str | os.PathLike,
        split: SplitArg = None,
        all_frames: bool = False,
        folder: str | None = None,
    ) -> None:
        root = require_dir(Path(root), f"{self.name} dataset root")
        named = split is not None and not is_split_file(split)
        split_dir = _split_folder(root, str(split) if named else folder)
        if split_dir.name.endswith(ALL_FRAMES_SUFFIX):
            all_frames = True
            split_dir = split_dir.with_name(split_dir.name[: -len(ALL_FRAMES_SUFFIX)])
        self.all_frames = all_frames
        self.annotations_dir = split_dir / "Annotations"
        self.meta_path = split_dir / "meta.json"
        frames_split = split_dir.with_name(split_dir.name + ALL_FRAMES_SUFFIX) if all_frames else split_dir
        self.frames_dir = require_dir(frames_split / "JPEGImages", "YouTube-VOS JPEGImages folder")
        super().__init__(root, None if named else split)
        self.split = split

    @cached_property
    def meta(self) -> dict[str, Any]:
        """``meta.json``'s ``videos`` mapping ({} when the file is absent)."""
        if not self.meta_path.is_file():
            return {}
        try:
            videos = json.loads(self.meta_path.read_text(encoding="utf-8"))["videos"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise InputError(f"{self.meta_path}: cannot read YouTube-VOS meta ({error!r})") from None
        if not isinstance(videos, dict):
            raise InputError(f"{self.meta_path}: 'videos' is not a mapping")
        return videos

    def _all_videos(self) -> list[str]:
        return subdirs(self.frames_dir)

    def _record(self, name: str) -> VideoRecord:
        record = folder_record(name, self.frames_dir / name, self.annotations_dir / name, read_mask)
        entry = self.meta.get(name)
        if entry is not None:
            objects = entry.get("objects", {}) if isinstance(entry, dict) else None
            if not isinstance(objects, dict):
                raise InputError(f"{self.meta_path}: video {name!r} has no 'objects' mapping")
            record.first_frame_of_object = _first_annotated_frames(
                objects, record.annotation_paths, self.meta_path
            )
        return record
