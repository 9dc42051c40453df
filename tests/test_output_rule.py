"""The output rule (vosuite.io.output) against the data-loss cases a user review found, one test each:
inputs are never outputs, user files are never replaced without --overwrite, files keep the
user's umask, a second run into a folder in use stops, and vosuite's own leftovers after a kill
are recognised and cleaned instead of blocking the documented recovery."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import requires_shared
from vosuite.cli import main
from vosuite.datasets.synthetic import SyntheticClipConfig, write_clip
from vosuite.io.atomic import atomic_path, is_temporary_name
from vosuite.io.frames import open_frames
from vosuite.io.masks import read_mask, write_mask
from vosuite.io.output import MANIFEST_NAME, OutputFolder, claim_file
from vosuite.io.video_writer import VideoWriter

FAST = ["--model", "copy-first", "--no-progress"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = write_clip(tmp_path_factory.mktemp("clip"), SyntheticClipConfig(num_frames=6, height=48, width=64))
    frames, masks = root / "JPEGImages" / "shapes", root / "Annotations" / "shapes"
    video = root.parent / "in.mp4"
    with VideoWriter(video, fps=10) as writer:
        for frame in open_frames(frames):
            writer.write(frame.rgb)
    return {"root": root, "frames": frames, "masks": masks, "mask": masks / "00000.png", "video": video}


def _segment(clip: dict[str, Path], out: Path, *extra: str) -> int:
    return main(["segment", str(clip["video"]), "--mask", str(clip["mask"]), "--out", str(out), *FAST, *extra])


def test_overlay_onto_the_input_video_is_refused_and_the_video_kept(clip, tmp_path, capsys) -> None:
    video = tmp_path / "in.mp4"
    video.write_bytes(clip["video"].read_bytes())
    before = video.read_bytes()
    assert main(["segment", str(video), "--mask", str(clip["mask"]), "--out", str(tmp_path / "o"), "--overlay",
                 str(video), "--overwrite", *FAST]) == 2
    assert "is the input" in capsys.readouterr().err
    assert video.read_bytes() == before and not (tmp_path / "o").exists()


def test_overlay_folder_of_user_pngs_is_refused_and_kept(clip, tmp_path, capsys) -> None:
    user = tmp_path / "pngs"
    user.mkdir()
    (user / "00000-00002.png").write_bytes(b"user data")
    assert _segment(clip, tmp_path / "o", "--overlay", str(user)) == 2
    assert (user / "00000-00002.png").read_bytes() == b"user data"
    assert _segment(clip, tmp_path / "o", "--overlay", str(user), "--overwrite") == 2
    assert "not written by vosuite" in capsys.readouterr().err
    assert sorted(p.name for p in user.iterdir()) == ["00000-00002.png"]


def test_an_overlay_folder_and_video_vosuite_wrote_are_replaced_on_overwrite(clip, tmp_path) -> None:
    assert _segment(clip, tmp_path / "o", "--overlay", str(tmp_path / "ov")) == 0
    assert _segment(clip, tmp_path / "o2", "--overlay", str(tmp_path / "ov.mp4")) == 0
    assert len(list((tmp_path / "ov").glob("*.png"))) == 6 and (tmp_path / "ov" / MANIFEST_NAME).is_file()
    assert _segment(clip, tmp_path / "o", "--overlay", str(tmp_path / "ov"), "--overwrite") == 0
    assert _segment(clip, tmp_path / "o2", "--overlay", str(tmp_path / "ov.mp4"), "--overwrite") == 0
    assert _segment(clip, tmp_path / "o3", "--overlay", str(tmp_path / "o3" / "ov.mp4")) == 0
    assert "ov.mp4" in (tmp_path / "o3" / MANIFEST_NAME).read_text().split()
    assert _segment(clip, tmp_path / "o3", "--overwrite") == 0  # its own overlay is vosuite's, so replaced
    assert not (tmp_path / "o3" / "ov.mp4").exists()


def test_pack_never_writes_inside_the_predictions(clip, tmp_path, capsys) -> None:
    preds = tmp_path / "p" / "shapes"
    preds.mkdir(parents=True)
    for mask in clip["masks"].glob("*.png"):
        (preds / mask.name).write_bytes(mask.read_bytes())
    before = (preds / "00000.png").read_bytes()
    assert main(["pack", "--pred", str(preds.parent), "--out", str(preds / "00000.png"), "--overwrite"]) == 2
    assert (preds / "00000.png").read_bytes() == before and "lies inside" in capsys.readouterr().err
    assert main(["pack", "--pred", str(preds.parent), "--out", str(tmp_path / "p.zip")]) == 0


def test_eval_plot_never_replaces_a_ground_truth_mask(clip, tmp_path, capsys) -> None:
    gt = clip["masks"] / "00003.png"
    before = gt.read_bytes()
    preds = tmp_path / "p"
    (preds / "shapes").mkdir(parents=True)
    for mask in clip["masks"].glob("*.png"):
        (preds / "shapes" / mask.name).write_bytes(mask.read_bytes())
    assert main(["eval", "--gt", str(clip["root"]), "--pred", str(preds), "--plot", str(gt), "--overwrite",
                 "--no-progress"]) == 2
    assert gt.read_bytes() == before and "lies inside" in capsys.readouterr().err


def test_eval_out_needs_overwrite_for_a_user_file(clip, tmp_path, capsys) -> None:
    preds = tmp_path / "p"
    (preds / "shapes").mkdir(parents=True)
    for mask in clip["masks"].glob("*.png"):
        (preds / "shapes" / mask.name).write_bytes(mask.read_bytes())
    user = tmp_path / "r.csv"
    user.write_text("mine")
    args = ["eval", "--gt", str(clip["root"]), "--pred", str(preds), "--out", str(user), "--no-progress"]
    assert main(args) == 2 and user.read_text() == "mine"
    assert main([*args, "--overwrite"]) == 0
    assert "J&F-Mean" in user.read_text()


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_files_are_created_with_the_users_umask(clip, tmp_path, umask: int) -> None:
    old = os.umask(umask)
    try:
        user = tmp_path / "user.csv"
        user.write_text("mine")
        os.chmod(user, 0o644)
        assert _segment(clip, tmp_path / "o", "--overlay", str(tmp_path / "ov.mp4")) == 0
        preds = tmp_path / "p"
        (preds / "shapes").mkdir(parents=True)
        for mask in sorted((tmp_path / "o").glob("*.png")):
            (preds / "shapes" / mask.name).write_bytes(mask.read_bytes())
        assert main(["eval", "--gt", str(clip["root"]), "--pred", str(preds), "--out", str(user), "--overwrite",
                     "--no-progress"]) == 0
        assert main(["pack", "--pred", str(preds), "--out", str(tmp_path / "p.zip")]) == 0
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    written = [*(tmp_path / "o").glob("*.png"), tmp_path / "ov.mp4", user, tmp_path / "p.zip"]
    assert {oct(stat.S_IMODE(path.stat().st_mode)) for path in written} == {oct(expected)}


def test_two_runs_into_one_empty_folder_never_both_write(clip, tmp_path) -> None:
    """Started together, the second stops at once (the folder is locked, or no longer empty): only
    one run's masks are there, and exactly one run exits 0."""
    out = tmp_path / "o"
    out.mkdir()
    command = [sys.executable, "-m", "vosuite.cli", "segment", str(clip["video"]), "--mask", str(clip["mask"]),
               "--out", str(out), *FAST]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(run.wait(timeout=120), run.stderr.read()) for run in runs]
    assert sorted(code for code, _ in results) == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "in use by another vosuite run" in refused or "not empty" in refused
    assert len(refused.strip().splitlines()) == 1
    assert len(list(out.glob("*.png"))) == 6


def test_leftovers_of_a_killed_run_are_cleaned_by_overwrite(clip, tmp_path) -> None:
    out = tmp_path / "o"
    assert _segment(clip, out) == 0
    leftover = out / ".00004.png.k1ll3d_x.tmp.png"  # what a SIGKILL during an atomic write leaves
    leftover.write_bytes(b"half a png")
    assert is_temporary_name(leftover.name)
    assert _segment(clip, out, "--overwrite") == 0
    assert not leftover.exists() and len(list(out.glob("*.png"))) == 6


def test_a_temporary_file_still_being_written_is_never_removed(clip, tmp_path, capsys) -> None:
    out = tmp_path / "o"
    assert _segment(clip, out) == 0
    with atomic_path(out / "00004.png") as live:  # another process's write in progress (its lock held)
        assert _segment(clip, out, "--overwrite") == 2
        assert "being written by another vosuite run" in capsys.readouterr().err
        assert live.exists()
        live.write_bytes(b"x")


def test_a_killed_overlay_leaves_nothing_that_blocks_the_next_run(clip, tmp_path) -> None:
    stale = tmp_path / ".ov.mp4.abcd1234.tmp.mp4"  # 0 bytes: the overlay writer was killed
    stale.write_bytes(b"")
    assert _segment(clip, tmp_path / "o", "--overlay", str(tmp_path / "ov.mp4")) == 0
    assert not stale.exists() and (tmp_path / "ov.mp4").stat().st_size > 0


def test_claim_file_rules(tmp_path) -> None:
    user = tmp_path / "a.png"
    user.write_bytes(b"mine")
    with pytest.raises(Exception, match="exists"):
        claim_file(user, overwrite=False)
    assert claim_file(user, overwrite=True) == user
    folder = OutputFolder(tmp_path / "o")
    folder.file("x.png").write_bytes(b"vosuite's")
    folder.close()
    assert claim_file(tmp_path / "o" / "x.png", overwrite=False)  # listed in the folder's manifest
    new = claim_file(tmp_path / "o" / "plot.png", overwrite=False)
    assert "plot.png" in (tmp_path / "o" / MANIFEST_NAME).read_text().split() and not new.exists()


def test_plot_log_replaces_its_own_curves_but_not_a_user_file(tmp_path, capsys) -> None:
    import json

    from vosuite.io.output import record_files
    from vosuite.training.engine import RUN_FILES

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps({"kind": "train", "step": s, "loss": 1.0 / s}) + "\n"
                                               for s in range(1, 5)))
    record_files(run, RUN_FILES)
    pytest.importorskip("matplotlib")
    assert main(["plot-log", str(run)]) == 0 and main(["plot-log", str(run)]) == 0
    user = tmp_path / "mine.png"
    user.write_bytes(b"mine")
    assert main(["plot-log", str(run), "--out", str(user)]) == 2 and user.read_bytes() == b"mine"


def test_eval_scores_one_video_by_name_or_by_order(clip, tmp_path, capsys) -> None:
    by_order = tmp_path / "order"
    by_order.mkdir()
    for index, mask in enumerate(sorted(clip["masks"].glob("*.png"))):
        (by_order / f"frame_{index:06d}.png").write_bytes(mask.read_bytes())
    assert main(["eval", "--gt-masks", str(clip["masks"]), "--pred", str(by_order), "--no-progress"]) == 0
    assert "1.000" in capsys.readouterr().out
    by_name = tmp_path / "name"
    by_name.mkdir()
    for mask in sorted(clip["masks"].glob("*.png")):
        labels = read_mask(mask)
        write_mask(by_name / mask.name, np.zeros_like(labels) if mask.name == "00003.png" else labels)
    (by_name / "99999.png").write_bytes((by_name / "00000.png").read_bytes())  # extra frames are ignored by name
    assert main(["eval", "--gt-masks", str(clip["masks"]), "--pred", str(by_name), "--no-progress"]) == 0
    assert "1.000" not in capsys.readouterr().out.split("Global")[1].split()[1]


@requires_shared("data/pumavos/chair/chair.mp4", "the PUMaVOS chair")
def test_the_readme_chair_example_runs_and_scores(shared_root: Path, tmp_path, monkeypatch, capsys) -> None:
    """README: `vosuite segment .../chair.mp4 --mask .../frame_000000.png --out masks/ --overlay overlay.mp4`,
    then `vosuite eval --gt-masks .../Annotations --pred masks/` (here with copy-first: 0.670 as documented)."""
    chair = shared_root / "data" / "pumavos" / "chair"
    monkeypatch.chdir(tmp_path)
    assert main(["segment", str(chair / "chair.mp4"), "--mask", str(chair / "Annotations" / "frame_000000.png"),
                 "--out", "masks/", "--overlay", "overlay.mp4", *FAST]) == 0
    assert main(["eval", "--gt-masks", str(chair / "Annotations"), "--pred", "masks/", "--no-progress",
                 "--out", "chair.json"]) == 0
    import json

    scores = json.loads((tmp_path / "chair.json").read_text())
    assert abs(scores["global"]["J&F-Mean"] - 0.670) < 0.0005, scores["global"]
