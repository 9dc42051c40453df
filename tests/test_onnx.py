"""ONNX export of DeAOT's encoder, propagation and decoder, and `--runtime onnx` (ONNX Runtime) against eager:
on the DeAOT fixture (aot-benchmark's weights and frames) and on a val-dev video with the shipped
student."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SHARED_ROOT, requires_shared, shared_path
from vosuite.cli import main
from vosuite.errors import InputError
from vosuite.factory import create_model
from vosuite.io.frames import open_frames
from vosuite.io.masks import read_mask
from vosuite.onnx.export import export_deaot, export_model, read_manifest
from vosuite.onnx.runtime import OnnxDeAOTBackend
from vosuite.segment import Segmenter

pytest.importorskip("onnxruntime", reason="onnxruntime is an optional extra (vosuite[onnx])")

FIXTURE = SHARED_ROOT / "fixtures/deaot_t"


def compare(eager: Segmenter, fast: Segmenter, frames: list[np.ndarray], mask: np.ndarray) -> tuple[float, float]:
    """(largest probability difference on frames whose memories still agree, share of equal label
    pixels over all frames). Once one pixel at p = 0.5 takes another label, the two memories
    differ and later probabilities may differ by more than rounding (measured on car-shadow: one
    pixel at frame 10, then 3e-3 at frame 11), so the probability bound is checked while every
    earlier label map agreed."""
    eager_core, fast_core = eager.core(), fast.core()
    worst, equal, total, same_memory = 0.0, 0, 0, True
    for index, rgb in enumerate(frames):
        first = mask if index == 0 else None
        difference = float((eager_core.step(rgb, first) - fast_core.step(rgb, first)).abs().max())
        if same_memory:
            worst = max(worst, difference)
        agree = eager_core.labels == fast_core.labels
        same_memory = same_memory and bool(agree.all())
        equal += int(agree.sum())
        total += agree.size
    return worst, equal / total


def test_export_writes_checked_graphs_and_refuses_to_overwrite(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("deaot-s-deform", weights=None)  # two GPM layers
    export = export_deaot(model, tmp_path / "onnx")
    manifest = read_manifest(export.folder)
    assert manifest["model"]["name"] == "deaot-s-deform"
    assert set(manifest["graphs"]) == {"encoder.onnx", "propagation.onnx", "decoder.onnx"}
    with pytest.raises(InputError, match="exists"):
        export_deaot(model, tmp_path / "onnx")
    export.decoder.write_bytes(export.decoder.read_bytes()[:-1])
    with pytest.raises(InputError, match="changed since the export"):
        read_manifest(export.folder)
    with pytest.raises(InputError, match="not a vosuite ONNX export"):
        read_manifest(tmp_path)
    with pytest.raises(InputError, match="covers the DeAOT and S2S families"):
        export_deaot(create_model("s2s-mnv2", weights=None), tmp_path / "s2s")


@requires_shared("fixtures/deaot_t/weights.pt", "DeAOT-T fixture")
def test_onnx_runtime_equals_eager_on_the_deaot_fixture(tmp_path: Path) -> None:
    inputs = torch.load(FIXTURE / "inputs.pt", weights_only=True)
    frame_dir = shared_path(Path(inputs["frame_dir"]))
    annotation = Path(str(frame_dir).replace("JPEGImages", "Annotations")) / "00000.png"
    if not frame_dir.is_dir():
        pytest.skip(f"fixture frames not found under {frame_dir}")
    ckpt = tmp_path / "deaot-t.pt"
    assert main(["convert", "aot", str(FIXTURE / "weights.pt"), str(ckpt)]) == 0
    frames = [f.rgb for f in open_frames(frame_dir)][: len(inputs["frame_files"])]
    mask = (read_mask(annotation) > 0).astype(np.uint8)
    eager = Segmenter(checkpoint=ckpt, progress=False)
    fast = Segmenter(checkpoint=ckpt, progress=False, runtime="onnx")
    worst, equal = compare(eager, fast, frames, mask)
    # the bar is 1e-4 and 99.99 %; measured: 9.1e-06 and 99.99996 % of the pixels
    assert worst < 3e-5 and equal >= 0.99999, (worst, equal)


@requires_shared("data/davis2016/JPEGImages/480p/car-shadow", "DAVIS-2016 val-dev")
def test_onnx_runtime_equals_eager_on_a_dev_video_and_from_the_cli(tmp_path: Path) -> None:
    video = shared_path(Path("data/davis2016/JPEGImages/480p/car-shadow"))
    mask = read_mask(shared_path(Path("data/davis2016/Annotations/480p/car-shadow/00000.png")))
    frames = [f.rgb for f in open_frames(video)][:12]
    worst, equal = compare(Segmenter(progress=False), Segmenter(progress=False, runtime="onnx"), frames, mask)
    # the bar is 1e-4 and 99.99 %; measured: 1.9e-06 and 99.99992 % (4 pixels)
    assert worst < 1e-5 and equal >= 0.99999, (worst, equal)
    assert main(["export", "onnx", str(tmp_path / "graphs")]) == 0
    clip = tmp_path / "clip"
    clip.mkdir()
    for path in sorted(video.glob("*.jpg"))[:4]:
        (clip / path.name).symlink_to(path)
    first = shared_path(Path("data/davis2016/Annotations/480p/car-shadow/00000.png"))
    for runtime, extra in (("eager", []), ("onnx", ["--onnx-dir", str(tmp_path / "graphs")])):
        assert main(["segment", str(clip), "--mask", str(first), "--out", str(tmp_path / runtime), "--no-progress",
                     "--threads", "1", "--runtime", runtime, *extra]) == 0
    for name in ("00001.png", "00003.png"):
        # probabilities agree within 1e-5, so only near-ties can flip: measured 1 and 0 of 409,920
        # pixels (AVX-512 and the AVX2 env alike); bound: the 99.99 % of the issue
        differing = int((read_mask(tmp_path / "eager" / name) != read_mask(tmp_path / "onnx" / name)).sum())
        assert differing <= 0.0001 * 480 * 854, (name, differing)


@pytest.mark.parametrize("name", ["deaot-l", "deaot-s-deform"])
def test_every_decoder_layout_runs(name: str, tmp_path: Path) -> None:
    """Models with several GPM layers: their decoders read only the last layer's output
    (``decoder_intermediate`` is False in every variant), so the exporter drops the other layers'
    inputs and the runtime feeds what the graph declares; their propagation graphs carry every
    layer's memory (vanilla and deformable)."""
    from vosuite.datasets.synthetic import SyntheticClipConfig, write_clip

    root = write_clip(tmp_path / "clip", SyntheticClipConfig(num_frames=4, height=96, width=128))
    torch.manual_seed(0)
    model = create_model(name, weights=None)
    frames = [f.rgb for f in open_frames(root / "JPEGImages" / "shapes")]
    mask = read_mask(root / "Annotations" / "shapes" / "00000.png")
    worst, equal = compare(Segmenter(model, progress=False), Segmenter(model, progress=False, runtime="onnx"),
                           frames, mask)
    assert worst < 3e-6 and equal == 1.0, (worst, equal)  # measured: at most 7.5e-7, every label equal
    whole_step = Segmenter(model, progress=False)
    whole_step.backend = OnnxDeAOTBackend(model, onnx_propagation=True)  # the propagation graph too
    assert whole_step.backend.propagation_session is not None
    worst, equal = compare(Segmenter(model, progress=False), whole_step, frames, mask)
    assert worst < 3e-6 and equal == 1.0, (worst, equal)  # measured: at most 6.6e-7, every label equal


def test_an_export_of_other_weights_is_refused(tmp_path: Path) -> None:
    """The fast student shares the default's network: an export of one must not run the other."""
    from vosuite.factory import create_model

    export_model(create_model("deaot-t-deform-fast"), tmp_path / "fast")
    with pytest.raises(InputError, match="other weights of deaot-t-deform"):
        Segmenter("deaot-t-deform", progress=False, runtime="onnx", onnx_dir=tmp_path / "fast")
    Segmenter("deaot-t-deform-fast", progress=False, runtime="onnx", onnx_dir=tmp_path / "fast")  # its own: fine


def test_runtime_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(InputError, match="--onnx-dir needs --runtime onnx"):
        Segmenter(progress=False, onnx_dir=tmp_path)
    with pytest.raises(InputError, match="covers the DeAOT and S2S families"):
        Segmenter("flow", progress=False, runtime="onnx")
    code = main(["segment", str(tmp_path), "--mask", str(tmp_path / "m.png"), "--out", str(tmp_path / "o"),
                 "--runtime", "onnx", "--onnx-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err


def test_missing_onnxruntime_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    from vosuite.onnx.runtime import require_onnxruntime

    with pytest.raises(InputError, match=r"pip install 'vosuite\[onnx\]'"):
        require_onnxruntime()


def test_int8_export_quantises_the_encoder_and_still_segments(tmp_path: Path) -> None:
    import onnx

    from vosuite.datasets.synthetic import SyntheticClipConfig, write_clip

    root = write_clip(tmp_path / "clip", SyntheticClipConfig(num_frames=12, height=96, width=128))
    out = tmp_path / "int8"
    assert main(["export", "onnx", str(out), "--int8", "--calibration", str(root / "JPEGImages")]) == 0
    manifest = read_manifest(out)
    assert manifest["graphs"]["encoder.onnx"]["int8"] and manifest["graphs"]["encoder.onnx"]["calibration_frames"] == 1
    operators = {node.op_type for node in onnx.load(out / "encoder.onnx").graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= operators
    frames = [f.rgb for f in open_frames(root / "JPEGImages" / "shapes")]
    mask = read_mask(root / "Annotations" / "shapes" / "00000.png")
    _, equal = compare(Segmenter(progress=False), Segmenter(progress=False, runtime="onnx", onnx_dir=out), frames, mask)
    # calibrated on one frame of the clip; ONNX Runtime's int8 kernels differ by CPU. Equal pixels with
    # the earlier student: 0.9957 (AMD EPYC, AVX-512), 0.9950 (Intel Xeon, AVX-512), 0.9901 (AVX2 only:
    # qemu -cpu Haswell), 0.9778 (an AMD EPYC with AVX2 and no AVX-512); with the shipped student
    # (fine-tuned from ImageNet): 0.9987 (AMD EPYC, AVX-512), 0.9887 (qemu -cpu Haswell)
    assert equal > 0.97, equal


@pytest.mark.parametrize("name", ["deaot-t-deform", "deaot-l"])
def test_the_propagation_graph_follows_any_size_and_memory_length(name: str, tmp_path: Path) -> None:
    """The propagation graph (traced at 241 x 433 with two memory frames) against eager at other
    sizes and memory lengths: the deformable grids and the window slots follow the input."""
    import onnxruntime

    from vosuite.onnx.export import PropagationGraph, memory_input_names, sample_memory_inputs

    torch.manual_seed(0)
    model = create_model(name, weights=None).eval()
    for module in model.modules():  # random offsets: the deformable samplers really move
        if module.__class__.__name__ == "OffsetNetwork":
            torch.nn.init.normal_(module.proj.weight, std=0.5)
    export = export_deaot(model, tmp_path / "onnx")
    session = onnxruntime.InferenceSession(str(export.propagation), providers=["CPUExecutionProvider"])
    declared = {node.name for node in session.get_inputs()}
    for height, width, frames in ((193, 289, 3), (321, 225, 1)):
        with torch.no_grad():
            feats = model.encode_image(torch.randn(1, 3, height, width))
            label = torch.zeros(1, 1, height, width, dtype=torch.long)
            label[..., height // 3:height // 2, width // 3:width // 2] = 1
            _, _, own = model.propagate(feats[-1], ref_id_emb=model.id_embedding(model.one_hot(label)))
            memory = sample_memory_inputs(own, tuple(feats[-1].shape[2:]), frames)
            eager = PropagationGraph(model)(feats[-1], *memory)
        names = ["feat16", *memory_input_names(len(own))]
        onnx_out = session.run(None, {n: t.numpy() for n, t in zip(names, (feats[-1], *memory), strict=True)
                                      if n in declared})
        worst = max(float(np.abs(o - e.numpy()).max()) for o, e in zip(onnx_out, eager, strict=True))
        assert worst < 1e-5, (height, width, worst)  # measured: at most 3.1e-6


@pytest.mark.parametrize("name", ["s2spp-mnv2", "s2s-dist-mnv2", "s2s-mnv2"])
def test_s2s_runs_in_onnx_runtime_with_the_eager_masks(name: str, tmp_path: Path) -> None:
    """S2S / S2S++ (encoder, recurrent step with every object in the batch, initial state) in ONNX
    Runtime against eager on a generated two-object clip at a size the graphs were not traced at,
    an object joining at frame 2."""
    from vosuite.datasets.synthetic import SyntheticClipConfig, write_clip
    from vosuite.onnx.export import export_model

    root = write_clip(tmp_path / "clip", SyntheticClipConfig(num_frames=5, height=120, width=200))
    torch.manual_seed(0)
    model = create_model(name, weights=None)
    export = export_model(model, tmp_path / "onnx")
    assert set(read_manifest(export.folder)["graphs"]) == {"encoder.onnx", "propagation.onnx", "initial_state.onnx"}
    frames = [f.rgb for f in open_frames(root / "JPEGImages" / "shapes")]
    mask = read_mask(root / "Annotations" / "shapes" / "00000.png")
    eager, fast = Segmenter(model, progress=False), Segmenter(model, progress=False, runtime="onnx",
                                                               onnx_dir=export.folder)
    eager_core, fast_core = eager.core(), fast.core()
    worst = 0.0
    for index, rgb in enumerate(frames):
        first = np.where(mask == 2, 0, mask) if index == 0 else (mask if index == 2 else None)
        eager_prob, fast_prob = eager_core.step(rgb, first), fast_core.step(rgb, first)
        worst = max(worst, float((eager_prob - fast_prob).abs().max()))
        top2 = eager_prob.topk(2, dim=0).values
        clear = (top2[0] - top2[1] > 1e-5).numpy()  # random weights: many pixels are near ties
        assert np.array_equal(eager_core.labels[clear], fast_core.labels[clear])
    assert worst < 1e-6, worst  # measured: at most 2.7e-7
