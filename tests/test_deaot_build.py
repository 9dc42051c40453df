"""DeAOT variants, checkpoint loading (wrappers, strict key checks) and the step-wise engine."""

from __future__ import annotations

import pytest
import torch

from vosuite.checkpoints.state_dict import extract_state_dict
from vosuite.errors import InputError
from vosuite.factory import create_model
from vosuite.inference import MemoryConfig, deaot_step, network_input_size, start_memory
from vosuite.models import VARIANTS, DeAOT, get_config


@pytest.fixture(scope="module")
def tiny() -> DeAOT:
    return create_model("deaot-t", weights=None)


def test_variant_configs():
    assert set(VARIANTS) == {"deaot-t", "deaot-s", "deaot-b", "deaot-l", "r50-deaot-l"}
    assert [VARIANTS[k].num_layers for k in ("deaot-t", "deaot-s", "deaot-b", "deaot-l")] == [1, 2, 3, 3]
    assert VARIANTS["deaot-l"].long_term_mem_gap == 5 and VARIANTS["deaot-b"].long_term_mem_gap == 9999
    r50 = get_config("R50_DeAOT_L")
    assert r50.encoder == "resnet50" and r50.encoder_dims == (256, 512, 1024, 1024) and r50.num_layers == 3
    with pytest.raises(KeyError):
        get_config("deaot-xl")
    with pytest.raises(InputError, match="unknown model .deaot-xl.; known: deaot-t"):
        create_model("deaot-xl", weights=None)


def test_second_layer_parameter_names():
    keys = DeAOT(get_config("deaot-s")).state_dict()
    assert "LSTT.layers.1.id_norm1.weight" in keys and "LSTT.layers.1.linear_ID_U.weight" in keys
    assert keys["LSTT.layers.1.linear_ID_V.weight"].shape == (512, 512)
    assert keys["LSTT.layers.0.linear_ID_V.weight"].shape == (512, 256)
    assert "LSTT.layers.0.id_norm1.weight" not in keys
    assert [k for k in keys if k.startswith("LSTT.decoder_norms")] == ["LSTT.decoder_norms.0.gn.weight",
                                                                       "LSTT.decoder_norms.0.gn.bias"]


def test_checkpoint_wrappers_round_trip(tmp_path, tiny):
    state = {k: v.half() for k, v in tiny.state_dict().items()}
    for i, obj in enumerate([state, {"state_dict": state, "optimizer": {}}, {"ema": state},
                             {"state_dict": {"module." + k: v for k, v in state.items()}}]):
        path = tmp_path / f"ckpt{i}.pth"
        torch.save(obj, path)
        loaded = create_model("deaot-t", weights=path)
        for k, v in loaded.state_dict().items():
            assert v.dtype == torch.float32 and torch.equal(v, state[k].float()), k


def test_checkpoint_strict_errors(tmp_path, tiny):
    state = dict(tiny.state_dict())
    del state["id_norm.weight"]
    state["LSTT.mask_token"] = torch.zeros(1, 1, 256)
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(InputError) as info:
        create_model("deaot-t", weights=path)
    msg = str(info.value)
    assert "\n" not in msg and "1 missing keys (id_norm.weight)" in msg and "1 unexpected keys (LSTT.mask_token)" in msg
    state = dict(tiny.state_dict())
    torch.save(state, path)
    with pytest.raises(InputError, match="does not fit deaot-s"):
        create_model("deaot-s", weights=path)
    with pytest.raises(InputError, match="not found"):
        create_model("deaot-t", weights=tmp_path / "missing.pth")
    with pytest.raises(InputError, match="no state dict"):
        extract_state_dict({"epoch": 3}, "x")


def test_network_input_size():
    assert network_input_size(480, 854) == (481, 849)
    # long edge capped at 1040 first: 720x1280 -> 585x1040; (585-1)/16 = 36.5 rounds half to even
    assert network_input_size(720, 1280) == (577, 1041)
    assert network_input_size(481, 849) == (481, 849)


@pytest.mark.parametrize("name", ["deaot-s", "r50-deaot-l"])
def test_step_multi_layer_memory_growth(name):
    torch.manual_seed(0)
    model = create_model(name, weights=None)
    config = MemoryConfig.for_model(model.cfg, long_term_gap=2)
    img = torch.randn(1, 3, 81, 97)
    label = torch.zeros(1, 1, 81, 97)
    label[..., 20:50, 30:60] = 1
    label[..., 60:, :20] = 2
    with torch.no_grad():
        memory = start_memory(model, img, label, 2, config)
        assert memory.size_2d == (6, 7) and len(memory.groups[0].long_term.layers) == model.cfg.num_layers
        for t in range(1, 5):
            result = deaot_step(model, img + 0.1 * t, memory, config, output_size=(80, 96))
            assert result.label.shape == (1, 1, 80, 96) and int(result.label.max()) <= 2
            memory = result.memory
    # frames 2 and 4 joined the long-term memory (gap 2), newest first
    assert memory.long_term_frames == 3 and memory.frame_step == 4
    assert memory.groups[0].long_term.refs == (False, False, True)
    assert memory.groups[0].attended_short_term[0].key.shape == (1, 128, 6, 7)
    assert result.logits[0].shape == (1, 11, 21, 25)


def test_step_rejects_bad_inputs(tiny):
    config = MemoryConfig.for_model(tiny.cfg)
    img = torch.randn(1, 3, 65, 65)
    with pytest.raises(InputError, match="no object"):
        start_memory(tiny, img, torch.zeros(1, 1, 65, 65), 0, config)
    with pytest.raises(InputError, match="sizes differ"):
        start_memory(tiny, img, torch.zeros(1, 1, 33, 33), 1, config)
    with torch.no_grad():
        memory = start_memory(tiny, img, torch.ones(1, 1, 65, 65), 1, config)
        with pytest.raises(InputError, match="differs from the reference"):
            deaot_step(tiny, torch.randn(1, 3, 81, 81), memory, config)
