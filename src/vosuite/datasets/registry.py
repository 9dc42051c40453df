"""Open a dataset by name: ``open_dataset("davis2017", root, "val")``."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

from vosuite.datasets.base import Dataset, SplitArg
from vosuite.datasets.davis import Davis2016, Davis2017
from vosuite.datasets.generic import GenericFolder
from vosuite.datasets.youtubevos import YouTubeVOS
from vosuite.errors import InputError

DATASETS: dict[str, type[Dataset]] = {
    "davis2016": Davis2016,
    "davis2017": Davis2017,
    "youtubevos": YouTubeVOS,
    "youtubevos2018": YouTubeVOS,
    "youtubevos2019": YouTubeVOS,
    "generic": GenericFolder,
}


def _canonical(name: str) -> str:
    """``DAVIS-2017`` / ``youtube_vos`` -> ``davis2017`` / ``youtubevos``."""
    return name.lower().replace("-", "").replace("_", "")


def dataset_class(name: str) -> type[Dataset]:
    """The dataset class registered under ``name`` (case, ``-`` and ``_`` ignored)."""
    try:
        return DATASETS[_canonical(name)]
    except KeyError:
        raise InputError(f"unknown dataset {name!r} (choose from {', '.join(DATASETS)})") from None


def _check_options(cls: type[Dataset], name: str, options: dict[str, Any]) -> None:
    """An :class:`InputError` for an option the dataset does not take."""
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "root", "split")]
    for option in options:
        if option not in accepted:
            raise InputError(f"dataset {name!r} has no option {option!r} (options: {', '.join(accepted)})")


def open_dataset(name: str, root: str | os.PathLike, split: SplitArg = None, **options: Any) -> Dataset:
    """Open dataset ``name`` at ``root``.

    ``split`` is a split name (looked up in ``ImageSets`` for DAVIS / generic, a folder for
    YouTube-VOS), a path to a text file of video names, or None for every video under the root.
    ``options`` go to the dataset class (``resolution`` for DAVIS, ``all_frames`` / ``folder`` for
    YouTube-VOS, ``frames`` / ``annotations`` / ``read_labels`` for generic).
    """
    cls = dataset_class(name)
    _check_options(cls, name, options)
    dataset = cls(Path(root), split, **options)
    dataset.name = _canonical(name)
    return dataset


def detect_dataset(root: str | os.PathLike) -> str:
    """Guess the layout of a ground-truth root: ``youtubevos``, ``davis2017``, ``davis2016`` or ``generic``."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: ground-truth folder not found")
    if (root / "meta.json").is_file() or any((root / s / "meta.json").is_file() for s in ("train", "valid")):
        return "youtubevos"
    if (root / "ImageSets" / "2017").is_dir():
        return "davis2017"
    annotations = root / "Annotations"
    resolution_folders = [p for p in annotations.iterdir() if p.is_dir()] if annotations.is_dir() else []
    if resolution_folders and resolution_folders[0].name in {"480p", "240p", "1080p", "Full-Resolution"}:
        return "davis2016" if _looks_binary_0_255(resolution_folders[0]) else "davis2017"
    return "generic"


def _looks_binary_0_255(annotations: Path) -> bool:
    """True when the first mask found is a grayscale 0/255 image (DAVIS-2016 style)."""
    from PIL import Image

    first = next(annotations.glob("*/*.png"), None)
    if first is None:
        return False
    with Image.open(first) as image:
        return image.mode == "L"
