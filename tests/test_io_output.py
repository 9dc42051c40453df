"""Output folders that never delete a user's files (vosuite.io.output) and fsynced atomic writes (vosuite.io.atomic)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from vosuite.errors import InputError
from vosuite.io import atomic
from vosuite.io.atomic import atomic_path, write_text_atomic
from vosuite.io.output import MANIFEST_NAME, OutputFolder, prepare_output


def tree(root: Path) -> list[str]:
    """Every file and folder under ``root``, as sorted relative POSIX paths."""
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*"))


def manifest_lines(root: Path) -> list[str]:
    """The manifest's lines, or [] when there is none."""
    manifest = root / MANIFEST_NAME
    return manifest.read_text(encoding="utf-8").splitlines() if manifest.is_file() else []


def write_run(out: Path, names: list[str], overwrite: bool = False) -> OutputFolder:
    """One vosuite run writing ``names`` (relative paths) into ``out``."""
    folder = prepare_output(out, overwrite)
    for name in names:
        folder.file(name).write_text(f"written {name}")
    return folder


def test_a_new_folder_is_created_with_parents(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "out"
    folder = prepare_output(out, overwrite=False)
    assert isinstance(folder, OutputFolder)
    assert folder.path == out and out.is_dir()
    assert tree(out) == []


def test_an_existing_empty_folder_is_used(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert OutputFolder(out, overwrite=False).path == out


def test_a_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("a file")
    with pytest.raises(InputError, match="exists and is not a folder"):
        OutputFolder(out, overwrite=True)
    assert out.read_text() == "a file"


def test_a_non_empty_folder_is_refused_without_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_run(out, ["00000.png"])
    with pytest.raises(InputError, match="not empty .*pass --overwrite"):
        prepare_output(out, overwrite=False)
    assert (out / "00000.png").read_text() == "written 00000.png"


def test_file_registers_before_writing_and_returns_the_absolute_path(tmp_path: Path) -> None:
    out = tmp_path / "out"
    folder = prepare_output(out, overwrite=False)
    target = folder.file("video/00000.png")
    assert target == out / "video" / "00000.png"
    assert target.parent.is_dir() and not target.exists()
    assert manifest_lines(out) == ["video/00000.png"]


def test_registering_again_is_idempotent(tmp_path: Path) -> None:
    out = tmp_path / "out"
    folder = prepare_output(out, overwrite=False)
    assert folder.file("a.png") == folder.file(Path("a.png")) == folder.file("./a.png") == folder.file(out / "a.png")
    folder.file("b/c.png")
    folder.file("b/c.png")
    assert manifest_lines(out) == ["a.png", "b/c.png"]


@pytest.mark.parametrize("bad", ["../escape.png", "/absolute.png", ".", MANIFEST_NAME])
def test_paths_outside_the_folder_are_not_registered(tmp_path: Path, bad: str) -> None:
    folder = prepare_output(tmp_path / "out", overwrite=False)
    with pytest.raises(ValueError):
        folder.file(bad)
    assert manifest_lines(folder.path) == []


def test_overwrite_replaces_only_what_vosuite_wrote(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_run(out, ["results.json", "video/00000.png", "video/00001.png", "deep/er/x.png"])
    assert tree(out) == sorted([MANIFEST_NAME, "deep", "deep/er", "deep/er/x.png", "results.json", "video",
                                "video/00000.png", "video/00001.png"])
    folder = write_run(out, ["video/00000.png"], overwrite=True)
    assert tree(out) == [MANIFEST_NAME, "video", "video/00000.png"]
    assert manifest_lines(out) == ["video/00000.png"]
    assert folder.path == out


def test_overwrite_of_a_folder_holding_only_the_manifest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    prepare_output(out, overwrite=False).file("never_written.png")
    assert tree(out) == [MANIFEST_NAME]
    prepare_output(out, overwrite=False)  # nothing but the manifest: an empty folder
    assert tree(out) == []


@pytest.mark.parametrize("foreign", ["notes.txt", "video/notes.txt", "video/extra", "a_first/old.png"])
def test_a_foreign_file_is_named_and_nothing_is_deleted(tmp_path: Path, foreign: str) -> None:
    out = tmp_path / "out"
    write_run(out, ["results.json", "video/00000.png", "video/00001.png"])
    user_path = out / foreign
    user_path.parent.mkdir(parents=True, exist_ok=True)
    if foreign.endswith("extra"):
        user_path.mkdir()  # an empty folder vosuite did not make
    else:
        user_path.write_text("mine")
    before = tree(out)
    with pytest.raises(InputError) as caught:
        prepare_output(out, overwrite=True)
    message = str(caught.value)
    assert f"{foreign} was not written by vosuite; refusing to overwrite" in message
    assert "move it away or choose another --out" in message
    assert tree(out) == before
    assert (out / "video" / "00000.png").read_text() == "written video/00000.png"


def test_the_first_foreign_entry_in_sorted_walk_order_is_named(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_run(out, ["video/00000.png"])
    (out / "zzz.txt").write_text("mine")
    (out / "video" / "b.txt").write_text("mine")
    (out / "video" / "a.txt").write_text("mine")
    with pytest.raises(InputError, match="video/a.txt was not written"):
        prepare_output(out, overwrite=True)


def test_a_folder_without_a_manifest_is_all_foreign(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for index in range(3):
        (out / f"{index:05d}.png").write_bytes(b"png")
    with pytest.raises(InputError, match="00000.png was not written by vosuite"):
        prepare_output(out, overwrite=True)
    assert tree(out) == ["00000.png", "00001.png", "00002.png"]


def test_a_manifest_cannot_reach_outside_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "outside.txt").write_text("mine")
    (out / MANIFEST_NAME).write_text("../outside.txt\n/etc/passwd\n")
    (out / "00000.png").write_bytes(b"png")
    with pytest.raises(InputError, match="00000.png was not written"):
        prepare_output(out, overwrite=True)
    assert (tmp_path / "outside.txt").read_text() == "mine"


# ---------------------------------------------------------------------------------------------
# atomic writes
# ---------------------------------------------------------------------------------------------


def record_fsync_and_replace(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Record ("fsync", is_folder, inode) and ("replace", src, dst) in call order; the real calls still run."""
    events: list[tuple] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        events.append(("fsync", stat.S_ISDIR(info.st_mode), info.st_ino))
        real_fsync(fd)

    def replace(src: os.PathLike, dst: os.PathLike) -> None:
        events.append(("replace", Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    return events


def test_the_file_is_fsynced_before_the_rename_and_the_folder_after(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    events = record_fsync_and_replace(monkeypatch)
    target = tmp_path / "results.json"
    write_text_atomic(target, "{}")
    assert target.read_text() == "{}"
    assert [event[0] for event in events] == ["fsync", "replace", "fsync"]
    file_sync, rename, folder_sync = events
    assert file_sync[1] is False and file_sync[2] == target.stat().st_ino  # the renamed file itself
    assert rename[2] == target and rename[1].parent == tmp_path
    assert folder_sync[1] is True and folder_sync[2] == tmp_path.stat().st_ino
    assert tree(tmp_path) == ["results.json"]


def test_a_folder_that_refuses_fsync_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError("folders cannot be fsynced here")
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    write_text_atomic(tmp_path / "a.txt", "new")
    assert (tmp_path / "a.txt").read_text() == "new"


def test_on_exception_the_target_is_untouched_and_no_temp_file_remains(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "results.json"
    target.write_text("old")
    events = record_fsync_and_replace(monkeypatch)
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half written")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert tree(tmp_path) == ["results.json"]
    assert events == []
