"""Training engine: config + overrides, schedule, EMA, exact resume, validation, CLI, plot-log.

Every run uses ``configs/smoke.yaml`` (deaot-t, 65x65 clips of 3 frames, batch 2, one thread) on a
generated clip, so no shared data is needed; each run takes about a second.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from vosuite.checkpoints.resume import LAST, load_training_checkpoint
from vosuite.cli import main
from vosuite.datasets.synthetic import SyntheticClipConfig, write_clip
from vosuite.errors import InputError
from vosuite.factory import create_model
from vosuite.training.config import TrainConfig, load_config, save_config
from vosuite.training.ema import ExponentialMovingAverage, ema_decay
from vosuite.training.engine import StepBatchSampler, Trainer
from vosuite.training.run_log import read_metrics
from vosuite.training.schedule import Schedule, learning_rate

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke.yaml"


@pytest.fixture(scope="module")
def clip_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips"), SyntheticClipConfig(num_frames=8, height=72, width=96))


def smoke(clip_root: Path, *overrides: str) -> TrainConfig:
    return load_config(SMOKE, [f"data.root={clip_root}", f"val.root={clip_root}", *overrides])


# -- config ---------------------------------------------------------------------------------------


def test_overrides_are_typed_by_the_dataclass() -> None:
    config = load_config(
        SMOKE,
        [
            "train.total_steps=7",
            "data.size=[32,48]",
            "optim.lr=1e-3",
            "model.checkpoint=w.pt",
            "val.split=none",
            "train.amp=true",
            "val.videos=[a,b]",
        ],
    )
    assert config.train.total_steps == 7 and config.data.size == (32, 48)
    assert config.optim.lr == pytest.approx(1e-3) and isinstance(config.optim.lr, float)
    assert config.model.checkpoint == "w.pt" and config.val.split is None and config.train.amp is True
    assert config.val.videos == ["a", "b"]


@pytest.mark.parametrize(
    "override", ["train.nope=1", "train.total_steps=abc", "train.amp=3", "data.size=[1]", "novalue"]
)
def test_bad_overrides_name_the_key(override: str) -> None:
    with pytest.raises(InputError):
        load_config(SMOKE, [override])


@pytest.mark.parametrize("name", ["smoke.yaml", "deaot_t_davis16.yaml", "deaot_l_teacher_davis16.yaml"])
def test_shipped_configs_load_and_round_trip(name: str, tmp_path: Path) -> None:
    config = load_config(REPO / "configs" / name)
    assert load_config(save_config(config, tmp_path / "c.yaml")) == config


# -- schedule, EMA, sampler -----------------------------------------------------------------------


def test_learning_rate_is_aot_warmup_then_poly() -> None:
    total, warm = 1000, 50.0
    assert learning_rate(0, 2e-4, 2e-5, total, warm) == pytest.approx(2e-5)
    assert learning_rate(25, 2e-4, 2e-5, total, warm) == pytest.approx(2e-5 + 1.8e-4 * 0.5)
    expected = 2e-5 + 1.8e-4 * (1 - 450 / 951) ** 0.9
    assert learning_rate(500, 2e-4, 2e-5, total, warm) == pytest.approx(expected)
    optimizer = torch.optim.AdamW(
        [
            {"params": [torch.nn.Parameter(torch.zeros(1))], "name": "encoder.decay"},
            {"params": [torch.nn.Parameter(torch.zeros(1))], "name": "body.decay.frozen"},
        ]
    )
    schedule = Schedule(2e-4, 2e-5, total, 0.05, encoder_lr_ratio=0.1)
    now = schedule.apply(optimizer, 500, freeze=True)
    assert optimizer.param_groups[0]["lr"] == pytest.approx((now - 2e-5) * 0.1 + 2e-5)
    assert optimizer.param_groups[1]["lr"] == 0 and optimizer.param_groups[1]["weight_decay"] == 0


def test_ema_follows_aot_decay_warmup() -> None:
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = ExponentialMovingAverage(model, ema_decay(100, 0.1))
    assert ema.decay == pytest.approx(0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # decay min(0.9, 2 / 11)
    assert ema.shadow["weight"].item() == pytest.approx(1 - 2 / 11)


def test_ema_averages_batch_norm_statistics_with_the_weights() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3)).train()
    ema = ExponentialMovingAverage(model, 0.5)
    expected_mean = model[1].running_mean.clone().double()
    for step in range(3):
        model(torch.randn(4, 2, 5, 5) + step)  # moves the running statistics
        decay = min(0.5, (2 + step) / (11 + step))
        expected_mean = decay * expected_mean + (1 - decay) * model[1].running_mean.double()
        ema.update(model)
    assert set(ema.buffers) == {"1.running_mean", "1.running_var"}  # num_batches_tracked is an int
    assert torch.allclose(ema.buffers["1.running_mean"].double(), expected_mean, atol=1e-6)
    copy = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3))
    ema.copy_to(copy)
    assert torch.equal(copy[1].running_mean, ema.buffers["1.running_mean"])
    state = ema.state_dict()
    restored = ExponentialMovingAverage(copy, 0.1)
    restored.load_state_dict(state)
    assert torch.equal(restored.buffers["1.running_var"], ema.buffers["1.running_var"])
    del state["buffers"]  # a state saved before statistics were averaged restarts from the model's
    resumed = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3))
    resumed[1].running_mean.fill_(0.25)
    older = ExponentialMovingAverage(copy, 0.1)
    older.load_state_dict(state, resumed)
    assert torch.equal(older.buffers["1.running_mean"], torch.full((3,), 0.25))
    assert torch.equal(older.shadow["0.weight"], ema.shadow["0.weight"])


def test_loss_smoothing_is_a_trailing_mean() -> None:
    from vosuite.training.plot import _smoothed

    values = [1.0, 3.0, 5.0, 7.0]
    assert _smoothed(values, 1) == values
    assert _smoothed(values, 2) == [1.0, 2.0, 4.0, 6.0]
    assert _smoothed(values, 10) == [1.0, 2.0, 3.0, 4.0]


def test_step_sampler_shards_the_global_batch() -> None:
    single = list(StepBatchSampler(1, 3, per_rank=4))
    shards = [list(StepBatchSampler(1, 3, per_rank=2, world_size=2, rank=r)) for r in range(2)]
    assert single == [[4, 5, 6, 7], [8, 9, 10, 11]]
    assert [a + b for a, b in zip(*shards, strict=True)] == single


# -- training runs --------------------------------------------------------------------------------


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def test_resume_continues_the_same_loss_curve_exactly(clip_root: Path, tmp_path: Path) -> None:
    config = smoke(clip_root, "train.total_steps=4", "train.checkpoint_every=2")
    full = Trainer(config, run_dir=tmp_path / "full")
    full_losses = [r["loss"] for r in full.fit()]

    killed = Trainer(config, run_dir=tmp_path / "killed")
    first = killed.fit(stop_after=3)  # step 3 ran but was never checkpointed: it is redone
    assert load_training_checkpoint(tmp_path / "killed" / LAST)["step"] == 2
    resumed = Trainer(config, run_dir=tmp_path / "killed", resume=True)
    assert resumed.step == 2
    rest = resumed.fit()

    assert [r["loss"] for r in first[:2] + rest] == full_losses
    assert rest[0]["loss"] == first[2]["loss"]
    for key, value in _weights(full).items():
        assert torch.equal(value, _weights(resumed)[key]), key
    assert [r["step"] for r in read_metrics(tmp_path / "killed") if r["kind"] == "train"] == [1, 2, 3, 4]
    assert all(math.isfinite(x) for x in full_losses)


def test_validation_keeps_the_best_checkpoint_without_touching_training(clip_root: Path, tmp_path: Path) -> None:
    plain = Trainer(smoke(clip_root, "train.total_steps=2"), run_dir=tmp_path / "plain").fit()
    trainer = Trainer(smoke(clip_root, "train.total_steps=2", "val.every=2"), run_dir=tmp_path / "val")
    validated = trainer.fit()
    assert [r["loss"] for r in validated] == [r["loss"] for r in plain]
    val = [r for r in read_metrics(tmp_path / "val") if r["kind"] == "val"]
    assert [r["step"] for r in val] == [2] and 0.0 <= val[0]["J&F-Mean"] <= 1.0
    assert trainer.best.step == 2
    assert create_model(weights=tmp_path / "val" / "best.pt").cfg.name == "deaot-t"
    assert (tmp_path / "val" / "final.pt").is_file()


def test_cli_train_resume_and_plot_log(clip_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = tmp_path / "runs"
    args = [
        "train",
        "--config",
        str(SMOKE),
        f"data.root={clip_root}",
        f"val.root={clip_root}",
        "train.total_steps=2",
        "--out",
        str(runs),
    ]
    assert main(args) == 0
    (run,) = runs.iterdir()
    saved = load_config(run / "config.yaml")
    assert saved.train.total_steps == 2 and saved.data.root == str(clip_root)
    assert main(["train", "--resume", str(run), "train.total_steps=3"]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert main(["plot-log", str(run), "--out", str(tmp_path / "curves.png")]) == 0
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    both = tmp_path / "both.png"
    assert main(["plot-log", str(run), str(run), "--names", "a", "b", "--smooth", "2", "--out", str(both)]) == 0
    assert both.read_bytes()[:4] == b"\x89PNG"
    assert main(["plot-log", str(run), str(run)]) == 2  # several runs need --out
    assert "--out" in capsys.readouterr().err
    from vosuite.training.plot import _batch_size, _series

    assert _batch_size(run) == saved.train.batch_size
    assert _series(records, "train", "loss", per_step=saved.train.batch_size)[0] == [
        step * saved.train.batch_size for step in (1, 2, 3)]
    clips = tmp_path / "clips.png"
    assert main(["plot-log", str(run), "--x", "clips", "--baseline", "flow=0.378", "--out", str(clips)]) == 0
    assert clips.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit) as refused:  # argparse's exit, one line (tests/test_bad_input.py)
        main(["plot-log", str(run), "--baseline", "flow", "--out", str(tmp_path / "x.png")])
    assert refused.value.code == 2
    assert "LABEL=J&F" in capsys.readouterr().err
    keyed = tmp_path / "lr.png"
    assert main(["plot-log", str(run), "--keys", "lr", "grad_norm", "--out", str(keyed)]) == 0
    assert keyed.read_bytes()[:4] == b"\x89PNG"
    assert main(["plot-log", str(run), "--keys", "lr", "teacher_entropy", "--out", str(keyed)]) == 2
    assert "--keys: no run logged teacher_entropy" in capsys.readouterr().err
    assert main(["train"]) == 2
    capsys.readouterr()


def test_deaot_refuses_crops_that_are_not_16n_plus_1() -> None:
    """align_corners models need 16n+1 crops: 192 px crops cost 7x in dev J&F in a pilot run."""
    from vosuite.training.methods.deaot.method import DeAOTMethod, check_crop_size

    good = load_config(SMOKE, ["data.size=[193,65]"])
    check_crop_size(good)
    bad = load_config(SMOKE, ["data.size=[192,192]"])
    with pytest.raises(InputError, match=r"16n\+1.*\[193, 193\]"):
        DeAOTMethod(bad)


def test_trainable_encoder_norms_save_the_inference_layout(clip_root: Path, tmp_path: Path) -> None:
    """encoder_norm=batch trains nn.BatchNorm2d layers; the saved weights load strictly into the
    inference network (frozen norms) and give the live model's eval-mode output."""
    from vosuite.training.methods.deaot.method import DeAOTMethod

    config = smoke(clip_root, "train.total_steps=2", "model.encoder_norm=batch", "model.encoder_freeze_at=0")
    trainer = Trainer(config, run_dir=tmp_path / "bn")
    trainer.fit()
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in trainer.model.modules())
    loaded = create_model(weights=tmp_path / "bn" / "final.pt")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in loaded.modules())
    live = trainer.ema_model()
    img = torch.randn(1, 3, 65, 65)
    with torch.no_grad():
        pairs = zip(loaded.encode_image(img), live.encode_image(img), strict=True)
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in pairs)
    with pytest.raises(InputError, match="encoder_freeze_at=0"):
        DeAOTMethod(smoke(clip_root, "model.encoder_norm=batch"))
    with pytest.raises(InputError, match="encoder_norm"):
        DeAOTMethod(smoke(clip_root, "model.encoder_norm=group", "model.encoder_freeze_at=0"))
