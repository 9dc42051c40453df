"""Reading and writing segmentation masks in the forms the VOS field uses.

* palette PNG (DAVIS-2017, YouTube-VOS): the pixel value is the object id, 255 is "void";
* grayscale 0/255 (DAVIS-2016): one object. Ground truth keeps the official rule, foreground where
  the value is > 127 (:func:`binarize_0_255`); predictions and prompt masks are read as one object
  only when their sole non-zero value is 255 (:func:`is_binary_0_255`, :func:`ids_from_binary_0_255`),
  so a palette mask with ids 1..254 is never mistaken for one;
* L / LA / I;16 / 1-bit: the (first) channel's value is the id;
* RGB: colours of the DAVIS palette are mapped back to their index.

Outputs are written as 8-bit palette PNGs with the DAVIS palette, atomically.
"""

from __future__ import annotations

import io
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vosuite.errors import InputError
from vosuite.io.atomic import write_bytes_atomic

VOID_ID = 255


@lru_cache(maxsize=1)
def davis_palette() -> np.ndarray:
    """The DAVIS / PASCAL-VOC colour map as a [256, 3] uint8 array (index -> RGB).

    Index i gets its bits spread over the three channels, most significant first
    (the ``bitget`` construction of the PASCAL VOC devkit that DAVIS reuses).
    """
    palette = np.zeros((256, 3), dtype=np.uint8)
    for index in range(256):
        red = green = blue = 0
        code = index
        for bit in range(8):
            red |= ((code >> 0) & 1) << (7 - bit)
            green |= ((code >> 1) & 1) << (7 - bit)
            blue |= ((code >> 2) & 1) << (7 - bit)
            code >>= 3
        palette[index] = (red, green, blue)
    return palette


def _rgb_to_ids(rgb: np.ndarray, path: Path) -> np.ndarray:
    """Map an RGB mask drawn with the DAVIS palette back to ids."""
    palette = davis_palette().astype(np.int32)
    codes = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    palette_codes = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    lookup = {int(code): index for index, code in enumerate(palette_codes)}
    unique_codes, inverse = np.unique(codes, return_inverse=True)
    ids = np.empty(len(unique_codes), dtype=np.uint8)
    for position, code in enumerate(unique_codes):
        if int(code) not in lookup:
            red, green, blue = (int(code) >> 16) & 255, (int(code) >> 8) & 255, int(code) & 255
            raise InputError(f"{path}: RGB mask colour ({red}, {green}, {blue}) is not in the DAVIS palette")
        ids[position] = lookup[int(code)]
    return ids[inverse.reshape(codes.shape)]


def image_to_ids(image: Image.Image, path: str | os.PathLike = "<image>") -> np.ndarray:
    """Convert a decoded PIL mask image to an [H, W] array of raw ids (uint8, or uint16 for I;16)."""
    mode = image.mode
    if mode == "P":
        return np.asarray(image, dtype=np.uint8)
    if mode == "L":
        return np.asarray(image, dtype=np.uint8)
    if mode == "1":
        return np.asarray(image, dtype=np.uint8)
    if mode == "LA":
        return np.asarray(image.getchannel("L"), dtype=np.uint8)
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(image)
        if values.min() < 0 or values.max() > 65535:
            raise InputError(f"{path}: mask values outside 0..65535")
        return values.astype(np.uint16)
    if mode in ("RGB", "RGBA"):
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
            return rgb[..., 0].copy()
        return _rgb_to_ids(rgb, Path(path))
    raise InputError(f"{path}: unsupported mask image mode {mode!r}")


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask file as raw ids [H, W] (palette index or channel value), without remapping."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            return image_to_ids(image, path)
    except FileNotFoundError:
        raise InputError(f"{path}: mask file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise InputError(f"{path}: cannot decode mask ({error})") from None


def binarize_0_255(mask: np.ndarray) -> np.ndarray:
    """DAVIS-2016 convention: object id 1 where the 0/255 value is > 127, else background."""
    return (mask > 127).astype(np.uint8)


def is_binary_0_255(mask: np.ndarray) -> bool:
    """Whether an 8-bit mask is a 0/255 one-object mask: its only non-zero value is 255, present at least once.

    Only ``uint8`` arrays qualify (a 16-bit mask is never read this way); an empty array does not.
    """
    if mask.dtype != np.uint8 or mask.size == 0:
        return False
    counts = np.bincount(mask.ravel(), minlength=256)  # [256] pixels per value
    return bool(counts[255] > 0 and not counts[1:255].any())


def ids_from_binary_0_255(mask: np.ndarray) -> np.ndarray:
    """How vosuite reads predictions and prompt masks: a 0/255 mask becomes ids 0/1 (uint8), any other is kept.

    A 0/255 mask (see :func:`is_binary_0_255`) holds one object, id 1. DAVIS-2016 *ground truth* is
    read with :func:`binarize_0_255` instead (the official ``> 127`` rule).
    """
    return (mask == VOID_ID).astype(np.uint8) if is_binary_0_255(mask) else mask


def object_ids(mask: np.ndarray, void_id: int | None = VOID_ID) -> list[int]:
    """Sorted ids present in ``mask``, without background (0) and void."""
    present = np.unique(mask)
    return [int(v) for v in present if v != 0 and (void_id is None or v != void_id)]


def split_objects(mask: np.ndarray, ids: list[int]) -> np.ndarray:
    """One boolean plane per id: [len(ids), H, W]."""
    return np.stack([mask == i for i in ids]) if ids else np.zeros((0, *mask.shape), dtype=bool)


def labels_to_image(labels: np.ndarray) -> Image.Image:
    """An 8-bit palette image with the DAVIS palette for an [H, W] label map (ids 0..255)."""
    if labels.ndim != 2:
        raise ValueError(f"labels must be [H, W], got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError("labels must be in 0..255 for a palette PNG")
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(davis_palette().tobytes())
    return image


#: zlib level of written masks: OpenCV's default for PNG. Half the time of PIL's default 6 (1.5
#: against 3.1 ms for a 480 x 854 DAVIS mask) for files about 1.8x larger (5.3 against 3.0 KB).
PNG_COMPRESS_LEVEL = 1


def encode_mask_png(labels: np.ndarray) -> bytes:
    """The bytes of the DAVIS-palette PNG vosuite writes for an [H, W] label map."""
    buffer = io.BytesIO()
    labels_to_image(labels).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def write_mask(path: str | os.PathLike, labels: np.ndarray) -> None:
    """Write an [H, W] label map as a DAVIS-palette PNG (:func:`encode_mask_png`), atomically."""
    write_bytes_atomic(path, encode_mask_png(labels))
