"""DINO self-distillation pre-training (`method: dino`): the loss, centring and schedules against
their definitions in float64, the head, multi-crop views, the momentum teacher, and a run whose
teacher backbone Betrayed by Attention loads."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vosuite.checkpoints.dino import build_vit
from vosuite.datasets.synthetic import SyntheticClipConfig, write_clip
from vosuite.errors import InputError
from vosuite.factory import create_model
from vosuite.models.dino import DINOConfig, DINOHead, DINOPretraining
from vosuite.nn.vit import ViTConfig
from vosuite.training.config import load_config
from vosuite.training.data.multicrop import MultiCropConfig, MultiCropDataset, collate_crops, random_resized_crop
from vosuite.training.engine import Trainer
from vosuite.training.methods import method_class
from vosuite.training.methods.dino.losses import dino_loss, teacher_momentum, teacher_temperature, updated_center

REPO = Path(__file__).resolve().parents[1]
TINY = DINOConfig("tiny", ViTConfig("tiny-vit", 16, 32, 2, 2, img_size=32), out_dim=64, hidden_dim=48,
                  bottleneck_dim=16)


def reference_loss(student: np.ndarray, teacher: np.ndarray, center: np.ndarray, ts: float, tt: float) -> float:
    """Algorithm 1 of the paper, sample by sample in float64."""
    views, globals_ = 8, 2
    batch = teacher.shape[0] // globals_
    total, pairs = 0.0, 0
    for t_view in range(globals_):
        for s_view in range(views):
            if s_view == t_view:
                continue
            term = 0.0
            for b in range(batch):
                t = teacher[t_view * batch + b] - center[0]
                p_t = np.exp(t / tt - np.max(t / tt))
                p_t /= p_t.sum()
                s = student[s_view * batch + b] / ts
                log_p_s = s - np.max(s) - np.log(np.exp(s - np.max(s)).sum())
                term += -(p_t * log_p_s).sum()
            total += term / batch
            pairs += 1
    return total / pairs


def test_dino_loss_equals_algorithm_1_and_passes_gradcheck() -> None:
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(8 * 3, 10, generator=generator, dtype=torch.float64)
    teacher = torch.randn(2 * 3, 10, generator=generator, dtype=torch.float64)
    center = torch.randn(1, 10, generator=generator, dtype=torch.float64)
    loss = dino_loss(student, teacher, center, 0.1, 0.04)
    assert loss.item() == pytest.approx(reference_loss(student.numpy(), teacher.numpy(), center.numpy(), 0.1, 0.04),
                                        rel=1e-12)
    torch.autograd.gradcheck(lambda s: dino_loss(s, teacher, center, 0.1, 0.04), (student.requires_grad_(),))


def test_centre_and_schedules_follow_their_definitions() -> None:
    center, teacher = torch.ones(1, 4, dtype=torch.float64), torch.arange(8.0, dtype=torch.float64).view(2, 4)
    assert torch.allclose(updated_center(center, teacher, 0.9), 0.9 * center + 0.1 * teacher.mean(0, keepdim=True),
                          rtol=0, atol=1e-15)  # (1 - 0.9) is 0.1 up to rounding
    assert teacher_momentum(0, 100) == 0.996 and teacher_momentum(100, 100) == 1.0
    assert teacher_momentum(50, 100) == pytest.approx(0.998, abs=1e-15)
    temps = [teacher_temperature(step, 5, 0.04, 0.07) for step in range(7)]
    assert temps[:5] == pytest.approx(list(np.linspace(0.04, 0.07, 5)), abs=1e-15) and temps[5:] == [0.07, 0.07]


def test_head_last_layer_is_weight_normalised_with_a_fixed_gain() -> None:
    torch.manual_seed(0)
    head = DINOHead(32, TINY)
    rows = head.last_layer_weight().norm(dim=1)
    assert torch.allclose(rows, torch.ones_like(rows), atol=1e-6) and not head.last_gain.requires_grad
    out = head(torch.randn(5, 32))
    assert out.shape == (5, 64) and out.abs().max() <= 1 + 1e-6  # unit rows times a unit bottleneck: cosines


def test_multi_crop_forward_equals_one_crop_at_a_time_and_teacher_follows() -> None:
    torch.manual_seed(0)
    pair = DINOPretraining(TINY)
    crops = [torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32), torch.randn(2, 3, 16, 16)]
    together = pair.student.multi_crop(crops)
    apart = torch.cat([pair.student(crop) for crop in crops])
    assert torch.allclose(together, apart, atol=1e-6)  # measured 4e-7 (batched matmuls)
    assert all(torch.equal(t, s) for t, s in zip(pair.teacher.parameters(), pair.student.parameters(), strict=True))
    before = [p.clone() for p in pair.teacher.parameters()]
    with torch.no_grad():
        for p in pair.student.parameters():
            p.add_(1.0)
    pair.update_teacher(0.9)
    for old, new, student in zip(before, pair.teacher.parameters(), pair.student.parameters(), strict=True):
        assert torch.allclose(new, 0.9 * old + 0.1 * student, atol=1e-6)
    assert not any(p.requires_grad for p in pair.teacher.parameters())


def test_random_resized_crop_and_views_are_seeded(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (60, 90, 3), dtype=np.uint8)
    crop = random_resized_crop(rgb, np.random.default_rng(1), 32, (0.4, 1.0))
    assert crop.shape == (32, 32, 3)
    assert np.array_equal(crop, random_resized_crop(rgb, np.random.default_rng(1), 32, (0.4, 1.0)))
    whole = random_resized_crop(rgb, np.random.default_rng(1), 32, (5.0, 6.0))  # no try fits: the centre crop
    assert whole.shape == (32, 32, 3)
    root = write_clip(tmp_path, SyntheticClipConfig(num_frames=5, height=48, width=64))
    from vosuite.datasets import open_dataset

    dataset = MultiCropDataset(open_dataset("generic", root, None), MultiCropConfig(global_size=32, local_size=16,
                                                                                     local_crops=3))
    sample = dataset[2]
    assert len(dataset) == 5 and [tuple(c.shape) for c in sample["crops"]] == [(3, 32, 32)] * 2 + [(3, 16, 16)] * 3
    assert all(torch.equal(a, b) for a, b in zip(sample["crops"], dataset[2]["crops"], strict=True))
    # DINO's sampler: every epoch visits each frame once, in a seeded order of its own
    orders = [[dataset.frame_of(i) for i in range(5)] for dataset.epoch in (0, 1, 0)]
    assert sorted(orders[0]) == sorted(dataset.frames) and len(set(orders[0])) == 5
    assert orders[0] != orders[1] and orders[0] == orders[2]
    assert sample["frame"] == str(dataset.frame_of(2))
    dataset.set_epoch(0)
    batch = collate_crops([{**dataset[i], "index": i} for i in range(2)])
    assert batch["crops"][0].shape == (2, 3, 32, 32) and batch["index"] == [0, 1]


def dino_config(root: Path, *overrides: str, recipe: str = "dino_vits16_davis16"):
    return load_config(REPO / "configs" / f"{recipe}.yaml",
                       [f"data.root={root}", "data.dataset=generic", "data.split=null", "train.total_steps=3",
                        "train.batch_size=2", "train.threads=1", "train.progress=false", "train.log_every=1",
                        "train.checkpoint_every=2", "dino.crops.global_size=32", "dino.crops.local_size=16",
                        "dino.crops.local_crops=2", "dino.freeze_last_layer_steps=2", *overrides])


@pytest.mark.parametrize("backbone", ["vits16", "vitt16"])
def test_dino_run_trains_the_student_moves_the_teacher_and_feeds_bba(backbone: str, tmp_path: Path) -> None:
    root = write_clip(tmp_path / "clip", SyntheticClipConfig(num_frames=4, height=48, width=64))
    trainer = Trainer(dino_config(root, recipe=f"dino_{backbone}_davis16"), run_dir=tmp_path / "run")
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    history = trainer.fit()
    assert len(history) == 3 and all(math.isfinite(row["loss"]) for row in history)
    assert 0 < history[0]["teacher_entropy"] <= history[0]["max_entropy"] + 1e-6
    end = trainer.model.state_dict()
    assert not torch.equal(end["student.backbone.blocks.0.attn.qkv.weight"],
                           start["student.backbone.blocks.0.attn.qkv.weight"])
    assert not torch.equal(end["teacher.backbone.blocks.0.attn.qkv.weight"],
                           start["teacher.backbone.blocks.0.attn.qkv.weight"])
    assert not torch.equal(end["student.head.last_direction"], start["student.head.last_direction"])  # after step 2
    assert not torch.equal(end["center"], start["center"])
    teacher = build_vit(f"dino-{backbone}", tmp_path / "run" / "final.pt")  # the teacher backbone, strictly
    assert torch.equal(teacher.state_dict()["blocks.0.attn.qkv.weight"],
                       end["teacher.backbone.blocks.0.attn.qkv.weight"])
    student = build_vit(f"dino-{backbone}", tmp_path / "run" / "final.pt", part="student")
    live = build_vit(f"dino-{backbone}", tmp_path / "run" / "last.pt")  # the resume file, while a run trains
    assert torch.equal(live.state_dict()["blocks.0.attn.qkv.weight"], end["teacher.backbone.blocks.0.attn.qkv.weight"])
    other = "dino-vits16" if backbone == "vitt16" else "dino-vitt16"
    with pytest.raises(InputError, match=f"no {other} backbone weight in this file"):  # the other width
        build_vit(other, tmp_path / "run" / "final.pt")
    assert not torch.equal(student.state_dict()["blocks.0.attn.qkv.weight"],
                           teacher.state_dict()["blocks.0.attn.qkv.weight"])
    # the recipe that trains the spatio-temporal block on this backbone, then discovery from its run
    bba = load_config(REPO / "configs" / f"bba_{backbone}_davis16.yaml",
                      [f"data.root={root}", "data.dataset=generic", "data.split=null", "data.size=[256,256]",
                       "train.total_steps=1", "train.batch_size=1", "train.threads=1", "train.progress=false",
                       "val.every=0", f"bba.dino_checkpoint={tmp_path / 'run' / 'final.pt'}", "bba.points=2"])
    Trainer(bba, run_dir=tmp_path / "bba").fit()
    from vosuite.unsupervised.discoverer import Discoverer

    discoverer = Discoverer(checkpoint=tmp_path / "bba" / "final.pt", size=32, progress=False)
    assert discoverer.model.cfg.name == f"bba-{backbone}"
    assert torch.equal(discoverer.model.state_dict()["encoder.blocks.0.attn.qkv.weight"],
                       teacher.state_dict()["blocks.0.attn.qkv.weight"])  # the frozen DINO teacher


def test_the_last_layer_stays_frozen_during_its_steps(tmp_path: Path) -> None:
    root = write_clip(tmp_path / "clip", SyntheticClipConfig(num_frames=4, height=48, width=64))
    trainer = Trainer(dino_config(root, "train.total_steps=2"), run_dir=tmp_path / "run")
    start = trainer.model.state_dict()["student.head.last_direction"].clone()
    trainer.fit()
    assert torch.equal(trainer.model.state_dict()["student.head.last_direction"], start)


def test_dino_refuses_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="multiples of the patch size 16"):
        method_class("dino")(dino_config(tmp_path, "dino.crops.local_size=20"))
    with pytest.raises(InputError, match="no validation task"):
        method_class("dino")(dino_config(tmp_path, "val.every=5"))
    with pytest.raises(InputError, match="not deaot-t"):
        method_class("dino")(dino_config(tmp_path, "model.name=deaot-t"))
    with pytest.raises(InputError, match="DINO pre-training network, not a tracker"):
        from vosuite.inference.cores import make_core

        make_core(create_model("dino-pretrain-vits16", weights=None))


def test_student_kl_to_a_fixed_teacher_falls_when_over_fitting_one_batch(tmp_path: Path) -> None:
    """With the teacher and the centre held (no momentum step, centre momentum 1), the loss minus the
    teacher's entropy is the student's KL to the teacher, and it falls. (With the centre moving the
    loss itself may rise: centring raises the teacher's entropy, as it should against collapse.)"""
    root = write_clip(tmp_path / "clip", SyntheticClipConfig(num_frames=4, height=48, width=64))
    method = method_class("dino")(dino_config(root, "dino.center_momentum=1.0"))
    torch.manual_seed(0)
    model = DINOPretraining(TINY).train()
    dataset = method.build_data(model).dataset
    batch = collate_crops([{**dataset[i], "index": i} for i in range(2)])
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    divergences = []
    for _ in range(50):
        loss, logs = method.training_step(model, batch, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        divergences.append(logs["loss"] - logs["teacher_entropy"])
    assert min(divergences) >= -1e-5  # a KL
    ratio = np.mean(divergences[-3:]) / np.mean(divergences[:3])
    assert ratio < 0.07, (ratio, divergences)  # measured 0.065 (50 steps)
