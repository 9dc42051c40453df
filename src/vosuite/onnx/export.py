"""``vosuite export onnx``: a DeAOT network's per-frame graphs as ONNX files.

Design: the three networks of a frame are exported, and the existing Python memory code drives
them (:mod:`vosuite.onnx.runtime`):

* the encoder (image -> the four feature maps);
* the propagation (the projected stride-16 map + every layer's long-term memory tokens and
  short-term memory maps -> every layer's output and the frame's keys, values and ID-branch
  inputs), with dynamic height, width and memory length;
* the decoder (propagation outputs + encoder maps -> ID logits).

Why not one graph over a fixed-capacity ring buffer with a validity mask: the memory's cap, its
object groups (ten ids each) and its reference frames change at run time and would be frozen
into the graph, and the memory bookkeeping is a few concatenations (under 10 % of a frame), so
Python keeps it and the graphs stay stateless functions of their inputs. The memory encoding of
a frame (its ID values, ``linear_ID_V`` of the ID embedding) is one linear layer per layer and
stays eager too, as does a reference frame's propagation against itself (once per reference).

What made the propagation exportable: the short-term window is computed densely
(``LocalGatedPropagation.always_dense``: the banded form's row chunks are Python loops), the
deformable samplers fold time into the batch of a 4-D ``grid_sample`` (no 5-D one), and their
grids and the window slots are computed from tensor sizes while tracing
(``traced_reference_points``, ``traced_window_slots``), so they follow the input's size.

With ``--int8`` the encoder becomes a static int8 graph calibrated on training frames
(:func:`quantize_encoder`): 2.3x faster, dev J&F within 0.001 of float32 (measured). The other
graphs stay float32.

Files in the output folder: ``encoder.onnx``, ``propagation.onnx``, ``decoder.onnx`` and
``manifest.json`` (model name and config, opset, the torch version, the sha256 of every graph).
Each file is written atomically. The TorchScript-based exporter (``torch.onnx.export(...,
dynamo=False)``) is used: one self-contained file per graph in about a second (the dynamo exporter
took 12 s for the encoder and writes external weight files; both agree with eager within 2e-6).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from vosuite.errors import InputError
from vosuite.io.atomic import atomic_path, write_text_atomic
from vosuite.io.output import claim_file
from vosuite.models.deaot import DeAOT
from vosuite.models.s2s import S2S
from vosuite.nn.attention import LocalGatedPropagation
from vosuite.nn.gpm import LayerMemory

OPSET = 17
MANIFEST = "manifest.json"
FORMAT = "vosuite-onnx"
#: The manifest layout this vosuite writes and reads (a change bumps it; other versions are refused).
MANIFEST_VERSION = 1
#: The sample frame the graphs are traced with (an internal size of the shipped student; any works).
SAMPLE_SIZE = (241, 433)
#: S2S's sample frame (multiples of its stride 32).
S2S_SAMPLE_SIZE = (256, 448)


class EncoderGraph(nn.Module):
    """image [1, 3, H, W] -> (s4, s8, s16, projected s16)."""

    def __init__(self, model: DeAOT) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.encode_image(image))


class DecoderGraph(nn.Module):
    """(s4, s8, s16, projected s16, one [hw, 1, 2d] output per GPM layer) -> logits [1, ids, H/4, W/4]."""

    def __init__(self, model: DeAOT) -> None:
        super().__init__()
        self.model = model

    def forward(self, s4: torch.Tensor, s8: torch.Tensor, s16: torch.Tensor, proj16: torch.Tensor,
                *outputs: torch.Tensor) -> torch.Tensor:
        return self.model.decode(list(outputs), [s4, s8, s16, proj16])


#: Per layer, the memory inputs of the propagation graph (long-term tokens, short-term maps).
MEMORY_INPUTS = ("lt_key", "lt_value", "lt_id", "st_key", "st_value", "st_id")


class PropagationGraph(nn.Module):
    """(projected s16 [1, d, h, w], per layer: long-term key [M, 1, Ck], value and ID value
    [M, 1, Cv]; short-term key [1, Ck, h, w], value and ID value [1, Cv, h, w]) -> (per layer:
    output [hw, 1, 2d]; then per layer the frame's key [hw, 1, Ck]; per layer its value
    [hw, 1, Cv]; per layer but the first its ID-branch input [hw, 1, d])."""

    def __init__(self, model: DeAOT) -> None:
        super().__init__()
        self.model = model

    def forward(self, feat16: torch.Tensor, *memory: torch.Tensor) -> tuple[torch.Tensor, ...]:
        width = len(MEMORY_INPUTS)
        layers = len(memory) // width
        long_term = [LayerMemory(*memory[width * i:width * i + 3]) for i in range(layers)]
        short_term = [LayerMemory(*memory[width * i + 3:width * (i + 1)]) for i in range(layers)]
        outputs, current, _ = self.model.propagate(feat16, long_term, short_term)
        id_inputs = [c.id_input for c in current[1:]]
        return (*outputs, *[c.key for c in current], *[c.value for c in current], *id_inputs)


def memory_input_names(layers: int) -> list[str]:
    return [f"{kind}{i}" for i in range(layers) for kind in MEMORY_INPUTS]


@dataclass(frozen=True)
class OnnxExport:
    """An export folder's files: ``graphs`` maps a graph's role (encoder, propagation, decoder for
    DeAOT; encoder, propagation, initial_state for S2S) to its file."""

    folder: Path
    manifest: Path
    graphs: dict[str, Path]

    @property
    def encoder(self) -> Path:
        return self.graphs["encoder"]

    @property
    def propagation(self) -> Path:
        return self.graphs["propagation"]

    @property
    def decoder(self) -> Path:
        return self.graphs["decoder"]


def _targets(folder: Path, roles: tuple[str, ...], overwrite: bool) -> OnnxExport:
    """The files of an export of ``roles`` into ``folder``, each claimed under the output rule
    (:func:`vosuite.io.output.claim_file`: an existing one is replaced only with ``overwrite``)."""
    if folder.exists() and not folder.is_dir():
        raise InputError(f"OUT_DIR {folder}: exists and is not a folder")
    export = OnnxExport(folder, folder / MANIFEST, {role: folder / f"{role}.onnx" for role in roles})
    for path in (*export.graphs.values(), export.manifest):
        claim_file(path, overwrite=overwrite, option="OUT_DIR")
    return export


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path, input_names: list[str],
            output_names: list[str], dynamic_axes: dict[str, dict[int, str]]) -> None:
    with atomic_path(path, suffix=".onnx") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(module, args, str(tmp), dynamo=False, opset_version=OPSET, input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic_axes, do_constant_folding=True)


@torch.no_grad()
def export_deaot(model: DeAOT, out_dir: str | Path, overwrite: bool = False) -> OnnxExport:
    """Write the encoder, propagation and decoder graphs of ``model`` (eval mode, CPU, float32) and
    the manifest to ``out_dir``."""
    if not isinstance(model, DeAOT):
        raise InputError(f"{getattr(getattr(model, 'cfg', None), 'name', model)}: ONNX export covers the DeAOT "
                         "and S2S families, not this network")
    export = _targets(Path(out_dir), ("encoder", "propagation", "decoder"), overwrite)
    model = copy.deepcopy(model).float().cpu().eval().to(memory_format=torch.contiguous_format)
    for module in model.modules():
        if isinstance(module, LocalGatedPropagation):
            module.always_dense = True
    image = torch.zeros(1, 3, *SAMPLE_SIZE)
    feats = model.encode_image(image)
    feature_axes = {"s4": {2: "h4", 3: "w4"}, "s8": {2: "h8", 3: "w8"}, "s16": {2: "h16", 3: "w16"},
                    "proj16": {2: "h16", 3: "w16"}}
    _export(EncoderGraph(model), (image,), export.encoder, ["image"], list(feature_axes),
            {"image": {2: "height", 3: "width"}, **feature_axes})
    outputs, _, own = model.propagate(feats[-1], ref_id_emb=model.id_embedding(
        model.one_hot(torch.zeros(1, 1, *SAMPLE_SIZE, dtype=torch.long))))
    layer_names = [f"layer{i}" for i in range(len(outputs))]
    _export_propagation(model, feats[-1], own, export.propagation)
    _export(DecoderGraph(model), (*feats, *outputs), export.decoder, [*feature_axes, *layer_names],
            ["logits"], {**feature_axes, **{name: {0: "tokens"} for name in layer_names},
                         "logits": {2: "h4", 3: "w4"}})
    _write_manifest(model, export, "deaot")
    return export


def _write_manifest(model: nn.Module, export: OnnxExport, family: str) -> None:
    manifest = {"format": FORMAT, "version": MANIFEST_VERSION,
                "model": {"name": model.cfg.name, "family": family, "config": dataclasses.asdict(model.cfg)},
                "default_size": model.default_size, "opset": OPSET, "torch": torch.__version__,
                "weights_sha256": weights_digest(model),
                "graphs": {p.name: {"sha256": _sha256(p)} for p in export.graphs.values()}}
    write_text_atomic(export.manifest, json.dumps(manifest, indent=1))


def weights_digest(model: nn.Module) -> str:
    """sha256 over the network's state dict (names, dtypes, shapes and values, in order): which
    weights an export holds, so the runtime refuses an export of other weights of the same network
    (``deaot-t-deform``, ``-kd`` and ``-sup`` share one network)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def sample_memory_inputs(own: list[LayerMemory], size_2d: tuple[int, int], frames: int) -> list[torch.Tensor]:
    """The propagation graph's memory inputs (in :func:`memory_input_names` order) for a frame's own
    memory ``own`` repeated as ``frames`` long-term frames, and itself as the short-term one."""
    memory = []
    for layer in own:
        short = layer.to_2d(size_2d)
        memory += [*(t.repeat(frames, 1, 1) for t in (layer.key, layer.value, layer.id_value)),
                   short.key, short.value, short.id_value]
    return memory


def _export_propagation(model: DeAOT, feat16: torch.Tensor, own: list[LayerMemory], path: Path) -> None:
    """The propagation graph, traced against two long-term frames of the sample frame's memory."""
    memory = sample_memory_inputs(own, tuple(feat16.shape[2:]), 2)
    layers = len(own)
    names = memory_input_names(layers)
    axes = {"feat16": {2: "h16", 3: "w16"},
            **{name: ({0: "memory"} if name.startswith("lt_") else {2: "h16", 3: "w16"}) for name in names}}
    outputs = ([f"layer{i}" for i in range(layers)] + [f"key{i}" for i in range(layers)]
               + [f"value{i}" for i in range(layers)] + [f"id_input{i}" for i in range(1, layers)])
    axes.update({name: {0: "tokens"} for name in outputs})
    _export(PropagationGraph(model), (feat16, *memory), path, ["feat16", *names], outputs, axes)


class S2SEncoderGraph(nn.Module):
    """image [1, 3, H, W] -> the encoder's five maps (strides 2 ... 32)."""

    def __init__(self, model: S2S) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.encode(image))


class S2SStepGraph(nn.Module):
    """(the five maps of the frame [1, ...], then h, c of every ConvLSTM [N, ...]) -> (mask logits
    [N, 1, H, W], distance logits [N, K, H, W] when the model has the head, then the new h, c)."""

    def __init__(self, model: S2S) -> None:
        super().__init__()
        self.model = model

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features, flat = list(inputs[:5]), inputs[5:]
        state = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
        out = self.model.step(None, state, features=features)
        heads = (out.mask_logits,) if out.distance_logits is None else (out.mask_logits, out.distance_logits)
        return (*heads, *[t for pair in out.state for t in pair])


class S2SInitialStateGraph(nn.Module):
    """(image [N, 3, H, W], mask [N, 1, H, W]) -> h, c of every ConvLSTM [N, ...]."""

    def __init__(self, model: S2S) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(t for pair in self.model.initial_state(image, mask) for t in pair)


def state_names(states: int, suffix: str = "") -> list[str]:
    return [f"{kind}{i}{suffix}" for i in range(states) for kind in ("h", "c")]


@torch.no_grad()
def export_s2s(model: S2S, out_dir: str | Path, overwrite: bool = False) -> OnnxExport:
    """Write the S2S / S2S++ graphs of ``model`` to ``out_dir``: ``encoder.onnx`` (a frame's five
    maps), ``propagation.onnx`` (one recurrent step of every object: the new ConvLSTM states and
    the logits; batch = objects) and ``initial_state.onnx`` (the states from a first frame and its
    masks). Height, width and the number of objects are dynamic."""
    export = _targets(Path(out_dir), ("encoder", "propagation", "initial_state"), overwrite)
    model = copy.deepcopy(model).float().cpu().eval()
    image = torch.zeros(1, 3, *S2S_SAMPLE_SIZE)
    feats = model.encode(image)
    feature_names = [f"f{i}" for i in range(len(feats))]
    feature_axes = {name: {2: f"h{i}", 3: f"w{i}"} for i, name in enumerate(feature_names)}
    _export(S2SEncoderGraph(model), (image,), export.encoder, ["image"], feature_names,
            {"image": {2: "height", 3: "width"}, **feature_axes})
    objects = torch.zeros(2, 1, *S2S_SAMPLE_SIZE)
    objects[0, :, 32:96, 32:96] = 1
    state = model.initial_state(image.expand(2, -1, -1, -1), objects)
    names = state_names(len(state))
    state_axes = {name: {0: "objects", 2: f"sh{i // 2}", 3: f"sw{i // 2}"} for i, name in enumerate(names)}
    _export(S2SInitialStateGraph(model), (image.expand(2, -1, -1, -1), objects), export.graphs["initial_state"],
            ["image", "mask"],
            names, {"image": {0: "objects", 2: "height", 3: "width"}, "mask": {0: "objects", 2: "height", 3: "width"},
                    **state_axes})
    heads = ["mask_logits"] + (["distance_logits"] if model.cfg.distance_classes else [])
    new_names = state_names(len(state), "_next")
    _export(S2SStepGraph(model), (*feats, *[t for pair in state for t in pair]), export.propagation,
            [*feature_names, *names], [*heads, *new_names],
            {**feature_axes, **state_axes, **{n: {0: "objects", 2: "height", 3: "width"} for n in heads},
             **{n: state_axes[o] for n, o in zip(new_names, names, strict=True)}})
    _write_manifest(model, export, "s2s")
    return export


def export_model(model: nn.Module, out_dir: str | Path, overwrite: bool = False) -> OnnxExport:
    """:func:`export_deaot` or :func:`export_s2s` by the network's family."""
    if isinstance(model, S2S):
        return export_s2s(model, out_dir, overwrite)
    return export_deaot(model, out_dir, overwrite)


def quantize_encoder(export: OnnxExport, model: DeAOT, calibration: list[Path], size: int | None = None) -> None:
    """Replace the export's encoder by a static int8 one (QDQ: int8 weights per channel, uint8
    activations), calibrated on ``calibration`` frames (image files) preprocessed as at inference
    (``size``: default the model's). Measured on the shipped student: the encoder runs 2.3x
    faster and DAVIS-16 val-dev J&F moves from 0.5517 (float32 export) to 0.5524 (docs/benchmarks.md)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from vosuite.inference.cores import preprocess
    from vosuite.io.frames import read_image_rgb

    if not calibration:
        raise InputError("--int8 needs calibration frames (none found)")
    size = size if size is not None else model.default_size

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self.paths = iter(calibration)

        def get_next(self) -> dict | None:
            path = next(self.paths, None)
            if path is None:
                return None
            return {"image": preprocess(model, read_image_rgb(path), size).numpy().astype("float32")}

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "encoder_prepared.onnx"
        quant_pre_process(str(export.encoder), str(prepared))
        with atomic_path(export.encoder, suffix=".onnx") as out:
            quantize_static(str(prepared), str(out), Frames(), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    manifest = json.loads(export.manifest.read_text(encoding="utf-8"))
    manifest["graphs"]["encoder.onnx"] = {"sha256": _sha256(export.encoder), "int8": True,
                                          "calibration_frames": len(calibration)}
    write_text_atomic(export.manifest, json.dumps(manifest, indent=1))


#: The frame of each video that calibrates a static int8 encoder (the last when a video is shorter).
CALIBRATION_FRAME = 10


def calibration_frames(folder: str | Path) -> list[Path]:
    """Calibration images for :func:`quantize_encoder`: frame :data:`CALIBRATION_FRAME` (in name
    order) of every frame folder (JPEG) inside ``folder``; InputError when ``folder`` is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--calibration {folder}: no such folder")
    frames_per_video = (sorted(video.glob("*.jpg")) for video in sorted(folder.iterdir()) if video.is_dir())
    return [frames[min(CALIBRATION_FRAME, len(frames) - 1)] for frames in frames_per_video if frames]


def read_manifest(folder: str | Path) -> dict:
    """The manifest of an export folder; InputError when it is not one or a graph changed."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise InputError(f"{folder}: not a vosuite ONNX export (no {MANIFEST}; write one with `vosuite export onnx`)")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise InputError(f"{path}: not a vosuite ONNX manifest")
    if manifest.get("version") != MANIFEST_VERSION:
        raise InputError(f"{path}: an export of version {manifest.get('version')!r}; this vosuite reads version "
                         f"{MANIFEST_VERSION} (export it again: vosuite export onnx)")
    for name, entry in manifest["graphs"].items():
        graph = Path(folder) / name
        if not graph.is_file() or _sha256(graph) != entry["sha256"]:
            raise InputError(f"{graph}: missing or changed since the export (sha256 differs)")
    return manifest
