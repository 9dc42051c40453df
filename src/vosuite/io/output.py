"""The one rule for every path vosuite writes: never replace or delete what vosuite did not write.

Every command claims its outputs here before writing anything:

* **Output folders** (:class:`OutputFolder`, ``--out`` of segment / infer / discover / demo, a PNG
  ``--overlay`` folder): every file vosuite writes there is first registered with
  :meth:`OutputFolder.file`, which appends its path (relative, POSIX) to a hidden manifest,
  ``.vosuite-output``, in the folder's root. A folder with content is refused unless
  ``overwrite``; ``--overwrite`` then deletes exactly the listed files, and only when *everything*
  in the folder is vosuite's: one file or folder the manifest does not account for (a user's
  ``notes.txt``, PNGs from another tool, a folder without a manifest) makes vosuite refuse and
  name it, before anything is deleted. The folder is locked (:class:`~vosuite.io.folder_lock.FolderLock`)
  while the run writes, so a second run into it stops at once.
* **Single output files** (:func:`claim_file`: ``--overlay x.mp4``, ``--plot``, ``eval --out``,
  ``pack --out``, ``convert``, ``bench --out``, ``plot-log --out``): an existing file is replaced
  only with ``overwrite`` or when a manifest in its folder lists it (vosuite wrote it).
* **Inputs are never outputs**: a claimed path may not be, or lie inside, any input of the same
  command (the video, the mask, a dataset root, a ground-truth folder), ``overwrite`` or not.

Leftover temporary files of vosuite's atomic writes (:mod:`vosuite.io.atomic`) whose writer died
are recognised and removed, never reported as foreign.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from vosuite.errors import InputError
from vosuite.io.atomic import remove_stale_temporaries, remove_stale_temporary, temporary_target
from vosuite.io.folder_lock import FolderLock

MANIFEST_NAME = ".vosuite-output"

PathLike = str | os.PathLike


def _normalized(relative: str | PurePosixPath) -> str:
    """``relative`` as a clean relative POSIX path (``a/./b`` -> ``a/b``); ValueError if it leaves the folder."""
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"{str(relative)!r} is not a relative path inside the output folder")
    text = str(path)
    if "\n" in text or "\r" in text:
        raise ValueError(f"{text!r}: a line break cannot be recorded in the output manifest")
    if text == MANIFEST_NAME:
        raise ValueError(f"{MANIFEST_NAME} is the output manifest itself")
    return text


def _read_manifest(manifest: Path) -> set[str]:
    """The relative paths a manifest lists (blank and malformed lines skipped); empty if it is missing."""
    if not manifest.is_file():
        return set()
    listed = set()
    for line in manifest.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            listed.add(_normalized(line))
        except ValueError:
            continue
    return listed


def _ancestors(listed: set[str]) -> set[str]:
    """Every folder (relative POSIX path) that holds a listed file."""
    return {str(parent) for entry in listed for parent in PurePosixPath(entry).parents if parent.parts}


def _append_to_manifest(manifest: Path, key: str) -> None:
    """Add one line to a manifest (one short append: atomic on POSIX)."""
    with manifest.open("a", encoding="utf-8") as handle:
        handle.write(key + "\n")
        handle.flush()


def record_files(folder: PathLike, names: Iterable[str]) -> None:
    """List ``names`` (files vosuite writes directly in ``folder``, e.g. a training run's) in the
    folder's manifest, so that vosuite may later replace them without ``--overwrite``."""
    manifest = Path(folder) / MANIFEST_NAME
    listed = _read_manifest(manifest)
    for name in names:
        key = _normalized(name)
        if key not in listed:
            _append_to_manifest(manifest, key)
            listed.add(key)


# ---------------------------------------------------------------------------------------------
# Inputs are never outputs
# ---------------------------------------------------------------------------------------------

def _is_within(path: Path, ancestor: Path) -> bool:
    return path == ancestor or ancestor in path.parents


def ensure_outside(output: PathLike, inputs: Iterable[PathLike | None], option: str) -> None:
    """InputError if ``output`` is one of ``inputs`` or lies inside an input folder (symbolic links
    resolved), whatever ``--overwrite`` says: vosuite never writes into what it reads."""
    target = Path(output).resolve()
    for source in inputs:
        if source is None:
            continue
        resolved = Path(source).resolve()
        if _is_within(target, resolved):
            where = "is" if target == resolved else "lies inside"
            raise InputError(f"{option} {output}: {where} the input {source}; choose a path outside the inputs")


# ---------------------------------------------------------------------------------------------
# Single files
# ---------------------------------------------------------------------------------------------

def _check_parents(path: Path, option: str) -> None:
    """InputError when the nearest existing parent of ``path`` is a file (nothing can be made below it)."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{option} {path}: {parent} is not a folder")
            return


def _listed_by_folder(path: Path) -> bool:
    """Whether the manifest of ``path``'s folder lists it (vosuite wrote it there)."""
    return path.name in _read_manifest(path.parent / MANIFEST_NAME)


def claim_file(path: PathLike, *, overwrite: bool, inputs: Iterable[PathLike | None] = (),
               option: str = "--out") -> Path:
    """Check that vosuite may write the single file ``path`` and return it.

    Refused (InputError naming ``option``): a path that is or lies inside an input; a folder; an
    existing file, unless ``overwrite`` or its folder's manifest lists it; a parent that is a
    file. Stale temporary files of earlier writes of the same file are removed. When the folder
    is one of vosuite's output folders (it has a manifest), the file is recorded there.
    """
    target = Path(path)
    ensure_outside(target, inputs, option)
    if target.name in ("", ".", ".."):
        raise InputError(f"{option} {path}: not a file name")
    if target.is_dir():
        raise InputError(f"{option} {path}: is a folder, expected a file")
    _check_parents(target, option)
    if (target.exists() or target.is_symlink()) and not overwrite and not _listed_by_folder(target):
        raise InputError(f"{option} {path}: exists and vosuite did not write it (pass --overwrite to replace it)")
    remove_stale_temporaries(target)
    manifest = target.parent / MANIFEST_NAME
    if manifest.is_file() and not _listed_by_folder(target):
        _append_to_manifest(manifest, target.name)
    return target


# ---------------------------------------------------------------------------------------------
# Folders
# ---------------------------------------------------------------------------------------------

class OutputFolder:
    """A folder vosuite writes results into, with a manifest of the files it wrote there.

    ``OutputFolder(path, overwrite, inputs)`` creates ``path`` (parents too) and locks it for
    this run. A folder that already has content (anything but the manifest and vosuite's stale
    temporary files) is refused, unless ``overwrite``: then the files listed in its manifest are
    deleted, with the folders they leave empty, provided every file and folder in it is
    accounted for by the manifest; otherwise an :class:`InputError` names the first foreign file
    (in sorted, depth-first order; a foreign folder without files is named itself) and nothing is
    deleted. A folder that is or lies inside one of ``inputs`` is refused.

    Call :meth:`file` for each file before writing it, so a later ``--overwrite`` may replace it;
    :meth:`close` (or leaving a ``with`` block) releases the lock. Leaving the ``with`` block on an
    error before any file was registered removes what this run created (the manifest, the
    folders it made), so a refused run leaves the disk as it was.
    """

    def __init__(self, path: PathLike, overwrite: bool = False, inputs: Iterable[PathLike | None] = (),
                 option: str = "--out") -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        self.option = option
        self.manifest = self.path / MANIFEST_NAME
        self._registered: set[str] = set()
        self._lock: FolderLock | None = None
        self._created: list[Path] = []  # folders this run made, outermost first
        ensure_outside(self.path, inputs, option)
        self._prepare()

    @classmethod
    def attach(cls, path: PathLike) -> OutputFolder:
        """Another process's handle on a folder a first process has just prepared (the ranks of a
        ``torchrun`` inference): no check, no lock, nothing deleted; files it registers are
        appended to the same manifest (one short line per append, atomic on POSIX)."""
        folder = cls.__new__(cls)
        folder.path, folder.overwrite, folder.option = Path(path), False, "--out"
        folder.manifest = folder.path / MANIFEST_NAME
        folder._registered = set()
        folder._lock = None
        folder._created = []
        if not folder.path.is_dir():
            raise InputError(f"{folder.path}: output folder missing (the first rank prepares it)")
        return folder

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, overwrite={self.overwrite})"

    def __enter__(self) -> OutputFolder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        if exc_type is not None and not self._registered:
            self._undo()
        self.close()

    def _undo(self) -> None:
        """Remove the manifest and the folders this run created, when nothing else is in them."""
        if self.manifest.is_file() and not _read_manifest(self.manifest):
            self.manifest.unlink()
        for folder in reversed(self._created):
            try:
                folder.rmdir()
            except OSError:
                break

    def close(self) -> None:
        """Release the folder's lock (the files stay)."""
        if self._lock is not None:
            self._lock.release()

    def file(self, relative: PathLike) -> Path:
        """Register a file vosuite is about to write and return its absolute path.

        ``relative`` is a path inside the folder (an absolute path under :attr:`path` is accepted
        too). Its parent folders are created and it is appended to the manifest before the caller
        writes it; registering the same path again does nothing more.
        """
        key = _normalized(self._relative(Path(relative)).as_posix())
        target = self.path / key
        target.parent.mkdir(parents=True, exist_ok=True)
        if key not in self._registered:
            _append_to_manifest(self.manifest, key)
            self._registered.add(key)
        return target

    def contains(self, path: PathLike) -> bool:
        """Whether ``path`` lies inside this folder."""
        return _is_within(Path(path).resolve(), self.path.resolve())

    def adopt(self, relative: PathLike) -> list[Path]:
        """Register what a helper that knows nothing of manifests just wrote at ``relative`` (a file,
        or every file under a folder); returns the registered files. Prefer :meth:`file` before
        writing: a crash between writing and adopting leaves files a later ``--overwrite`` refuses."""
        root = self.path / self._relative(Path(relative))
        found = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
        return [self.file(path.relative_to(self.path)) for path in found]

    def _relative(self, path: Path) -> Path:
        """``path`` relative to the folder; ValueError for an absolute path outside it."""
        if not path.is_absolute():
            return path
        try:
            return path.relative_to(self.path.absolute())
        except ValueError:
            raise ValueError(f"{path} is not inside the output folder {self.path}") from None

    def _prepare(self) -> None:
        """Create and lock the folder, then check and empty it (see the class docstring)."""
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"{self.option} {self.path}: exists and is not a folder")
        _check_parents(self.path, self.option)
        self._created = [folder for folder in (*reversed(self.path.parents), self.path) if not folder.exists()]
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._lock = FolderLock(self.path)
            self._empty()
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            self._undo()
            raise

    def _empty(self) -> None:
        listed = _read_manifest(self.manifest)
        files, folders, temporaries = self._scan(listed)
        for temporary in temporaries:
            if not remove_stale_temporary(temporary):
                raise InputError(f"{self.option} {self.path}: {temporary.name} is being written by another "
                                 "vosuite run")
        if files and not self.overwrite:
            raise InputError(f"{self.option} {self.path}: output folder is not empty (pass --overwrite to replace "
                             "what vosuite wrote there)")
        for file in files:
            file.unlink(missing_ok=True)
        for folder in folders:
            if not any(folder.iterdir()):
                folder.rmdir()
        self._reset_manifest()

    def _reset_manifest(self) -> None:
        """Forget every registered file."""
        if self.manifest.is_file():
            self.manifest.unlink()
        self._registered.clear()

    def _scan(self, listed: set[str]) -> tuple[list[Path], list[Path], list[Path]]:
        """The listed files, the folders holding them (deepest first) and vosuite's temporary files;
        InputError at the first foreign entry (or at any entry, without ``overwrite``)."""
        found: tuple[list[Path], list[Path], list[Path]] = ([], [], [])
        self._walk(self.path, listed, _ancestors(listed), found)
        return found

    def _walk(self, folder: Path, listed: set[str], folders_of_listed: set[str],
              found: tuple[list[Path], list[Path], list[Path]]) -> None:
        """Collect ``folder``'s entries (sub-folders after their contents), in sorted depth-first order."""
        files, folders, temporaries = found
        for entry in sorted(folder.iterdir(), key=lambda item: item.name):
            kind = self._classify(entry, listed, folders_of_listed)
            if kind == "folder":
                self._walk(entry, listed, folders_of_listed, found)
                folders.append(entry)
            elif kind == "file":
                files.append(entry)
            elif kind == "temporary":
                temporaries.append(entry)

    def _classify(self, entry: Path, listed: set[str], folders_of_listed: set[str]) -> str:
        """``"manifest"``, ``"temporary"``, ``"file"`` or ``"folder"`` for an entry vosuite wrote;
        InputError naming it otherwise."""
        relative = entry.relative_to(self.path).as_posix()
        if relative == MANIFEST_NAME and entry.is_file() and not entry.is_symlink():
            return "manifest"
        is_folder = entry.is_dir() and not entry.is_symlink()
        if is_folder and relative in folders_of_listed:
            return "folder"
        if not is_folder and relative in listed:
            return "file"
        if not is_folder and self._is_temporary_of_listed(entry, listed):
            return "temporary"
        if not self.overwrite:
            raise InputError(f"{self.option} {self.path}: output folder is not empty (pass --overwrite to replace "
                             "what vosuite wrote there)")
        foreign = _first_file(entry) if is_folder else entry
        raise InputError(
            f"{self.path}: {foreign.relative_to(self.path).as_posix()} was not written by vosuite; "
            "refusing to overwrite (move it away or choose another --out)"
        )

    def _is_temporary_of_listed(self, entry: Path, listed: set[str]) -> bool:
        """A temporary file of an atomic write of a file the manifest lists (its writer may be dead)."""
        target = temporary_target(entry.name)
        if target is None or entry.is_symlink():
            return False
        folder = PurePosixPath(entry.parent.relative_to(self.path).as_posix())
        return any(PurePosixPath(item).parent == folder and PurePosixPath(item).name[:len(target)] == target
                   for item in listed)


def _first_file(folder: Path) -> Path:
    """The first non-folder under ``folder`` in sorted depth-first order; ``folder`` itself if it holds none."""
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if not entry.is_dir() or entry.is_symlink():
            return entry
        found = _first_file(entry)
        if found != entry:
            return found
    return folder


def prepare_output(out: PathLike, overwrite: bool, inputs: Iterable[PathLike | None] = (),
                   option: str = "--out") -> OutputFolder:
    """Create and lock the output folder ``out`` (with ``overwrite``, first delete what vosuite wrote
    there). See :class:`OutputFolder` for the rule; register each file with :meth:`OutputFolder.file`."""
    return OutputFolder(out, overwrite, inputs, option)
