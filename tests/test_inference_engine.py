"""The pure DeAOT step, its memory rules (gap, cap, references), object groups, the stateful core."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vosuite.errors import InputError
from vosuite.factory import create_model
from vosuite.inference import (
    InferenceCore,
    MemoryConfig,
    aggregate_groups,
    deaot_step,
    preprocess_image,
    resize_label,
    separate_label,
    start_memory,
)
from vosuite.inference.merge import argmax_channels
from vosuite.models import DeAOT
from vosuite.training.methods.deaot.clip_forward import ClipForward, ClipPlan


@pytest.fixture(scope="module")
def tiny() -> DeAOT:
    torch.manual_seed(0)
    return create_model("deaot-t", weights=None)


def _frames(count: int, height: int = 48, width: int = 64, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    return [np.roll(base, shift=t, axis=1) for t in range(count)]


def _tiles(height: int, width: int, count: int) -> np.ndarray:
    """``count`` objects as vertical stripes, ids 1..count."""
    mask = np.zeros((height, width), np.uint8)
    edges = np.linspace(0, width, count + 1).astype(int)
    for i in range(count):
        mask[height // 4: 3 * height // 4, edges[i]:edges[i + 1]] = i + 1
    return mask


def test_pure_step_does_not_mutate_and_core_equals_it(tiny):
    frames = _frames(4)
    mask = _tiles(48, 64, 2)
    config = MemoryConfig(long_term_gap=2)
    core = InferenceCore(tiny, config)
    size = (49, 65)
    with torch.no_grad():
        imgs = [preprocess_image(f, size) for f in frames]
        label = resize_label(torch.from_numpy(mask.astype(np.int64))[None, None], size)
        memory = start_memory(tiny, imgs[0], label, 2, config)
        core.step(frames[0], mask)
        assert core.input_size == size
        for t in range(1, 4):
            before = [x.clone() for x in memory.tensors()]
            img_before = imgs[t].clone()
            result = deaot_step(tiny, imgs[t], memory, config, (48, 64))
            assert memory.frame_step == t - 1  # the input memory is untouched
            assert all(torch.equal(a, b) for a, b in zip(before, memory.tensors(), strict=True))
            assert torch.equal(img_before, imgs[t])
            assert result.memory.frame_step == t
            prob = core.step(frames[t])
            assert torch.equal(prob, result.prob[0])
            assert np.array_equal(core.labels, result.label[0, 0].numpy().astype(np.uint8))
            memory = result.memory
    # long-term frames: reference + frame 2 (gap 2); frame 4 would be next
    assert memory.long_term_frames == 2 and memory.groups[0].long_term.refs == (False, True)
    assert prob.shape == (3, 48, 64) and torch.allclose(prob.sum(0), torch.ones(48, 64))


def test_training_clip_forward_uses_the_inference_memory_rule(tiny):
    """One memory update: a training clip forward fed its own predictions (batch 1, no shuffle)
    gives the logits of the inference step, memory frame for frame, gap and cap included."""
    frames = _frames(6, seed=1)
    mask = _tiles(48, 64, 3)
    size = (49, 65)
    imgs = [preprocess_image(f, size) for f in frames]
    label = resize_label(torch.from_numpy(mask.astype(np.int64))[None, None], size)
    config = MemoryConfig(long_term_gap=2, max_memory_frames=2)
    with torch.no_grad():
        memory = start_memory(tiny, imgs[0], label, 3, config)
        step_logits = []
        for img in imgs[1:]:
            result = deaot_step(tiny, img, memory, config)  # output at the input size
            step_logits.append(result.logits[0])
            memory = result.memory
        labels = torch.zeros(1, len(imgs), 1, *size, dtype=torch.long)
        labels[0, 0] = label.long()
        forward = ClipForward(tiny, labels, [3], shuffle=None, freeze_id=False)
        out = forward.run(torch.cat(imgs)[None], ClipPlan(teacher_forcing=False, memory=config, with_aux=False))
    assert len(out.logits) == len(step_logits) == 5
    for train, infer in zip(out.logits, step_logits, strict=True):
        # live channels (dead ones are masked in training); the batched encoder of the clip rounds
        # differently, by CPU kernel: max |difference| 6.0e-7 (AVX-512), 1.07e-6 (an AVX2-only AMD
        # EPYC), 2.26e-6 (AVX2 only: qemu -cpu Haswell) on logits of magnitude 2.7
        assert (train[:, :4] - infer[:, :4]).abs().max().item() <= 5e-6
    # frames 2 and 4 joined (gap 2), the cap (2) dropped frame 2 but kept the reference
    assert out.memory.long_term.refs == memory.groups[0].long_term.refs == (False, True)
    for train, infer in zip(out.memory.long_term.layers, memory.groups[0].long_term.layers, strict=True):
        assert torch.allclose(train.key, infer.key, rtol=0, atol=1e-6)
        assert torch.allclose(train.id_value, infer.id_value, rtol=0, atol=1e-6)


def test_memory_cap_keeps_references(tiny):
    config = MemoryConfig(long_term_gap=2, max_memory_frames=4)
    core = InferenceCore(tiny, config)
    frames = _frames(30, 32, 32, seed=2)
    mask = _tiles(32, 32, 1)
    hw = None
    for t, frame in enumerate(frames):
        new = None
        if t == 9:  # a second object joins: frame 9 becomes a reference frame
            new = np.zeros((32, 32), np.uint8)
            new[:6, :6] = 2
        core.step(frame, mask if t == 0 else new)
        group = core.memory.groups[0]
        hw = core.memory.size_2d[0] * core.memory.size_2d[1]
        assert group.long_term_frames <= 4
        assert group.long_term.layers[0].key.shape[0] == group.long_term_frames * hw
        assert group.long_term.refs[-1]  # the first reference frame is never dropped
    assert core.memory.groups[0].long_term.refs.count(True) == 2
    assert core.memory.groups[0].long_term_frames == 4
    assert core.object_ids == [1, 2]
    # unbounded (the original's rule), 12 frames: the reference + frames 2, 4, 6, 8, 10
    config = MemoryConfig(long_term_gap=2, max_memory_frames=None)
    core = InferenceCore(tiny, config)
    for t, frame in enumerate(frames[:12]):
        core.step(frame, mask if t == 0 else None)
    assert core.memory.long_term_frames == 1 + 5


def test_new_object_becomes_reference_and_appears(tiny):
    core = InferenceCore(tiny)
    frames = _frames(6, seed=3)
    first = _tiles(48, 64, 1) * 7  # caller's ids are kept (7), internally 1
    new = np.zeros((48, 64), np.uint8)
    new[:10, :10] = 3
    for t, frame in enumerate(frames):
        prob = core.step(frame, first if t == 0 else (new if t == 3 else None))
        if t == 3:
            assert (core.labels[:10, :10] == 3).all()
            assert prob.shape[0] == 3 and bool((prob[2, :10, :10] == 1).all())
            assert core.memory.groups[0].long_term.refs == (True, True)
    assert core.object_ids == [7, 3]
    assert set(np.unique(core.labels)) <= {0, 3, 7}


def test_frames_before_the_first_mask_are_background(tiny):
    core = InferenceCore(tiny)
    frames = _frames(3, seed=4)
    prob = core.step(frames[0])
    assert prob.shape == (1, 48, 64) and not core.labels.any() and core.memory is None
    core.step(frames[1], _tiles(48, 64, 2))
    core.step(frames[2])
    assert core.memory.frame_step == 1


def test_twelve_objects_in_two_groups(tiny):
    core = InferenceCore(tiny)
    frames = _frames(3, 48, 96, seed=5)
    mask = _tiles(48, 96, 12)
    core.step(frames[0], mask)
    assert [g.obj_num for g in core.memory.groups] == [10, 2]
    prob = core.step(frames[1])
    assert prob.shape == (13, 48, 96) and torch.allclose(prob.sum(0), torch.ones(48, 96), atol=1e-5)
    assert set(np.unique(core.labels)) <= set(range(13))
    # objects 9..11 are added later: 9 + 3 -> groups of 10 and 2
    core = InferenceCore(tiny)
    core.step(frames[0], _tiles(48, 96, 9))
    extra = np.zeros((48, 96), np.uint8)
    extra[:5, :5], extra[:5, 10:15], extra[:5, 20:25] = 10, 11, 12
    core.step(frames[1], extra)
    assert [g.obj_num for g in core.memory.groups] == [10, 2]
    assert core.memory.groups[1].long_term.refs == (True,)
    core.step(frames[2])
    assert core.memory.frame_step == 2


def test_soft_aggregation_matches_the_original_formula():
    torch.manual_seed(1)
    logits = [torch.randn(1, 11, 6, 8) * 3, torch.randn(1, 11, 6, 8) * 3]
    obj_nums = [10, 3]
    prob, label = aggregate_groups(logits, obj_nums, (11, 15), align_corners=True)
    # aot-benchmark: dead ids -> -1e10, resize all channels, per-group softmax, product of
    # backgrounds, all 10 foreground channels per group, clamp, logit, softmax, argmax
    probs = []
    for raw, n in zip(logits, obj_nums, strict=True):
        raw = raw.clone()
        raw[:, n + 1:] = -1e10
        up = torch.nn.functional.interpolate(raw, size=(11, 15), mode="bilinear", align_corners=True)
        probs.append(torch.softmax(up, dim=1))
    bg = torch.prod(torch.cat([p[:, :1] for p in probs], dim=1), dim=1, keepdim=True)
    merged = torch.cat([bg] + [p[:, 1:] for p in probs], dim=1).clamp(1e-5, 1 - 1e-5)
    ref_label = torch.argmax(torch.softmax(torch.logit(merged), dim=1), dim=1, keepdim=True)
    assert torch.equal(label, ref_label)
    assert prob.shape == (1, 14, 11, 15)


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5, 11])
def test_argmax_channels_equals_torch_argmax_ties_included(channels):
    generator = torch.Generator().manual_seed(channels)
    # values on a coarse grid, so many pixels tie between channels
    prob = torch.randint(0, 4, (2, channels, 17, 23), generator=generator).float() / 4
    expected = torch.argmax(prob, dim=1, keepdim=True)  # ties: the first maximal channel
    label = argmax_channels(prob)
    assert label.dtype == torch.long and label.shape == (2, 1, 17, 23)
    assert torch.equal(label, expected)


def test_separate_label():
    label = torch.tensor([[0.0, 3, 10, 11, 12, 25]])
    assert separate_label(label, 0, 10).tolist() == [[0, 3, 10, 0, 0, 0]]
    assert separate_label(label, 1, 10).tolist() == [[0, 0, 0, 1, 2, 0]]
    assert separate_label(label, 2, 10).tolist() == [[0, 0, 0, 0, 0, 5]]


def test_size_option_and_bad_inputs(tiny):
    core = InferenceCore(tiny, size=32)
    frames = _frames(2, 64, 96, seed=6)
    core.step(frames[0], _tiles(64, 96, 1))
    core.step(frames[1])
    assert core.input_size == (33, 49) and core.labels.shape == (64, 96)
    with pytest.raises(InputError, match="differs"):
        core.step(frames[1][:32])
    with pytest.raises(InputError, match="mask shape"):
        core.step(frames[1], np.ones((10, 10), np.uint8))
    with pytest.raises(InputError, match="size"):
        InferenceCore(tiny, size=0)
    with pytest.raises(InputError):
        MemoryConfig(max_memory_frames=0)
