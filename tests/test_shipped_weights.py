"""The student weights that ship in the package: format, size, default-model lookup, the demo."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vosuite.cli import main
from vosuite.inference.weights import DEFAULT_MODEL, WEIGHTS_DIR, load_model, packaged_weights
from vosuite.segment import Segmenter

SHIPPED = WEIGHTS_DIR / "deaot-t-deform.pt"


def test_shipped_student_is_a_small_float16_vosuite_checkpoint() -> None:
    assert DEFAULT_MODEL == "deaot-t-deform" and packaged_weights(DEFAULT_MODEL) == SHIPPED
    assert SHIPPED.stat().st_size <= 20 * 2**20  # issue 5: float16, at most 20 MB
    ckpt = torch.load(SHIPPED, map_location="cpu", weights_only=True)
    assert ckpt["format"] == "vosuite" and ckpt["model"]["name"] == "deaot-t-deform"
    assert ckpt["inference"] == {"size": 240}  # trained on 240p frames
    floats = {v.dtype for v in ckpt["state_dict"].values() if v.is_floating_point()}
    assert floats == {torch.float16}
    card = (WEIGHTS_DIR / "deaot-t-deform.md").read_text()
    assert "DAVIS-2016" in card and "configs/deaot_t_davis16.yaml" in card


def test_default_model_loads_the_shipped_weights_in_float32() -> None:
    model = load_model()
    assert model.cfg.name == "deaot-t-deform" and model.default_size == 240
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert Segmenter(progress=False).size == 240


def test_demo_runs_the_shipped_student(tmp_path: Path) -> None:
    """The README demo: the student follows the generated objects far better than repeating the
    first mask (J&F 0.123 on this clip; the shipped student measured 0.386)."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["global"]["J&F-Mean"] > 0.3
    assert len(list((out / "predictions" / "shapes").glob("*.png"))) == 40
