"""The per-video record every dataset yields, and the mask-reading rule that goes with it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vosuite.errors import InputError
from vosuite.io.frames import IMAGE_SUFFIXES, natural_sorted
from vosuite.io.masks import binarize_0_255, object_ids, read_mask

MaskReader = Callable[[Path], np.ndarray]


def read_binary_0_255(path: Path) -> np.ndarray:
    """DAVIS-2016 ground truth: 0/255 grayscale -> id 1 where > 127 (see the official evaluator)."""
    return binarize_0_255(read_mask(path))


@dataclass
class VideoRecord:
    """One video of a dataset.

    Attributes:
        name: the video (sequence) name.
        frame_names: every frame's name without extension, in temporal order.
        frame_paths: the image file of every frame (empty when the frames come from ``video_file``).
        annotation_paths: frame name -> mask file, for the annotated frames only, in temporal order.
        read_labels: turns a mask file into an [H, W] id map (0 = background, 255 = void).
        video_file: a video container to decode instead of ``frame_paths``.
        first_frame_of_object: object id -> name of the first annotated frame it appears in,
            when the dataset states it (YouTube-VOS ``meta.json``); otherwise filled on demand by
            :meth:`object_first_frames`.
    """

    name: str
    frame_names: list[str]
    frame_paths: list[Path]
    annotation_paths: dict[str, Path]
    read_labels: MaskReader = read_mask
    video_file: Path | None = None
    first_frame_of_object: dict[int, str] = field(default_factory=dict)

    @property
    def annotated_frames(self) -> list[str]:
        """Names of the annotated frames, in temporal order."""
        return list(self.annotation_paths)

    def labels(self, frame_name: str) -> np.ndarray:
        """The id map of an annotated frame."""
        return self.read_labels(self.annotation_paths[frame_name])

    def object_first_frames(self) -> dict[int, str]:
        """Object id -> first annotated frame where it appears (reads masks if not given)."""
        if not self.first_frame_of_object:
            for frame_name in self.annotation_paths:
                for object_id in object_ids(self.labels(frame_name)):
                    self.first_frame_of_object.setdefault(object_id, frame_name)
        return dict(self.first_frame_of_object)


# ---------------------------------------------------------------------------------------------
# Shared helpers for the dataset layouts
# ---------------------------------------------------------------------------------------------

MASK_SUFFIXES = (".png",)
SplitArg = str | os.PathLike | None


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a folder, else an :class:`InputError` naming it."""
    if not path.is_dir():
        raise InputError(
            f"{path}: {what} not found" if not path.exists() else f"{path}: {what} is not a folder"
        )
    return path


def subdirs(folder: Path) -> list[str]:
    """Names of the sub-folders of ``folder`` (hidden ones excluded), naturally sorted; [] if absent."""
    if not folder.is_dir():
        return []
    return natural_sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Stem -> file for the files of ``folder`` with one of ``suffixes``, naturally sorted; {} if absent."""
    if not folder.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in folder.iterdir():
        if path.suffix.lower() not in suffixes or path.name.startswith(".") or not path.is_file():
            continue
        if path.stem in found:
            raise InputError(
                f"{folder}: two files for frame {path.stem!r} ({found[path.stem].name}, {path.name})"
            )
        found[path.stem] = path
    return {stem: found[stem] for stem in natural_sorted(found)}


def _split_line_video(token: str) -> str:
    """The video named by one split-file token: ``bear`` or ``/JPEGImages/480p/bear/00000.jpg``."""
    parts = [part for part in token.replace("\\", "/").split("/") if part]
    if len(parts) > 1 and Path(parts[-1]).suffix:
        return parts[-2]
    return parts[-1]


def read_split_file(path: Path) -> list[str]:
    """Video names listed in a split file, in file order, without repeats.

    Accepts plain names (one per line) and the official DAVIS-2016 form
    ``/JPEGImages/480p/bear/00000.jpg /Annotations/480p/bear/00000.png``; blank lines and lines
    starting with ``#`` are skipped.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: split file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read split file ({error})") from None
    names: dict[str, None] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.setdefault(_split_line_video(line.split()[0]), None)
    return list(names)


def is_split_file(split: str | os.PathLike) -> bool:
    """Whether ``split`` is meant as a path to a text file rather than a split name."""
    if isinstance(split, os.PathLike):
        return True
    return split.endswith(".txt") or "/" in split or os.sep in split


def folder_record(
    name: str,
    frames_dir: Path,
    annotations_dir: Path,
    read_labels: MaskReader = read_mask,
) -> VideoRecord:
    """A :class:`VideoRecord` for a folder of frame images and a (possibly absent) folder of masks.

    Every image in ``frames_dir`` is a frame; the frames with a same-named PNG in
    ``annotations_dir`` are the annotated ones. A mask with no matching frame is an error.
    """
    frames = files_by_stem(require_dir(frames_dir, f"frames folder of video {name!r}"), IMAGE_SUFFIXES)
    if not frames:
        raise InputError(f"{frames_dir}: no frame images ({', '.join(IMAGE_SUFFIXES)}) in video {name!r}")
    masks = files_by_stem(annotations_dir, MASK_SUFFIXES)
    orphans = [stem for stem in masks if stem not in frames]
    if orphans:
        raise InputError(f"{masks[orphans[0]]}: mask has no frame {orphans[0]!r} in {frames_dir}")
    return VideoRecord(
        name=name,
        frame_names=list(frames),
        frame_paths=list(frames.values()),
        annotation_paths={stem: masks[stem] for stem in frames if stem in masks},
        read_labels=read_labels,
    )


class Dataset:
    """An ordered selection of videos under ``root``, each turned into a :class:`VideoRecord`.

    Subclasses describe their layout in their docstring and implement :meth:`_all_videos`
    (every video under the root), :meth:`_record` (one video) and, when split names are looked
    up in files, :meth:`_split_candidates`. ``split`` is a split name, a path to a text file of
    video names, or None for every video under the root.
    """

    name: str = "dataset"

    def __init__(self, root: str | os.PathLike, split: SplitArg = None) -> None:
        self.root = require_dir(Path(root), f"{self.name} dataset root")
        self.split = split
        self._names = self._select(split)
        self._known = set(self._names)

    # -- public API ---------------------------------------------------------------------------

    def videos(self) -> list[str]:
        """Names of the selected videos, in split-file order (natural order without a split)."""
        return list(self._names)

    def video(self, name: str) -> VideoRecord:
        """The record of one selected video."""
        if name not in self._known:
            where = f" split {self.split!s}" if self.split is not None else ""
            raise InputError(f"{self.root}: video {name!r} is not in the {self.name} dataset{where}")
        return self._record(name)

    def __iter__(self) -> Iterator[VideoRecord]:
        return (self.video(name) for name in self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, videos={len(self)})"

    # -- for subclasses -----------------------------------------------------------------------

    def _all_videos(self) -> list[str]:
        """Every video under the root, naturally sorted."""
        raise NotImplementedError

    def _record(self, name: str) -> VideoRecord:
        """The record of video ``name`` (known to exist)."""
        raise NotImplementedError

    def _split_candidates(self, split: str) -> list[Path]:
        """Files that may hold the named split, most specific first."""
        return [self.root / "ImageSets" / f"{split}.txt"]

    def _select(self, split: SplitArg) -> list[str]:
        """The selected video names for ``split`` (see the class docstring)."""
        if split is None:
            return self._all_videos()
        split_file = Path(split) if is_split_file(split) else self._named_split_file(str(split))
        names = read_split_file(split_file)
        available = set(self._all_videos())
        for video in names:
            if video not in available:
                raise InputError(f"{split_file}: video {video!r} not found under {self.root}")
        return names

    def _named_split_file(self, split: str) -> Path:
        """The first existing candidate file for a split name."""
        candidates = self._split_candidates(split)
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        looked = ", ".join(str(c) for c in candidates)
        raise InputError(f"{self.root}: no split {split!r} for {self.name} (looked for {looked})")
