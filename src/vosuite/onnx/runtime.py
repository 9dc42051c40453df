"""``--runtime onnx``: backends (:mod:`vosuite.inference.backend`) whose graphs run in ONNX
Runtime sessions of an export (:mod:`vosuite.onnx.export`), handed to an inference core beside the
eager network.

:class:`OnnxDeAOTBackend` serves DeAOT's ``encode_image``, ``decode`` and, on request,
``propagate`` (of a frame against the memory); a reference frame's propagation against itself,
identity embedding and the memory code of :mod:`vosuite.inference.step` stay on the network.
:class:`OnnxS2SBackend` serves S2S's encoder, recurrent step and initial state. The propagation
graph runs only with ``onnx_propagation=True`` (it measured slower than eager here). ONNX
Runtime's CPU provider uses the torch thread count of the moment the sessions are made (the CLI's
``--threads``). ``onnxruntime`` is an optional dependency (``vosuite[onnx]``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from vosuite.errors import InputError
from vosuite.models.deaot import DeAOT
from vosuite.models.s2s import S2S, S2SOutput, S2SState
from vosuite.nn.gpm import LayerCurrent, LayerMemory
from vosuite.onnx.cache import cached_export
from vosuite.onnx.export import export_model, memory_input_names, read_manifest, state_names, weights_digest
from vosuite.options import RUNTIMES

INSTALL_HINT = "pip install 'vosuite[onnx]' (or: pip install onnx onnxruntime)"


def require_onnxruntime():
    """The ``onnxruntime`` module, or a one-line InputError saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise InputError(f"--runtime onnx needs onnxruntime, which is not installed: {INSTALL_HINT}") from None
    return onnxruntime


def _session(path: Path, threads: int):
    ort = require_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # no spin-waiting after each graph: the propagation runs in torch's own thread pool right after,
    # and spinning ORT threads would compete with it for the same cores
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxDeAOTBackend:
    """DeAOT's graphs in ONNX Runtime (module docstring).

    Args:
        network: the eager network (its weights were exported; it serves what ONNX does not).
        export_dir: a ``vosuite export onnx`` folder of this network; None: the user's cached export
            of it (:mod:`vosuite.onnx.cache`; exported there now, about 2 to 5 s, when missing).
        threads: ONNX Runtime's intra-op threads (default: torch's current thread count).
        onnx_propagation: run the propagation graph too. Off by default: on the 2-core CPU it
            measured 64 ms a frame against 60 ms eager (the graph computes the 15 x 15 window
            densely; eager uses banded products), docs/benchmarks.md.
    """

    def __init__(self, network: DeAOT, export_dir: str | Path | None = None, threads: int | None = None,
                 onnx_propagation: bool = False) -> None:
        self.network = network
        self._temporary, export_dir, manifest = _export_folder(network, export_dir)
        threads = threads or torch.get_num_threads()
        self.encoder_session = _session(Path(export_dir) / "encoder.onnx", threads)
        self.decoder_session = _session(Path(export_dir) / "decoder.onnx", threads)
        # the exporter drops inputs the graph does not read (a decoder without intermediate inputs
        # reads only the last layer's output)
        self.decoder_inputs = {node.name for node in self.decoder_session.get_inputs()}
        graph = Path(export_dir) / "propagation.onnx"
        self.propagation_session = _session(graph, threads) if onnx_propagation else None
        self.propagation_inputs = ({node.name for node in self.propagation_session.get_inputs()}
                                   if self.propagation_session is not None else set())
        self.export_dir = Path(export_dir)

    def encode_image(self, img: torch.Tensor) -> list[torch.Tensor]:
        """img [1, 3, H, W] normalised -> the four encoder maps (ONNX Runtime)."""
        outputs = self.encoder_session.run(None, {"image": _numpy(img)})
        return [torch.from_numpy(out) for out in outputs]

    def propagate(self, feat16: torch.Tensor, long_term: list[LayerMemory] | None = None,
                  short_term: list[LayerMemory] | None = None, ref_id_emb: torch.Tensor | None = None,
                  return_attn: bool = False) -> tuple[list[torch.Tensor], list[LayerCurrent], list[LayerMemory]]:
        """A frame against the memory in ONNX Runtime (one object group: batch 1); a reference
        frame against itself, attention maps, or batches run on the network."""
        if (self.propagation_session is None or ref_id_emb is not None or return_attn or long_term is None
                or short_term is None or feat16.shape[0] != 1):
            return self.network.propagate(feat16, long_term, short_term, ref_id_emb, return_attn)
        memory = [t for lt, st in zip(long_term, short_term, strict=True)
                  for t in (lt.key, lt.value, lt.id_value, st.key, st.value, st.id_value)]
        names = ["feat16", *memory_input_names(len(long_term))]
        inputs = {name: _numpy(t) for name, t in zip(names, (feat16, *memory), strict=True)
                  if name in self.propagation_inputs}
        results = [torch.from_numpy(r) for r in self.propagation_session.run(None, inputs)]
        layers = len(long_term)
        outputs, keys, values = results[:layers], results[layers:2 * layers], results[2 * layers:3 * layers]
        id_inputs = [None, *results[3 * layers:]]
        return outputs, [LayerCurrent(k, v, i) for k, v, i in zip(keys, values, id_inputs, strict=True)], []

    def decode(self, outputs: list[torch.Tensor], feats: list[torch.Tensor]) -> torch.Tensor:
        """GPM outputs + encoder maps -> ID logits [1, num_ids, H/4, W/4] (ONNX Runtime)."""
        names = ["s4", "s8", "s16", "proj16", *(f"layer{i}" for i in range(len(outputs)))]
        inputs = {name: _numpy(t) for name, t in zip(names, (*feats, *outputs), strict=True)
                  if name in self.decoder_inputs}
        return torch.from_numpy(self.decoder_session.run(None, inputs)[0])


class OnnxS2SBackend:
    """S2S / S2S++'s ``encode``, ``step`` (every object's recurrent step) and ``initial_state`` in ONNX
    Runtime sessions of a ``vosuite export onnx`` folder (the states stay torch tensors between
    frames). Arguments as :class:`OnnxDeAOTBackend`."""

    def __init__(self, network: S2S, export_dir: str | Path | None = None, threads: int | None = None) -> None:
        self.network = network
        self._temporary, folder, _ = _export_folder(network, export_dir)
        threads = threads or torch.get_num_threads()
        self.sessions = {role: _session(folder / f"{role}.onnx", threads)
                         for role in ("encoder", "propagation", "initial_state")}
        self.export_dir = folder

    def encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        self.network._check_image(image)
        return [torch.from_numpy(f) for f in self.sessions["encoder"].run(None, {"image": _numpy(image)})]

    def initial_state(self, image: torch.Tensor, mask: torch.Tensor) -> S2SState:
        self.network._check_image(image)
        flat = self.sessions["initial_state"].run(None, {"image": _numpy(image), "mask": _numpy(mask.to(image.dtype))})
        return _pairs([torch.from_numpy(t) for t in flat])

    def step(self, image: torch.Tensor | None, state: S2SState, features: list[torch.Tensor] | None = None
             ) -> S2SOutput:
        cfg = self.network.cfg
        if len(state) != cfg.num_states:
            raise ValueError(f"{cfg.name} carries {cfg.num_states} (h, c) states, got {len(state)}")
        features = self.encode(image) if features is None else features
        names = [f"f{i}" for i in range(len(features))] + state_names(len(state))
        tensors = [*features, *[t for pair in state for t in pair]]
        results = [torch.from_numpy(r) for r in self.sessions["propagation"].run(
            None, {name: _numpy(t) for name, t in zip(names, tensors, strict=True)})]
        heads = 2 if cfg.distance_classes else 1
        return S2SOutput(results[0], results[1] if heads == 2 else None, _pairs(results[heads:]))


def _pairs(flat: list[torch.Tensor]) -> S2SState:
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]


def _export_folder(model: torch.nn.Module, export_dir: str | Path | None
                   ) -> tuple[tempfile.TemporaryDirectory | None, Path, dict]:
    """(the temporary folder to keep alive, or None; the export folder of ``model``; its manifest), checked.
    Without ``export_dir``: the user's cache entry (:mod:`vosuite.onnx.cache`), or a temporary
    export when the cache cannot be written (a one-line warning on stderr)."""
    temporary = None
    digest = weights_digest(model)
    if export_dir is None:
        temporary, export_dir = _cached_or_temporary(model, digest)
    manifest = read_manifest(export_dir)
    if manifest["model"]["name"] != model.cfg.name:
        raise InputError(f"{export_dir}: an export of {manifest['model']['name']}, not {model.cfg.name}")
    if manifest.get("weights_sha256") != digest:
        raise InputError(f"{export_dir}: an export of other weights of {model.cfg.name} (export it again from "
                         "these weights: vosuite export onnx --model NAME / --checkpoint PATH)")
    return temporary, Path(export_dir), manifest


def _cached_or_temporary(model: torch.nn.Module, digest: str) -> tuple[tempfile.TemporaryDirectory | None, Path]:
    """(None, the cache entry of ``model``), or (a temporary folder, the export in it) when the
    cache cannot be written."""
    try:
        return None, cached_export(model, digest)
    except OSError as error:
        reason = " ".join(str(error).split())
        print(f"vosuite: warning: cannot write the ONNX cache ({reason}); exporting to a temporary folder",
              file=sys.stderr, flush=True)
    temporary = tempfile.TemporaryDirectory(prefix="vosuite-onnx-")
    return temporary, export_model(model, temporary.name).folder


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().cpu().float().numpy())


def runtime_backend(model: torch.nn.Module, runtime: str | None, export_dir: str | Path | None = None,
                    device: str = "cpu") -> OnnxDeAOTBackend | OnnxS2SBackend | None:
    """The backend that runs ``model``'s graphs for ``runtime``: None for eager (the network runs them),
    an ONNX Runtime backend for ``"onnx"``."""
    if runtime not in (None, *RUNTIMES):
        raise InputError(f"--runtime {runtime!r}: use {' or '.join(RUNTIMES)}")
    if runtime in (None, "eager"):
        if export_dir is not None:
            raise InputError("--onnx-dir needs --runtime onnx")
        return None
    require_onnxruntime()
    if not isinstance(model, (DeAOT, S2S)):
        raise InputError(f"--runtime onnx covers the DeAOT and S2S families, not {model.cfg.name}")
    if str(device) != "cpu":
        raise InputError(f"--runtime onnx runs on the CPU (got --device {device})")
    return OnnxS2SBackend(model, export_dir) if isinstance(model, S2S) else OnnxDeAOTBackend(model, export_dir)
