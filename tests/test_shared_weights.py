"""Shipped weights that share frozen tensors with another shipped model (vosuite.checkpoints.shared):
written only when the shared part is bit-identical, loaded back exactly, refused when the other
file changed; and model.frozen_prefixes, which keeps that part frozen in training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vosuite.checkpoints.vosuite_format import StorageOptions
from vosuite.cli import main
from vosuite.errors import InputError
from vosuite.factory import create_model, save_model
from vosuite.training.config import load_config
from vosuite.training.methods.deaot.method import build_trainable_deaot

SHARE_ENCODER = StorageOptions(share_from="deaot-t-deform", share_prefixes=("encoder.",))

REPO = Path(__file__).resolve().parents[1]


def fine_tuned_decoder() -> torch.nn.Module:
    """The default student with its decoder changed, as a fine-tune with a frozen encoder leaves it."""
    model = create_model("deaot-t-deform")
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith("decoder."):
                param.add_(0.01 * torch.randn(param.shape, generator=torch.Generator().manual_seed(0)))
    return model


def test_shared_tensors_are_left_out_and_loaded_back_exactly(tmp_path: Path) -> None:
    model = fine_tuned_decoder()
    whole, shared = tmp_path / "whole.pt", tmp_path / "shared.pt"
    save_model(model, whole)
    save_model(model, shared, storage=SHARE_ENCODER)
    stored = torch.load(shared, map_location="cpu", weights_only=True)
    assert not any(name.startswith("encoder.") for name in stored["state_dict"])
    assert stored["shared_weights"]["model"] == "deaot-t-deform"
    encoder_bytes = sum(t.numel() * t.element_size() for n, t in model.state_dict().items() if n.startswith("encoder."))
    assert whole.stat().st_size - shared.stat().st_size > 0.99 * encoder_bytes
    loaded = create_model(weights=shared).state_dict()
    assert all(torch.equal(loaded[name], tensor) for name, tensor in model.state_dict().items())


def test_a_trained_shared_tensor_or_a_changed_base_is_refused(tmp_path: Path) -> None:
    model = fine_tuned_decoder()
    with pytest.raises(InputError, match="decoder.* differs from deaot-t-deform's"):
        save_model(model, tmp_path / "x.pt", storage=StorageOptions(share_from="deaot-t-deform",
                                                                    share_prefixes=("decoder.",)))
    out = save_model(model, tmp_path / "ok.pt", storage=SHARE_ENCODER)
    payload = torch.load(out, map_location="cpu", weights_only=True)
    payload["shared_weights"]["sha256"] = "0" * 64  # made against another release of the default's weights
    torch.save(payload, out)
    with pytest.raises(InputError, match="shares tensors with deaot-t-deform's weights of sha256 000000000000"):
        create_model(weights=out)


def test_frozen_float32_weights_match_their_float16_file_but_a_trained_one_does_not(tmp_path: Path) -> None:
    """A fine-tune from float32 weights whose shipped file stores them as float16: the frozen part
    is equal once rounded to float16, the precision both files store; a change above float16's
    resolution is still refused."""
    model = fine_tuned_decoder()
    with torch.no_grad():
        weight = model.encoder.features[0][0].weight  # the shipped float16 values, as float32
        weight.add_(weight.abs() * 2.0**-13)  # below float16's 2**-11 relative step: the float32 "original"
        assert torch.equal(weight.half().float(), create_model("deaot-t-deform").encoder.features[0][0].weight)
        assert not torch.equal(weight, create_model("deaot-t-deform").encoder.features[0][0].weight)
    save_model(model, tmp_path / "ok.pt", storage=SHARE_ENCODER)
    with torch.no_grad():
        weight.mul_(1.01)  # trained
    with pytest.raises(InputError, match="encoder.features.0.0.weight differs"):
        save_model(model, tmp_path / "x.pt", storage=SHARE_ENCODER)


def test_convert_half_shares_from_the_cli(tmp_path: Path, capsys) -> None:
    model = fine_tuned_decoder()
    save_model(model, tmp_path / "run.pt")
    out = tmp_path / "shipped.pt"
    assert main(["convert", "half", str(tmp_path / "run.pt"), str(out), "--int8", "--share-from", "deaot-t-deform",
                 "--share-prefix", "encoder."]) == 0
    assert out.stat().st_size < 5.6 * 2**20  # the int8 rest only: the encoder stays in the default's file
    loaded = create_model(weights=out).state_dict()
    assert all(torch.equal(loaded[n], t) for n, t in model.state_dict().items() if n.startswith("encoder."))
    assert main(["convert", "half", str(tmp_path / "run.pt"), str(tmp_path / "y.pt"), "--share-prefix", "x"]) == 2
    assert "--share-prefix applies to --share-from" in capsys.readouterr().err


def test_frozen_prefixes_freeze_the_named_parameters() -> None:
    config = load_config(REPO / "configs" / "smoke.yaml", ["model.frozen_prefixes=[encoder.]"])
    model = build_trainable_deaot(config)
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {name for name, _ in model.named_parameters() if name.startswith("encoder.")}
    with pytest.raises(InputError, match="no parameter of deaot-t starts with 'nothing.'"):
        build_trainable_deaot(load_config(REPO / "configs" / "smoke.yaml", ["model.frozen_prefixes=[nothing.]"]))
