"""DAVIS-2016 (single object, 0/255 masks) and DAVIS-2017 (multi-object palette masks)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from vosuite.datasets.base import (
    Dataset,
    MaskReader,
    SplitArg,
    VideoRecord,
    folder_record,
    natural_sorted,
    read_binary_0_255,
    require_dir,
    subdirs,
)
from vosuite.errors import InputError
from vosuite.io.masks import read_mask

#: Resolution folders tried first, in this order, when no resolution is given.
PREFERRED_RESOLUTIONS = ("480p", "Full-Resolution", "1080p", "240p")


def _resolution_rank(folder: str) -> tuple[int, str]:
    """Preferred resolutions first, then any other folder by name."""
    if folder in PREFERRED_RESOLUTIONS:
        return PREFERRED_RESOLUTIONS.index(folder), ""
    return len(PREFERRED_RESOLUTIONS), folder


class _DavisDataset(Dataset):
    """Shared DAVIS logic: ``JPEGImages/<res>/<video>/*.jpg`` + ``Annotations/<res>/<video>/*.png``.

    ``resolution`` names the ``<res>`` folder (``480p``, ``240p``, ``Full-Resolution``, ...);
    None picks, per video, the first resolution folder that holds it (480p first).
    """

    mask_reader: ClassVar[MaskReader]
    split_folders: ClassVar[tuple[str, ...]] = ("",)

    def __init__(
        self, root: str | os.PathLike, split: SplitArg = None, resolution: str | None = None
    ) -> None:
        self.resolution = resolution
        super().__init__(root, split)

    def resolutions(self) -> list[str]:
        """The resolution folders searched, in preference order."""
        images = require_dir(self.root / "JPEGImages", f"{self.name} JPEGImages folder")
        if self.resolution is not None:
            require_dir(images / self.resolution, f"{self.name} resolution folder")
            return [self.resolution]
        return sorted(subdirs(images), key=_resolution_rank)

    def resolution_of(self, video: str) -> str:
        """The resolution folder the video is read from."""
        for resolution in self.resolutions():
            if (self.root / "JPEGImages" / resolution / video).is_dir():
                return resolution
        raise InputError(f"{self.root / 'JPEGImages'}: no resolution folder holds video {video!r}")

    def _all_videos(self) -> list[str]:
        names = {video for res in self.resolutions() for video in subdirs(self.root / "JPEGImages" / res)}
        return natural_sorted(names)

    def _record(self, name: str) -> VideoRecord:
        resolution = self.resolution_of(name)
        return folder_record(
            name,
            self.root / "JPEGImages" / resolution / name,
            self.root / "Annotations" / resolution / name,
            type(self).mask_reader,
        )

    def _split_candidates(self, split: str) -> list[Path]:
        image_sets = self.root / "ImageSets"
        return [image_sets / folder / f"{split}.txt" for folder in self.split_folders]


class Davis2016(_DavisDataset):
    """DAVIS-2016: one object per video, ground truth as 0/255 grayscale PNGs.

    Layout::

        <root>/JPEGImages/<res>/<video>/00000.jpg ...     every frame
        <root>/Annotations/<res>/<video>/00000.png ...    0/255 masks (DAVIS annotates all frames)
        <root>/ImageSets/<split>.txt                      plain video names, or
        <root>/ImageSets/<res>/<split>.txt                official lines
                                                          "/JPEGImages/480p/bear/00000.jpg /Annotations/..."

    ``<res>`` is ``480p``, ``1080p``, ``240p``, ``Full-Resolution``...; masks read as id 1 where
    the value is > 127 (:func:`read_binary_0_255`).
    """

    name = "davis2016"
    mask_reader = staticmethod(read_binary_0_255)

    def _split_candidates(self, split: str) -> list[Path]:
        image_sets = self.root / "ImageSets"
        folders = sorted(subdirs(image_sets), key=lambda f: (f != self.resolution, _resolution_rank(f)))
        return [image_sets / f"{split}.txt", *(image_sets / folder / f"{split}.txt" for folder in folders)]


class Davis2017(_DavisDataset):
    """DAVIS-2017: several objects per video, ground truth as palette PNGs (pixel value = id).

    Layout::

        <root>/JPEGImages/<res>/<video>/00000.jpg ...     every frame
        <root>/Annotations/<res>/<video>/00000.png ...    palette masks, 0 background, 255 void
        <root>/ImageSets/2017/<split>.txt                 plain video names (train, val, test-dev, ...)

    ``<res>`` is ``480p`` or ``Full-Resolution``; masks are read with :func:`read_mask`.
    A split name is also looked up as ``<root>/ImageSets/<split>.txt``.
    """

    name = "davis2017"
    mask_reader = staticmethod(read_mask)
    split_folders = ("2017", "")
