"""The per-user cache of ``--runtime onnx`` exports (:mod:`vosuite.onnx.cache`): exported once,
keyed by the weights, rebuilt when damaged, safe when processes race, unwritable -> a warning."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from vosuite.factory import create_model
from vosuite.io.cache_dir import user_cache_dir
from vosuite.onnx import cache as onnx_cache
from vosuite.onnx.cache import cache_key, cached_export, is_complete
from vosuite.onnx.export import export_model, weights_digest

pytest.importorskip("onnxruntime", reason="onnxruntime is an optional extra (vosuite[onnx])")

#: The network of these tests: with random weights its export takes about a second.
MODEL = "deaot-t-deform"


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(MODEL, weights=None).eval()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache folder for the test; returns its ``onnx`` folder (not created)."""
    monkeypatch.setenv("VOSUITE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


@pytest.fixture
def exports(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The folders the cache exported into, in order (the export function, counted)."""
    folders: list[Path] = []

    def counted(model: torch.nn.Module, out_dir: str | os.PathLike, overwrite: bool = False):
        folders.append(Path(out_dir))
        return export_model(model, out_dir, overwrite)

    monkeypatch.setattr(onnx_cache, "export_model", counted)
    return folders


@pytest.fixture
def umask_027() -> Iterator[None]:
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def labels(segmenter, frames: list[np.ndarray], mask: np.ndarray) -> list[np.ndarray]:
    core = segmenter.core()
    out = []
    for index, rgb in enumerate(frames):
        core.step(rgb, mask if index == 0 else None)
        out.append(core.labels.copy())
    return out


def test_the_cache_folder_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOSUITE_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache_dir() == tmp_path / "mine"
    monkeypatch.setenv("VOSUITE_CACHE_DIR", "")
    assert user_cache_dir() == tmp_path / "xdg" / "vosuite"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_cache_dir() == tmp_path / "home" / ".cache" / "vosuite"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert user_cache_dir() == tmp_path / "home" / ".cache" / "vosuite"


def test_a_second_segmenter_reuses_the_export_with_the_same_masks(cache: Path, exports: list[Path], tmp_path: Path,
                                                                   umask_027: None) -> None:
    from vosuite.datasets.synthetic import SyntheticClipConfig, write_clip
    from vosuite.io.frames import open_frames
    from vosuite.io.masks import read_mask
    from vosuite.segment import Segmenter

    model = small_model()
    first = Segmenter(model, progress=False, runtime="onnx")
    second = Segmenter(model, progress=False, runtime="onnx")
    entry = first.backend.export_dir
    assert len(exports) == 1 and second.backend.export_dir == entry
    assert entry.parent == cache and [p.name for p in cache.iterdir()] == [entry.name]  # no leftovers
    assert entry.name == cache_key(model) and entry.name.startswith(f"{MODEL}-")
    assert entry.stat().st_mode & 0o777 == 0o750  # the umask's, not mkdtemp's 0700 / mkstemp's 0600
    assert {p.stat().st_mode & 0o777 for p in entry.iterdir()} == {0o640}

    fresh = export_model(model, tmp_path / "fresh").folder
    uncached = Segmenter(model, progress=False, runtime="onnx", onnx_dir=fresh)  # --onnx-dir: as before
    assert len(exports) == 1 and [p.name for p in cache.iterdir()] == [entry.name]
    root = write_clip(tmp_path / "clip", SyntheticClipConfig(num_frames=4, height=96, width=128))
    frames = [f.rgb for f in open_frames(root / "JPEGImages" / "shapes")]
    mask = read_mask(root / "Annotations" / "shapes" / "00000.png")
    cached_labels, fresh_labels = labels(second, frames, mask), labels(uncached, frames, mask)
    assert all(np.array_equal(a, b) for a, b in zip(cached_labels, fresh_labels, strict=True))


def test_other_weights_get_another_key() -> None:
    model = small_model()
    before = cache_key(model)
    assert cache_key(model, weights_digest(model)) == before
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-3
    after = cache_key(model)
    assert after != before and after.split("-")[:-1] == before.split("-")[:-1]


def test_a_damaged_entry_is_exported_again_inside_the_cache_only(cache: Path, exports: list[Path],
                                                                  tmp_path: Path) -> None:
    model = small_model()
    digest = weights_digest(model)
    entry = cached_export(model)
    (entry / "decoder.onnx").unlink()  # a partial entry
    assert not is_complete(entry, model, digest)
    assert cached_export(model) == entry and is_complete(entry, model, digest) and len(exports) == 2

    outside = tmp_path / "outside"  # an entry that is a link out of the cache: the link goes, not its target
    outside.mkdir()
    (outside / "manifest.json").write_text("{not json")
    stale = cache / f".{entry.name}.new-1-deadbeef"  # a crashed writer's folder, two days old
    stale.mkdir()
    os.utime(stale, (time.time() - 2 * 86400,) * 2)
    young = cache / f".{entry.name}.new-2-deadbeef"  # maybe a live writer's: kept
    young.mkdir()
    for path in entry.iterdir():
        path.unlink()
    entry.rmdir()
    entry.symlink_to(outside, target_is_directory=True)
    assert cached_export(model) == entry and not entry.is_symlink() and is_complete(entry, model, digest)
    assert len(exports) == 3 and (outside / "manifest.json").read_text() == "{not json"
    assert sorted(p.name for p in cache.iterdir()) == sorted([entry.name, young.name])


def race(root: str, barrier, results) -> None:
    """One of the racing processes: export, wait for the other, then both publish at once."""
    os.environ["VOSUITE_CACHE_DIR"] = root
    torch.set_num_threads(1)
    publish = onnx_cache._publish

    def together(*args):
        barrier.wait(timeout=300)
        return publish(*args)

    onnx_cache._publish = together
    results.put(str(cached_export(small_model())))


def test_two_processes_racing_leave_one_complete_entry(cache: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=race, args=(str(cache.parent), barrier, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    found = [results.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0, 0]
    # built on one thread as the workers: a network's random initialisation (its ID bank's) depends on
    # torch's thread count
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = small_model()
    finally:
        torch.set_num_threads(threads)
    entry = cache / cache_key(model)
    assert found == [str(entry)] * 2
    assert [p.name for p in cache.iterdir()] == [entry.name]  # the loser removed its export
    assert is_complete(entry, model, weights_digest(model))


def test_an_unwritable_cache_warns_in_one_line_and_exports_to_a_temporary_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from vosuite.segment import Segmenter

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("VOSUITE_CACHE_DIR", str(blocker / "cache"))  # mkdir fails, as in a read-only home
    segmenter = Segmenter(small_model(), progress=False, runtime="onnx")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vosuite: warning: cannot write the ONNX cache"), err
    folder = segmenter.backend.export_dir
    assert folder.name.startswith("vosuite-onnx-") and (folder / "manifest.json").is_file()
