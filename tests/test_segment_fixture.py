"""`vosuite segment` at its defaults reproduces aot-benchmark's DeAOT-T labels on the fixture.

The fixture (``fixtures/deaot_t/README.md``) ran the original code on 6 DAVIS-2016 frames of
``blackswan`` from the 480x854 annotation of frame 0 (nearest-resized to the 481x849 network
input, 41168 foreground pixels). Here the original checkpoint is converted with
``vosuite convert aot`` and the CLI runs on a temporary folder of links to those frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import SHARED_ROOT, requires_shared, shared_path
from vosuite.cli import main
from vosuite.io.masks import read_mask

FIXTURE = SHARED_ROOT / "fixtures/deaot_t"

pytestmark = requires_shared("fixtures/deaot_t/weights.pt", "DeAOT-T fixture")


def _unpack(packed: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    return np.unpackbits(packed.numpy())[: shape[0] * shape[1]].reshape(shape)


def test_segment_cli_reproduces_the_original(tmp_path, capsys):
    inputs = torch.load(FIXTURE / "inputs.pt", weights_only=True)
    outputs = torch.load(FIXTURE / "outputs.pt", weights_only=True)
    rel = Path(inputs["frame_dir"])  # "shared/data/davis2016/JPEGImages/480p/blackswan"
    frame_dir = shared_path(rel)
    annotation = Path(str(frame_dir).replace("JPEGImages", "Annotations")) / "00000.png"
    if not frame_dir.is_dir() or not annotation.is_file():
        pytest.skip(f"fixture frames or annotation not found under {frame_dir.parent}")
    # the fixture's reference mask is the annotation (0/255) nearest-resized to the network input
    ann = torch.from_numpy((read_mask(annotation) > 0).astype(np.float32))[None, None]
    ref = _unpack(inputs["ref_label_packed"], tuple(inputs["ref_label_shape"][-2:]))
    assert np.array_equal(F.interpolate(ann, size=ref.shape, mode="nearest")[0, 0].numpy(), ref)

    frames = tmp_path / "frames"
    frames.mkdir()
    for name in inputs["frame_files"]:
        (frames / name).symlink_to(frame_dir / name)
    ckpt = tmp_path / "deaot-t.pt"
    assert main(["convert", "aot", str(FIXTURE / "weights.pt"), str(ckpt)]) == 0
    out = tmp_path / "out"
    assert main(["segment", str(frames), "--mask", str(annotation), "--checkpoint", str(ckpt),
                 "--out", str(out), "--no-progress"]) == 0
    assert "segmented 6 frames" in capsys.readouterr().out

    shape = tuple(outputs["label_shape"])
    agreements = []
    for t, name in enumerate(inputs["frame_files"][1:]):
        got = read_mask(out / f"{Path(name).stem}.png")
        expected = _unpack(outputs["labels_packed"][t], shape)
        agreements.append(float((got == expected).mean()))
    assert min(agreements) >= 0.999, agreements
    assert np.array_equal(read_mask(out / "00000.png"), (read_mask(annotation) > 0).astype(np.uint8))
