"""Int8 storage of shipped weights (vosuite.checkpoints.int8): against a float64
reference, through save / load, through the CLI."""

from __future__ import annotations

import pytest
import torch

from vosuite.checkpoints.int8 import (
    LEVELS,
    MIN_ELEMENTS,
    SCHEME,
    dequantize_tensor,
    merge_int8_weights,
    quantizable,
    quantize_state_dict,
    quantize_tensor,
)
from vosuite.cli import main
from vosuite.errors import InputError


def test_quantize_matches_a_float64_reference_and_errs_at_most_half_a_step() -> None:
    weight = torch.randn(16, 8, 3, 3, generator=torch.Generator().manual_seed(0)) * torch.logspace(-3, 1, 16)[:, None,
                                                                                                           None, None]
    entry = quantize_tensor(weight)
    assert entry["values"].dtype == torch.int8 and entry["scale"].dtype == torch.float16
    peak = weight.double().abs().reshape(16, -1).amax(1)
    reference_scale = (peak / LEVELS).half()
    reference_scale = torch.where(reference_scale.double() * LEVELS < peak, reference_scale.double() + 2.0 ** (
        torch.floor(torch.log2(reference_scale.double())) - 10), reference_scale.double()).half()  # next float16 up
    assert torch.equal(entry["scale"], reference_scale)
    assert torch.all(entry["scale"].double() * LEVELS >= peak)
    expected = torch.round(weight.double() / reference_scale.double()[:, None, None, None]).clamp(-LEVELS, LEVELS)
    assert torch.equal(entry["values"].double(), expected)
    assert int(entry["values"].abs().amax()) <= LEVELS
    error = (dequantize_tensor(entry).double() - weight.double()).abs().reshape(16, -1).amax(1)
    # half a quantisation step (plus float32 rounding of the product)
    assert torch.all(error <= entry["scale"].double() * 0.5 * (1 + 1e-6))


def test_a_zero_channel_stays_zero() -> None:
    weight = torch.zeros(4, 300)
    weight[1] = torch.linspace(-1, 1, 300)
    back = dequantize_tensor(quantize_tensor(weight))
    assert torch.equal(back[0], torch.zeros(300)) and torch.equal(back[2:], torch.zeros(2, 300))


def test_only_large_matrices_are_quantised() -> None:
    state = {"conv.weight": torch.randn(64, 32, 1, 1), "conv.bias": torch.randn(64), "tiny.weight": torch.randn(4, 4),
             "bn.num_batches_tracked": torch.tensor(3)}
    assert MIN_ELEMENTS <= 64 * 32
    rest, entry = quantize_state_dict(state)
    assert entry["scheme"] == SCHEME and set(entry["tensors"]) == {"conv.weight"}
    assert rest["conv.bias"].dtype == torch.float16 and rest["tiny.weight"].dtype == torch.float16
    assert rest["bn.num_batches_tracked"].dtype == torch.int64
    assert not quantizable(state["conv.bias"]) and quantizable(state["conv.weight"])
    merged = merge_int8_weights(rest, entry, "x.pt")
    assert set(merged) == set(state)
    with pytest.raises(InputError, match="x.pt: int8_weights"):
        merge_int8_weights(rest, {"scheme": "int4"}, "x.pt")
    with pytest.raises(InputError, match="both as int8"):
        merge_int8_weights({**rest, "conv.weight": state["conv.weight"]}, entry, "x.pt")


def test_convert_half_int8_round_trips_a_network(tmp_path, capsys) -> None:
    from vosuite.checkpoints.state_dict import extract_state_dict
    from vosuite.factory import create_model, save_model

    torch.manual_seed(0)
    net = create_model("deaot-t", weights=None)
    full = save_model(net, tmp_path / "full.pt", inference_size=48)
    assert main(["convert", "half", str(full), str(tmp_path / "int8.pt"), "--int8"]) == 0
    assert "int8 + float16" in capsys.readouterr().out
    stored = torch.load(tmp_path / "int8.pt", weights_only=True)
    assert stored["int8_weights"]["tensors"] and stored["inference"] == {"size": 48}
    loaded = create_model(weights=tmp_path / "int8.pt").state_dict()
    assert set(extract_state_dict(stored, "int8.pt")) == set(loaded)
    for key, value in net.state_dict().items():
        if key in stored["int8_weights"]["tensors"]:
            step = stored["int8_weights"]["tensors"][key]["scale"].float()
            step = step.reshape((-1,) + (1,) * (value.dim() - 1))
            assert torch.all((loaded[key] - value).abs() <= step * 0.5 * (1 + 1e-6)), key
        else:
            assert torch.allclose(loaded[key], value.half().float()), key


@pytest.mark.parametrize("damage", ["no-scale", "float-values", "scale-shape", "not-a-dict"])
def test_a_damaged_int8_entry_is_a_one_line_error(damage: str) -> None:
    good = quantize_tensor(torch.randn(8, 200))
    entry = {"no-scale": {"values": good["values"]},
             "float-values": {"values": good["values"].float(), "scale": good["scale"]},
             "scale-shape": {"values": good["values"], "scale": good["scale"][:4]},
             "not-a-dict": [good["values"], good["scale"]]}[damage]
    with pytest.raises(InputError, match=r"^w.pt: int8 tensor layer.weight is damaged"):
        merge_int8_weights({}, {"scheme": SCHEME, "tensors": {"layer.weight": entry}}, "w.pt")
