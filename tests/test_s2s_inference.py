"""S2S / S2S++ inference: merging objects, per-object recurrent states (objects added later),
input sizes, checkpoints of either family, and `vosuite segment` / `infer` with an S2S model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import box_frame, box_mask, one_line_error, write_box_clip
from vosuite import Segmenter
from vosuite.cli import main
from vosuite.errors import InputError
from vosuite.factory import create_model, save_model
from vosuite.inference.s2s import S2SInferenceCore, merge_objects, s2s_input_size
from vosuite.io.masks import read_mask, write_mask
from vosuite.models.s2s import S2S, get_s2s_config

H, W, FRAMES = 70, 100, 6  # neither side a multiple of 32


def _tiny(name: str = "s2spp-mnv2") -> S2S:
    cfg = get_s2s_config(name, encoder_width=0.25, hidden=16, fc_channels=32, decoder_channels=(16, 8, 8, 8, 8))
    torch.manual_seed(0)
    return S2S(cfg).eval()


def _frame(t: int, rng: np.random.Generator) -> np.ndarray:
    return box_frame(t, rng, H, W)


def _first_mask() -> np.ndarray:
    return box_mask(H, W)


# -- merging objects --------------------------------------------------------------------------------


def test_soft_aggregation_sums_to_one_and_matches_float64() -> None:
    torch.manual_seed(0)
    prob = torch.rand(1, 3, 16, 24)
    prob[0, 0, 0, 0], prob[0, 1, 0, 1] = 0.0, 1.0  # clamped extremes
    merged = merge_objects(prob, "soft")
    assert merged.shape == (1, 4, 16, 24) and merged.dtype == torch.float32
    assert torch.allclose(merged.sum(dim=1), torch.ones(1, 16, 24), atol=1e-6)
    p = prob.double()
    direct = torch.cat([torch.prod(1 - p, dim=1, keepdim=True), p], dim=1).clamp(1e-5, 1 - 1e-5)
    direct = torch.softmax(torch.log(direct / (1 - direct)), dim=1)
    assert torch.allclose(merged.double(), direct, atol=1e-6)
    # one object: both merges label the pixels where p > 0.5
    single = torch.rand(1, 1, 16, 24)
    for merge in ("soft", "rs2s"):
        assert torch.equal(merge_objects(single, merge).argmax(dim=1), (single[:, 0] > 0.5).long())


def test_rs2s_merge_is_argmax_against_half() -> None:
    prob = torch.tensor([0.4, 0.4, 0.2]).view(1, 3, 1, 1)  # two unsure objects
    assert merge_objects(prob, "rs2s").argmax(dim=1).item() == 0  # RS2S: nothing beats 0.5
    assert merge_objects(prob, "soft").argmax(dim=1).item() == 1  # soft: background 0.6 * 0.6 * 0.8 < 0.4
    torch.manual_seed(1)
    prob = torch.rand(1, 4, 8, 8)
    rs2s = merge_objects(prob, "rs2s")
    assert torch.allclose(rs2s.sum(dim=1), torch.ones(1, 8, 8), atol=1e-6)
    expected = torch.cat([torch.full_like(prob[:, :1], 0.5), prob], dim=1).argmax(dim=1)
    assert torch.equal(rs2s.argmax(dim=1), expected)
    with pytest.raises(InputError, match="unknown merge"):
        merge_objects(prob, "max")


# -- the per-video state ----------------------------------------------------------------------------


def test_input_size_rule() -> None:
    assert s2s_input_size(480, 854) == (256, 448)  # RS2S's input size
    assert s2s_input_size(240, 427, 256) == (256, 448)
    assert s2s_input_size(H, W, 64) == (64, 96)
    assert s2s_input_size(1080, 1920, 480) == (480, 864)
    assert s2s_input_size(10, 1000, 32) == (32, 3200)


def test_outputs_at_input_resolution_and_later_objects() -> None:
    model = _tiny()
    core = S2SInferenceCore(model, size=64)
    rng = np.random.default_rng(0)
    frames = [_frame(t, rng) for t in range(6)]
    before = core.step(frames[0])  # no object yet: background
    assert before.shape == (1, H, W) and not core.labels.any()
    prob = core.step(frames[1], mask=_first_mask() * 7)
    assert core.input_size == (64, 96) and prob.shape == (2, H, W) and core.labels.shape == (H, W)
    assert np.array_equal(core.labels, _first_mask() * 7) and core.object_ids == [7]
    one_object = core.state_bytes
    for t in range(2, 4):
        prob = core.step(frames[t])
        assert prob.shape == (2, H, W) and torch.allclose(prob.sum(0), torch.ones(H, W), atol=1e-6)
        assert core.state_bytes == one_object  # memory: one fixed-size state per object
    assert [h.shape[0] for h, _ in core.state] == [1, 1, 1]
    # a later mask: object 9 starts here, object 7 is corrected (its state restarts from this frame)
    later = np.zeros((H, W), np.uint8)
    later[40:60, 55:85] = 9
    later[12:32, 20:40] = 7
    restarted = [h.clone() for h, _ in core.state]
    prob = core.step(frames[4], mask=later)
    assert prob.shape == (3, H, W) and core.object_ids == [7, 9] and core.slots == [1, 2]
    assert (core.labels[40:60, 55:85] == 9).all() and (core.labels[12:32, 20:40] == 7).all()
    assert torch.equal(prob[2, 40:60, 55:85], torch.ones(20, 30))
    assert [h.shape[0] for h, _ in core.state] == [2, 2, 2] and core.state_bytes == 2 * one_object
    assert not torch.equal(core.state[0][0][:1], restarted[0])
    # the new object's state equals a fresh video started on that frame with that object alone
    alone = S2SInferenceCore(model, size=64)
    alone.step(frames[4], mask=(later == 9) * 9)
    for (h, c), (h1, c1) in zip(core.state, alone.state, strict=True):
        assert torch.allclose(h[1:], h1, atol=1e-6) and torch.allclose(c[1:], c1, atol=1e-6)
    prob = core.step(frames[5])
    assert prob.shape == (3, H, W) and torch.allclose(prob.sum(0), torch.ones(H, W), atol=1e-6)
    with pytest.raises(InputError, match="differs"):
        core.step(np.zeros((H + 1, W, 3), np.uint8))


def test_size_validation_and_merge_option() -> None:
    model = _tiny("s2s-mnv2")
    with pytest.raises(InputError, match=">= 32"):
        S2SInferenceCore(model, size=16)
    with pytest.raises(InputError, match="unknown merge"):
        S2SInferenceCore(model, merge="max")
    core = S2SInferenceCore(model, merge="rs2s")
    rng = np.random.default_rng(0)
    core.step(_frame(0, rng), mask=_first_mask())
    assert core.input_size == (256, 352)  # default size 256: 70x100 -> 256x365.7 -> 256x352
    assert core.step(_frame(1, rng)).shape == (2, H, W)


# -- checkpoints --------------------------------------------------------------------------------


def test_checkpoint_round_trip_family_and_strict_keys(tmp_path: Path) -> None:
    model = _tiny()
    path = save_model(model, tmp_path / "s2s.pt", inference_size=96)
    saved = torch.load(path, weights_only=True)
    assert saved["model"]["family"] == "s2s" and saved["model"]["name"] == "s2spp-mnv2"
    assert saved["model"]["config"]["hidden"] == 16 and saved["inference"] == {"size": 96}
    loaded = create_model(weights=path)
    assert isinstance(loaded, S2S) and loaded.cfg == model.cfg and loaded.default_size == 96
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    assert create_model("S2SPP_MNV2", weights=path).cfg.name == "s2spp-mnv2"
    with pytest.raises(InputError, match="holds s2spp-mnv2 weights, not s2s-mnv2"):
        create_model("s2s-mnv2", weights=path)
    broken = dict(saved, state_dict=dict(saved["state_dict"]))
    del broken["state_dict"]["heads.merge.bias"]
    broken["state_dict"]["heads.extra"] = torch.zeros(1)
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(InputError, match=r"1 missing keys \(heads.merge.bias\); 1 unexpected keys \(heads.extra\)"):
        create_model(weights=tmp_path / "broken.pt")
    torch.save(dict(saved, model=dict(saved["model"], family="xyz")), tmp_path / "family.pt")
    with pytest.raises(InputError, match="unknown model family 'xyz'"):
        create_model(weights=tmp_path / "family.pt")
    # a plain state dict loads (strictly) into the named variant
    torch.save(create_model("s2s-mnv2", weights=None).state_dict(), tmp_path / "plain.pt")
    assert create_model("s2s-mnv2", weights=tmp_path / "plain.pt").cfg.name == "s2s-mnv2"


def test_checkpoints_without_their_family_or_of_another_version_are_refused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = save_model(create_model("deaot-t", weights=None), tmp_path / "deaot.pt")
    saved = torch.load(path, weights_only=True)
    assert saved["model"]["family"] == "deaot" and saved["version"] == 1
    del saved["model"]["family"]  # as written before S2S existed
    torch.save(saved, tmp_path / "old.pt")
    with pytest.raises(InputError, match="old.pt: vosuite checkpoint without its model's family and name"):
        create_model(weights=tmp_path / "old.pt")
    torch.save({**torch.load(path, weights_only=True), "version": 2}, tmp_path / "new.pt")
    with pytest.raises(InputError, match="new.pt: a vosuite checkpoint of version 2; this vosuite reads version 1"):
        create_model(weights=tmp_path / "new.pt")


def test_model_names() -> None:
    with pytest.raises(InputError, match=r"unknown model 's2s-xl'; known: deaot-t, .*s2spp-mnv2, .*\(see `vosuite"):
        create_model("s2s-xl", weights=None)
    assert create_model("S2S_Dist_MNV2", weights=None).cfg.name == "s2s-dist-mnv2"


# -- the CLI ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> dict[str, Path]:
    paths = write_box_clip(tmp_path_factory.mktemp("s2s_segment"), FRAMES, H, W)
    torch.manual_seed(0)
    random = create_model("s2spp-mnv2", weights=None)
    ckpt = save_model(random, paths["root"] / "s2spp.pt", inference_size=64)
    return {**paths, "ckpt": ckpt, "small": save_model(_tiny("s2s-mnv2"), paths["root"] / "s2s.pt")}


def _segment(case, out: Path, *extra: str) -> int:
    return main(["segment", str(case["frames"]), "--mask", str(case["first"]), "--out", str(out), "--threads", "1",
                 "--no-progress", *extra])


def test_segment_with_s2spp_checkpoint(case, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert _segment(case, out, "--model", "s2spp-mnv2", "--checkpoint", str(case["ckpt"]), "--masks-dir",
                    str(case["later"]), "--overlay", str(tmp_path / "overlay.mp4")) == 0
    text = capsys.readouterr().out
    assert "fps" in text and "peak memory" in text and "(2 objects)" in text
    assert sorted(p.name for p in out.glob("[!.]*")) == [f"{t:05d}.png" for t in range(FRAMES)]
    labels = [read_mask(out / f"{t:05d}.png") for t in range(FRAMES)]
    assert all(x.shape == (H, W) for x in labels) and np.array_equal(labels[0], _first_mask())
    assert all(2 not in np.unique(x) for x in labels[:3]) and (labels[3][40:60, 53:83] == 2).all()
    assert (tmp_path / "overlay.mp4").stat().st_size > 0
    seg = Segmenter(checkpoint=case["ckpt"], progress=False)
    assert seg.size == 64 and seg.core().merge == "soft" and isinstance(seg.core(), S2SInferenceCore)
    assert _segment(case, tmp_path / "rs2s", "--checkpoint", str(case["small"]), "--merge", "rs2s", "--size",
                    "32") == 0


def test_segment_errors_with_s2s(case, tmp_path: Path, capsys) -> None:
    for extra, message in [(["--long-term-gap", "5"], "apply to DeAOT models only"),
                           (["--max-memory-frames", "8"], "apply to DeAOT models only"),
                           (["--size", "16"], "size must be an integer >= 32"),
                           (["--model", "s2s"], "holds s2s-mnv2 weights, not s2s")]:
        assert _segment(case, tmp_path / "o", "--checkpoint", str(case["small"]), *extra) == 2
        assert message in one_line_error(capsys)
    assert _segment(case, tmp_path / "o", "--model", "s2spp") == 2
    err = one_line_error(capsys)
    assert "no trained weights for s2spp" in err and "configs/s2spp_davis16.yaml" in err
    assert "--checkpoint s2spp.pt" in err and "convert aot" not in err
    torch.manual_seed(0)
    deaot = save_model(create_model("deaot-t", weights=None), tmp_path / "deaot.pt")
    assert _segment(case, tmp_path / "o", "--checkpoint", str(deaot), "--merge", "soft") == 2
    assert "--merge applies to S2S models only" in one_line_error(capsys)
    assert main(["convert", "aot", str(deaot), str(tmp_path / "x.pt"), "--model", "s2spp"]) == 2
    assert "not a DeAOT variant" in one_line_error(capsys)


def test_infer_generic_with_s2s_then_eval(case, tmp_path: Path, capsys) -> None:
    gt = tmp_path / "gt"
    rng = np.random.default_rng(1)
    for video in ("alpha", "beta"):
        for t in range(4):
            (gt / "JPEGImages" / video).mkdir(parents=True, exist_ok=True)
            Image.fromarray(_frame(t, rng)).save(gt / "JPEGImages" / video / f"{t:05d}.jpg")
            mask = np.zeros((H, W), np.uint8)
            mask[10 + t:30 + t, 20:40] = 1
            write_mask(gt / "Annotations" / video / f"{t:05d}.png", mask)
    preds = tmp_path / "preds"
    assert main(["infer", "--dataset", "generic", "--root", str(gt), "--out", str(preds), "--model", "s2s-mnv2",
                 "--checkpoint", str(case["small"]), "--size", "64", "--threads", "1", "--no-progress"]) == 0
    assert "segmented 8 frames (2 objects)" in capsys.readouterr().out
    assert sorted(p.name for p in (preds / "beta").iterdir()) == [f"{t:05d}.png" for t in range(4)]
    assert main(["eval", "--gt", str(gt), "--pred", str(preds), "--dataset", "generic", "--no-progress"]) == 0
