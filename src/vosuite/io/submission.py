"""Packing predictions for the YouTube-VOS evaluation server (its ground truth is not public).

The server takes a zip whose members are ``Annotations/<video>/<frame>.png``: one palette PNG per
frame of the validation (or test) split, object ids as pixel values.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from vosuite.errors import InputError
from vosuite.io.atomic import atomic_path
from vosuite.io.masks import read_mask
from vosuite.io.output import claim_file


def pack_predictions(prediction_root: str | Path, out_zip: str | Path, videos: list[str] | None = None,
                     overwrite: bool = False) -> int:
    """Zip ``<prediction_root>/<video>/<frame>.png`` as ``Annotations/<video>/<frame>.png``.

    Returns the number of PNG files written. The zip appears only when complete; it may not lie
    inside the predictions, and replaces an existing file only with ``overwrite``. Every PNG is
    decoded first: a corrupt one is an InputError naming it.
    """
    prediction_root = Path(prediction_root)
    if not prediction_root.is_dir():
        raise InputError(f"--pred {prediction_root}: prediction folder not found")
    claim_file(out_zip, overwrite=overwrite, inputs=(prediction_root,), option="--out")
    names = videos if videos is not None else sorted(p.name for p in prediction_root.iterdir() if p.is_dir())
    if not names:
        raise InputError(f"{prediction_root}: no video folders to pack")
    count = 0
    with atomic_path(out_zip, suffix=".zip") as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for video in names:
            folder = prediction_root / video
            pngs = sorted(folder.glob("*.png"))
            if not pngs:
                raise InputError(f"{folder}: no PNG predictions for video {video}")
            for png in pngs:
                read_mask(png)  # an InputError naming a file that is no readable mask
                archive.write(png, f"Annotations/{video}/{png.name}")
                count += 1
    return count
