"""S2S / S2S++ training through the engine (``method: s2s``): the shipped configs run a few steps
on a generated clip (64x64 crops of 3 frames, batch 2), save checkpoints that ``load_model`` reads,
validate with the evaluator, and resume exactly."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from vosuite.checkpoints.resume import LAST, load_training_checkpoint
from vosuite.datasets.synthetic import SyntheticClipConfig, write_clip
from vosuite.errors import InputError
from vosuite.factory import create_model
from vosuite.models.s2s import S2S
from vosuite.training.config import TrainConfig, load_config, save_config
from vosuite.training.engine import Trainer
from vosuite.training.methods import method_class
from vosuite.training.methods.deaot.method import DeAOTMethod
from vosuite.training.methods.s2s.method import S2SMethod
from vosuite.training.run_log import read_metrics

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {"s2s_davis16": "s2s-mnv2", "s2s_dist_davis16": "s2s-dist-mnv2", "s2spp_davis16": "s2spp-mnv2"}


@pytest.fixture(scope="module")
def clip_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips"), SyntheticClipConfig(num_frames=8, height=72, width=96))


def tiny(name: str, clip_root: Path, *overrides: str) -> TrainConfig:
    """A shipped config on the generated clip: 64x64 crops, 3 frames, batch 2, 3 steps."""
    return load_config(REPO / "configs" / f"{name}.yaml", [
        "data.dataset=generic", f"data.root={clip_root}", "data.split=null", "data.size=[64,64]",
        "data.num_frames=3", "data.max_gap=2", "data.min_object_pixels=10", "data.workers=0",
        "train.total_steps=3", "train.checkpoint_every=3", "train.progress=false",
        "val.every=0", "val.dataset=generic", f"val.root={clip_root}", "val.split=null", "val.size=64", *overrides])


@pytest.mark.parametrize("name", list(CONFIGS))
def test_shipped_configs_load_and_round_trip(name: str, tmp_path: Path) -> None:
    config = load_config(REPO / "configs" / f"{name}.yaml")
    assert load_config(save_config(config, tmp_path / "c.yaml")) == config
    assert config.method == "s2s" and config.model.name == CONFIGS[name]
    assert all(side % 32 == 0 for side in config.data.size) and config.val.split == "val-dev"
    assert isinstance(method_class(config.method)(config), S2SMethod)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_engine_steps_save_a_checkpoint_that_loads(name: str, clip_root: Path, tmp_path: Path) -> None:
    validate = name == "s2spp_davis16"  # one config also validates with the evaluator
    every = name != "s2s_davis16"  # the others stack every object of a clip (the shipped configs: one)
    config = tiny(name, clip_root, *(["val.every=3"] if validate else []), *(["s2s.objects=all"] * every))
    trainer = Trainer(config, run_dir=tmp_path / "run")
    history = trainer.fit()
    assert len(history) == 3 and all(math.isfinite(r["loss"]) for r in history)
    # one object per clip: 2 sequences; every object: as many as the clips' objects (2 each here)
    assert all(r["sequences"] >= 2 if every else r["sequences"] == 2 for r in history)
    assert any(r["sequences"] > 2 for r in history) == every
    assert ("distance" in history[0]) == (name != "s2s_davis16")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in trainer.model.initializer.modules())
    loaded = create_model(weights=tmp_path / "run" / "final.pt")
    assert isinstance(loaded, S2S) and loaded.cfg.name == CONFIGS[name] and loaded.default_size == 64
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in loaded.modules())
    # the saved weights are the EMA model in the inference layout
    live = trainer.ema_model()
    img, mask = torch.randn(1, 3, 64, 64), torch.zeros(1, 1, 64, 64)
    mask[..., 20:40, 20:40] = 1
    with torch.no_grad():
        a = loaded.step(img, loaded.initial_state(img, mask)).mask_logits
        b = live.step(img, live.initial_state(img, mask)).mask_logits
    assert torch.allclose(a, b, atol=1e-4)
    if validate:
        val = [r for r in read_metrics(tmp_path / "run") if r["kind"] == "val"]
        assert [r["step"] for r in val] == [3] and 0.0 <= val[0]["J&F-Mean"] <= 1.0
        assert create_model(weights=tmp_path / "run" / "best.pt").cfg.name == CONFIGS[name]


def test_resume_continues_the_same_loss_curve(clip_root: Path, tmp_path: Path) -> None:
    config = tiny("s2s_davis16", clip_root, "train.checkpoint_every=2", "train.log_every=1")
    full = [r["loss"] for r in Trainer(config, run_dir=tmp_path / "full").fit()]
    Trainer(config, run_dir=tmp_path / "run").fit(stop_after=3)  # killed during step 3; last.pt: step 2
    assert load_training_checkpoint(tmp_path / "run" / LAST)["step"] == 2
    resumed = Trainer(config, run_dir=tmp_path / "run", resume=True)
    assert resumed.step == 2 and [r["loss"] for r in resumed.fit()] == full[2:]
    assert [r["step"] for r in read_metrics(tmp_path / "run") if r["kind"] == "train"] == [1, 2, 3]


def test_one_object_per_clip(clip_root: Path, tmp_path: Path) -> None:
    method = S2SMethod(tiny("s2s_davis16", clip_root, "s2s.objects=one"))
    batch = {"obj_num": [3, 1, 2], "index": [10, 11, 12]}
    clips, ids = method.sequences(batch)
    assert clips.tolist() == [0, 1, 2] and 1 <= ids[0] <= 3 and ids[1] == 1 and 1 <= ids[2] <= 2
    assert torch.equal(method.sequences(batch)[1], ids)  # a function of (seed, sample index)
    every = S2SMethod(tiny("s2s_davis16", clip_root, "s2s.objects=all"))
    assert [c.tolist() for c in every.sequences(batch)] == [[0, 0, 0, 1, 2, 2], [1, 2, 3, 1, 1, 2]]


def test_bad_configs_are_one_line_errors(clip_root: Path) -> None:
    with pytest.raises(InputError, match=r"multiples of 32.*\[64, 96\]"):
        S2SMethod(tiny("s2s_davis16", clip_root, "data.size=[65,100]"))
    with pytest.raises(InputError, match="S2S variants"):
        S2SMethod(tiny("s2s_davis16", clip_root, "model.name=deaot-t"))
    with pytest.raises(InputError, match="s2s.objects"):
        S2SMethod(tiny("s2s_davis16", clip_root, "s2s.objects=some"))
    with pytest.raises(InputError, match="encoder_freeze_at=0"):
        S2SMethod(tiny("s2s_davis16", clip_root, "model.encoder_freeze_at=2"))
    with pytest.raises(InputError, match="method: s2s"):
        DeAOTMethod(tiny("s2s_davis16", clip_root, "method=deaot"))
