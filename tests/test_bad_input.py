"""Every command against a table of bad inputs: exit status 2, exactly one line on stderr, and
nothing on disk changed (every file's bytes, size, mode and time, every folder's entries).

The workspace holds what a user has: a video, its frames and masks, predictions, results, a
training run, and files of their own. Each case runs ``vosuite`` in this process (``main``).
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from vosuite.cli import main
from vosuite.datasets.synthetic import SyntheticClipConfig, write_clip
from vosuite.io.folder_lock import FolderLock
from vosuite.io.frames import open_frames
from vosuite.io.masks import write_mask
from vosuite.io.video_writer import VideoWriter

FAST = ["--model", "copy-first", "--no-progress"]  # a training-free tracker: the cases test paths, not networks


class _Exploit:
    """Unpickling it would run a shell command: vosuite must refuse the file, never run it."""

    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def _make_workspace(root: Path) -> dict[str, Path]:
    """A user's folder: a clip (frames, masks), a video file, predictions, results, a run, own files."""
    clip = write_clip(root / "clip", SyntheticClipConfig(num_frames=6, height=48, width=64))
    frames = clip / "JPEGImages" / "shapes"
    masks = clip / "Annotations" / "shapes"
    video = root / "in.mp4"
    with VideoWriter(video, fps=10) as writer:
        for frame in open_frames(frames):
            writer.write(frame.rgb)
    preds = root / "preds"
    for mask in sorted(masks.glob("*.png")):
        (preds / "shapes").mkdir(parents=True, exist_ok=True)
        (preds / "shapes" / mask.name).write_bytes(mask.read_bytes())
    corrupt_preds = root / "corrupt_preds" / "shapes"
    corrupt_preds.mkdir(parents=True)
    for mask in sorted(masks.glob("*.png")):
        (corrupt_preds / mask.name).write_bytes(mask.read_bytes())
    (corrupt_preds / "00002.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    single = root / "single"  # one video's folder, as the PUMaVOS chair: frames and masks, no video folders
    (single / "JPEGImages").mkdir(parents=True)
    (single / "Annotations").mkdir()
    for frame, mask in zip(sorted(frames.glob("*.jpg")), sorted(masks.glob("*.png")), strict=True):
        (single / "JPEGImages" / f"frame_{frame.name}").write_bytes(frame.read_bytes())
        (single / "Annotations" / f"frame_{mask.name}").write_bytes(mask.read_bytes())
    user = root / "user"
    user.mkdir()
    (user / "notes.txt").write_text("my notes")
    (user / "00000-00002.png").write_bytes((masks / "00000.png").read_bytes())
    (root / "user.mp4").write_bytes(video.read_bytes())
    (root / "user.json").write_text("{}")
    (root / "exploit.pt").write_bytes(pickle.dumps(_Exploit()))
    (root / "garbage.pt").write_bytes(b"definitely not a checkpoint")
    (root / "garbage.mp4").write_bytes(b"definitely not a video")
    (root / "bad.yaml").write_text("train:\n  total_steps: [1, 2\n  lr: 3\n")
    (root / "smoke.yaml").write_text("model:\n  name: deaot-t\ntrain:\n  total_steps: 2\n  batch_size: 1\n")
    run = root / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"kind": "train", "step": 1, "loss": 1.0}) + "\n")
    (run / "config.yaml").write_text((root / "smoke.yaml").read_text())
    (run / "last.pt").write_bytes(pickle.dumps(_Exploit()))
    results = root / "results.json"
    results.write_text("{not json")
    empty = root / "empty"
    empty.mkdir()
    rgb_mask = root / "rgb_mask.png"
    from PIL import Image

    Image.fromarray(np.full((48, 64, 3), (12, 200, 7), np.uint8)).save(rgb_mask)
    taken = root / "taken"
    taken.mkdir()
    write_mask(taken / "00000.png", np.zeros((4, 4), np.uint8))
    return {"root": root, "clip": clip, "frames": frames, "masks": masks, "mask": masks / "00000.png",
            "video": video, "preds": preds, "user": user, "run": run, "results": results, "empty": empty,
            "rgb_mask": rgb_mask, "single": single, "corrupt_preds": corrupt_preds.parent, "taken": taken}


def _snapshot(root: Path) -> dict[str, tuple]:
    """Everything under ``root``: kind, size, mode, modification time and bytes of every entry."""
    state: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            path = Path(folder) / name
            info = path.lstat()
            content = path.read_bytes() if path.is_file() and not path.is_symlink() else None
            state[str(path.relative_to(root))] = (path.is_dir(), info.st_size, info.st_mode, info.st_mtime_ns, content)
    return state


#: (case id, argv with {name} placeholders for workspace paths, a text the error line must contain)
CASES: list[tuple[str, str, str]] = [
    # segment: outputs onto inputs, user files, bad paths
    ("segment-overlay-is-the-input-video", "segment {video} --mask {mask} --out {root}/o --overlay {video}",
     "is the input"),
    ("segment-overlay-into-user-folder", "segment {video} --mask {mask} --out {root}/o --overlay {user}",
     "not empty"),
    ("segment-overlay-onto-user-video", "segment {video} --mask {mask} --out {root}/o --overlay {root}/user.mp4",
     "exists"),
    ("segment-overlay-is-the-out-folder", "segment {video} --mask {mask} --out {root}/o --overlay {root}/o",
     "output folder"),
    ("segment-out-is-the-frames-folder", "segment {frames} --mask {mask} --out {frames}", "is the input"),
    ("segment-out-inside-the-frames", "segment {frames} --mask {mask} --out {frames}/masks", "lies inside"),
    ("segment-out-is-the-mask", "segment {video} --mask {mask} --out {mask}", "is the input"),
    ("segment-out-is-a-file", "segment {video} --mask {mask} --out {root}/user.json", "not a folder"),
    ("segment-out-below-a-file", "segment {video} --mask {mask} --out {root}/user.json/sub", "not a folder"),
    ("segment-out-name-too-long", "segment {video} --mask {mask} --out {root}/" + "x" * 300, "too long"),
    ("segment-out-unwritable", "segment {video} --mask {mask} --out /proc/vosuite-test/out", "/proc"),
    ("segment-out-user-folder", "segment {video} --mask {mask} --out {user}", "not empty"),
    ("segment-overwrite-user-folder", "segment {video} --mask {mask} --out {user} --overwrite",
     "not written by vosuite"),
    ("segment-mask-missing", "segment {video} --mask {root}/nope.png --out {root}/o", "nope.png"),
    ("segment-mask-corrupt", "segment {video} --mask {corrupt_preds}/shapes/00002.png --out {root}/o", "00002.png"),
    ("segment-mask-foreign-colour", "segment {video} --mask {rgb_mask} --out {root}/o", "(12, 200, 7)"),
    ("segment-input-missing", "segment {root}/nope.mp4 --mask {mask} --out {root}/o", "nope.mp4"),
    ("segment-input-corrupt", "segment {root}/garbage.mp4 --mask {mask} --out {root}/o", "garbage.mp4"),
    ("segment-input-empty-folder", "segment {empty} --mask {mask} --out {root}/o", "empty"),
    ("segment-device-nonsense", "segment {video} --mask {mask} --out {root}/o --device nonsense", "nonsense"),
    ("segment-device-cuda", "segment {video} --mask {mask} --out {root}/o --device cuda:7", "cuda"),
    ("segment-size-zero", "segment {video} --mask {mask} --out {root}/o --size 0", "--size"),
    ("segment-size-negative", "segment {video} --mask {mask} --out {root}/o --size -3", "--size"),
    ("segment-threads-zero", "segment {video} --mask {mask} --out {root}/o --threads 0", "--threads"),
    ("segment-memory-zero", "segment {video} --mask {mask} --out {root}/o --max-memory-frames 0",
     "--max-memory-frames"),
    ("segment-gap-text", "segment {video} --mask {mask} --out {root}/o --long-term-gap abc", "--long-term-gap"),
    ("segment-checkpoint-exploit", "segment {video} --mask {mask} --out {root}/o --model deaot-t-deform "
     "--checkpoint {root}/exploit.pt", "exploit.pt"),
    ("segment-checkpoint-garbage", "segment {video} --mask {mask} --out {root}/o --model deaot-t-deform "
     "--checkpoint {root}/garbage.pt", "garbage.pt"),
    ("segment-checkpoint-missing", "segment {video} --mask {mask} --out {root}/o --model deaot-t-deform "
     "--checkpoint {root}/nope.pt", "nope.pt"),
    ("segment-model-unknown", "segment {video} --mask {mask} --out {root}/o --model no-such-model", "no-such-model"),
    ("segment-masks-dir-missing", "segment {video} --mask {mask} --out {root}/o --masks-dir {root}/nope",
     "nope"),
    ("segment-merge-on-deaot", "segment {video} --mask {mask} --out {root}/o --model deaot-t-deform --merge rs2s",
     "merge"),
    # infer
    ("infer-root-missing", "infer --dataset generic --root {root}/nope --out {root}/o", "nope"),
    ("infer-davis2017-on-generic", "infer --dataset davis2017 --root {clip} --out {root}/o", "davis2017"),
    ("infer-out-inside-root", "infer --dataset generic --root {clip} --out {clip}/preds", "lies inside"),
    ("infer-split-unknown", "infer --dataset generic --root {clip} --split nope --out {root}/o", "nope"),
    ("infer-out-taken", "infer --dataset generic --root {clip} --out {taken}", "not empty"),
    # eval
    ("eval-plot-onto-ground-truth", "eval --gt {clip} --pred {preds} --plot {masks}/00003.png", "lies inside"),
    ("eval-out-inside-predictions", "eval --gt {clip} --pred {preds} --out {preds}/r.json", "lies inside"),
    ("eval-out-onto-user-file", "eval --gt {clip} --pred {preds} --out {root}/user.json", "exists"),
    ("eval-out-suffix", "eval --gt {clip} --pred {preds} --out {root}/r.txt", ".csv or .json"),
    ("eval-gt-without-videos", "eval --gt {single} --pred {preds}", "--gt-masks"),
    ("eval-gt-empty-folder", "eval --gt {empty} --pred {preds}", "JPEGImages"),
    ("eval-gt-masks-count", "eval --gt-masks {masks} --pred {user}", "cannot match"),
    ("eval-gt-masks-and-split", "eval --gt-masks {masks} --pred {preds}/shapes --split val", "--gt-masks"),
    ("eval-pred-missing", "eval --gt {clip} --pred {root}/nope", "nope"),
    ("eval-workers-zero", "eval --gt {clip} --pred {preds} --workers 0", "--workers"),
    ("eval-matching-semi", "eval --gt {clip} --pred {preds} --per-frame-matching", "--per-frame-matching"),
    ("eval-gt-and-gt-masks", "eval --gt {clip} --gt-masks {masks} --pred {preds}", "not allowed"),
    ("eval-corrupt-prediction", "eval --gt {clip} --pred {corrupt_preds}", "00002.png"),
    # pack
    ("pack-out-inside-predictions", "pack --pred {preds} --out {preds}/shapes/00000.png", "lies inside"),
    ("pack-corrupt-png", "pack --pred {corrupt_preds} --out {root}/p.zip", "00002.png"),
    ("pack-out-onto-user-file", "pack --pred {preds} --out {root}/user.json", "exists"),
    ("pack-pred-missing", "pack --pred {root}/nope --out {root}/p.zip", "nope"),
    ("pack-out-is-a-folder", "pack --pred {preds} --out {user}", "folder"),
    # compare
    ("compare-results-missing", "compare {root}/nope.json", "nope.json"),
    ("compare-results-garbage", "compare {results}", "results.json"),
    ("compare-plot-onto-user-file", "compare {results} --plot {root}/user.json", "exists"),
    ("compare-size-edges", "compare {results} --size-edges 2", "--size-edges"),
    # convert
    ("convert-half-out-folder", "convert half {root}/garbage.pt {user} --overwrite", "folder"),
    ("convert-half-out-is-input", "convert half {root}/garbage.pt {root}/garbage.pt --overwrite", "is the input"),
    ("convert-half-exploit", "convert half {root}/exploit.pt {root}/h.pt", "exploit.pt"),
    ("convert-half-size-zero", "convert half {root}/garbage.pt {root}/h.pt --size 0", "--size"),
    ("convert-aot-missing", "convert aot {root}/nope.pth {root}/a.pt", "nope.pth"),
    ("convert-aot-onto-user-file", "convert aot {root}/garbage.pt {root}/user.json", "exists"),
    ("convert-dino-garbage", "convert dino {root}/garbage.pt {root}/d.pt", "garbage.pt"),
    # export
    ("export-out-is-a-file", "export onnx {root}/user.json", "not a folder"),
    ("export-checkpoint-exploit", "export onnx {root}/x --model deaot-t-deform --checkpoint {root}/exploit.pt",
     "exploit.pt"),
    # train
    ("train-invalid-yaml", "train --config {root}/bad.yaml --out {root}/runs", "line 3, column 5"),
    ("train-config-missing", "train --config {root}/nope.yaml --out {root}/runs", "nope.yaml"),
    ("train-batch-size-zero", "train --config {root}/smoke.yaml train.batch_size=0 --out {root}/runs",
     "train.batch_size"),
    ("train-batch-size-negative", "train --config {root}/smoke.yaml train.batch_size=-1 --out {root}/runs",
     "train.batch_size"),
    ("train-lr-negative", "train --config {root}/smoke.yaml optim.lr=-1 --out {root}/runs", "optim.lr"),
    ("train-num-frames-zero", "train --config {root}/smoke.yaml data.num_frames=0 --out {root}/runs",
     "data.num_frames"),
    ("train-threads-negative", "train --config {root}/smoke.yaml train.threads=-1 --out {root}/runs",
     "train.threads"),
    ("train-total-steps-zero", "train --config {root}/smoke.yaml train.total_steps=0 --out {root}/runs",
     "train.total_steps"),
    ("train-total-steps-negative", "train --config {root}/smoke.yaml train.total_steps=-5 --out {root}/runs",
     "train.total_steps"),
    ("train-device-nonsense", "train --config {root}/smoke.yaml train.device=nonsense --out {root}/runs",
     "train.device"),
    ("train-unknown-key", "train --config {root}/smoke.yaml train.nope=1 --out {root}/runs", "nope"),
    ("train-time-budget", "train --config {root}/smoke.yaml train.time_budget=soon --out {root}/runs",
     "time_budget"),
    ("train-resume-exploit", "train --resume {run}", "last.pt"),
    ("train-resume-missing", "train --resume {root}/nope", "nope"),
    ("train-neither", "train", "--config"),
    # discover
    ("discover-size-zero", "discover {video} --out {root}/o --model ellipse --size 0", "--size"),
    ("discover-input-missing", "discover {root}/nope.mp4 --out {root}/o --model ellipse", "nope.mp4"),
    ("discover-overlay-is-input", "discover {video} --out {root}/o --model ellipse --overlay {video}",
     "is the input"),
    ("discover-tau-zero", "discover {video} --out {root}/o --model ellipse --tau 0", "--tau"),
    ("discover-out-user-folder", "discover {video} --out {user} --model ellipse", "not empty"),
    # bench
    ("bench-videos-zero", "bench --dataset generic --root {clip} --models copy-first --videos 0", "--videos"),
    ("bench-videos-negative", "bench --dataset generic --root {clip} --models copy-first --videos -2", "--videos"),
    ("bench-root-missing", "bench --root {root}/nope", "nope"),
    ("bench-out-onto-user-file", "bench --dataset generic --root {clip} --out {root}/user.json", "exists"),
    # plot-log
    ("plot-log-run-missing", "plot-log {root}/nope", "nope"),
    ("plot-log-out-onto-the-log", "plot-log {run} --out {run}/metrics.jsonl", "is the input"),
    ("plot-log-out-onto-user-file", "plot-log {run} --out {root}/user.json", "exists"),
    ("plot-log-smooth-zero", "plot-log {run} --smooth 0", "--smooth"),
    # app, models, demo
    ("app-port-zero", "app --port 0", "--port"),
    ("app-upload-limit-zero", "app --max-upload-mb 0", "--max-upload-mb"),
    ("models-family-unknown", "models --family nope", "nope"),
    ("demo-out-user-folder", "demo --out {user}", "not empty"),
    ("demo-tracker-unknown", "demo --out {root}/d --tracker nope", "nope"),
    ("command-unknown", "nonsense", "nonsense"),
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _make_workspace(tmp_path_factory.mktemp("workspace"))


def _argv(template: str, paths: dict[str, Path]) -> list[str]:
    return template.format(**{key: str(value) for key, value in paths.items()}).split()


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse
        code = stop.code
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, lines


def test_the_table_is_large_and_covers_every_command() -> None:
    from vosuite.cli import COMMANDS

    assert len(CASES) > 50 and len({case for case, _, _ in CASES}) == len(CASES)
    covered = {argv.split()[0] for _, argv, _ in CASES}
    assert set(COMMANDS) <= covered


@pytest.mark.parametrize(("case", "template", "expected"), CASES, ids=[case for case, _, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case: str, template: str, expected: str,
                                                          workspace: dict[str, Path], capsys, monkeypatch) -> None:
    monkeypatch.chdir(workspace["root"])
    before = _snapshot(workspace["root"])
    code, lines = _run(_argv(template, workspace), capsys)
    assert code == 2, (case, lines)
    assert len(lines) == 1, (case, lines)
    assert expected in lines[0], (case, lines[0])
    assert "Traceback" not in lines[0]
    assert _snapshot(workspace["root"]) == before, case


def test_a_locked_output_folder_stops_a_second_run(workspace: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "o"
    out.mkdir()
    with FolderLock(out):  # a first run is writing there
        code, lines = _run(["segment", str(workspace["video"]), "--mask", str(workspace["mask"]), "--out", str(out),
                            *FAST], capsys)
    assert code == 2 and len(lines) == 1 and "in use by another vosuite run" in lines[0]
    assert list(out.iterdir()) == []


def _exits_with_one_line(argv: list[str], capsys) -> Callable[[str], None]:
    code, lines = _run(argv, capsys)
    assert code == 2 and len(lines) == 1, lines
    return lines[0]


#: a command per writer of files, each run while the disk fails under it
WRITERS: list[tuple[str, str]] = [
    ("segment", "segment {video} --mask {mask} --out {root}/w_seg --overlay {root}/w_seg.mp4 " + " ".join(FAST)),
    ("infer", "infer --dataset generic --root {clip} --out {root}/w_inf " + " ".join(FAST)),
    ("eval", "eval --gt {clip} --pred {preds} --out {root}/w_eval.json --plot {root}/w_eval.png --no-progress"),
    ("pack", "pack --pred {preds} --out {root}/w.zip"),
    ("compare", "compare {good_results} --plot {root}/w_cmp.png"),
    ("convert", "convert half {shipped} {root}/w_half.pt"),
    ("export", "export onnx {root}/w_onnx --model deaot-t-deform --checkpoint {shipped}"),
    ("train", "train --config {root}/smoke.yaml train.total_steps=1 train.progress=false val.every=0 "
              "data.root={clip} data.dataset=generic data.split=null data.size=[65,65] --out {root}/w_runs"),
    ("discover", "discover {video} --out {root}/w_disc --model ellipse --no-progress"),
    ("plot-log", "plot-log {run} --out {root}/w_curves.png"),
]


def _fail_with(code: int) -> Callable[..., None]:
    def fail(path, *args, **kwargs):
        folder = Path(path).parent if not isinstance(path, int) else Path(".")
        raise OSError(code, os.strerror(code), str(folder))
    return fail


@pytest.mark.parametrize("errno_code", [28, 30], ids=["disk-full", "read-only"])  # ENOSPC, EROFS
@pytest.mark.parametrize(("command", "template"), WRITERS, ids=[name for name, _ in WRITERS])
def test_os_errors_while_writing_are_one_line_exit_2(command: str, template: str, errno_code: int,
                                                     workspace: dict[str, Path], capsys, monkeypatch) -> None:
    """A full disk fails the writes after their data (the fsync before the rename); a read-only
    folder fails creating the temporary file and recording it. Every command answers with one line
    naming the path and the reason, and leaves no temporary file and no user file changed."""
    pytest.importorskip("matplotlib")
    if command == "export":
        pytest.importorskip("onnx")
    import vosuite.io.atomic as atomic
    import vosuite.io.output as output
    from vosuite.factory import weights_file

    paths = {**workspace, "shipped": weights_file("deaot-t-deform.fast"),
             "good_results": _good_results(workspace, capsys)}
    monkeypatch.chdir(workspace["root"])
    before = {key: value for key, value in _snapshot(workspace["root"]).items() if not key.startswith("w_")}
    if errno_code == 28:
        monkeypatch.setattr(atomic, "_fsync_file", _fail_with(errno_code))
    else:
        monkeypatch.setattr(atomic, "_create_temporary", _fail_with(errno_code))
        monkeypatch.setattr(output, "_append_to_manifest", _fail_with(errno_code))
    code, lines = _run(_argv(template, paths), capsys)
    assert code == 2 and len(lines) == 1, (command, lines)
    assert os.strerror(errno_code) in lines[0], lines
    after = _snapshot(workspace["root"])
    assert {key: after.get(key) for key in before} == before
    assert not [key for key in after if ".tmp" in Path(key).name], [k for k in after if ".tmp" in k]


def _good_results(workspace: dict[str, Path], capsys) -> Path:
    """A real results file of `vosuite eval --out` (made once, outside the workspace's snapshot)."""
    path = workspace["root"].parent / "good_results.json"
    if not path.is_file():
        assert main(["eval", "--gt", str(workspace["clip"]), "--pred", str(workspace["preds"]), "--out", str(path),
                     "--no-progress"]) == 0
        capsys.readouterr()
    return path
