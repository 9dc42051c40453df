"""Output folders: never write into a user's results by accident, never delete what vosuite did not write.

The rule: every file vosuite writes into an output folder is first registered with
:meth:`OutputFolder.file`, which appends its path (relative, POSIX) to a hidden manifest,
``.vosuite-output``, in the folder's root. ``--overwrite`` then deletes exactly those files, and
only when *everything* in the folder is vosuite's: one file or folder the manifest does not
account for (a user's ``notes.txt``, a folder of PNGs from another tool, a folder without a
manifest) makes vosuite refuse and name it, before anything is deleted.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from vosuite.errors import InputError

MANIFEST_NAME = ".vosuite-output"


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


class OutputFolder:
    """A folder vosuite writes results into, with a manifest of the files it wrote there.

    ``OutputFolder(path, overwrite)`` creates ``path`` (parents too). A folder that already has
    content (anything but the manifest) is refused, unless ``overwrite``: then the files listed in
    its manifest are deleted, with the folders they leave empty, provided every file and folder
    in it is accounted for by the manifest; otherwise an :class:`InputError` names the first
    foreign file (in sorted, depth-first order; a foreign folder without files is named itself)
    and nothing is deleted.

    Call :meth:`file` for each file before writing it, so a later ``--overwrite`` may replace it.
    """

    def __init__(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.overwrite = overwrite
        self.manifest = self.path / MANIFEST_NAME
        self._registered: set[str] = set()
        self._prepare()

    @classmethod
    def attach(cls, path: str | os.PathLike) -> OutputFolder:
        """Another process's handle on a folder a first process has just prepared (the ranks of a
        ``torchrun`` inference): no check, nothing deleted; files it registers are appended to the
        same manifest (one short line per append, atomic on POSIX)."""
        folder = cls.__new__(cls)
        folder.path, folder.overwrite = Path(path), False
        folder.manifest = folder.path / MANIFEST_NAME
        folder._registered = set()
        if not folder.path.is_dir():
            raise InputError(f"{folder.path}: output folder missing (the first rank prepares it)")
        return folder

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, overwrite={self.overwrite})"

    def file(self, relative: str | os.PathLike) -> Path:
        """Register a file vosuite is about to write and return its absolute path.

        ``relative`` is a path inside the folder (an absolute path under :attr:`path` is accepted
        too). Its parent folders are created and it is appended to the manifest before the caller
        writes it; registering the same path again does nothing more.
        """
        key = _normalized(self._relative(Path(relative)).as_posix())
        target = self.path / key
        target.parent.mkdir(parents=True, exist_ok=True)
        if key not in self._registered:
            with self.manifest.open("a", encoding="utf-8") as handle:
                handle.write(key + "\n")
                handle.flush()
            self._registered.add(key)
        return target

    def adopt(self, relative: str | os.PathLike) -> list[Path]:
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
        """Create the folder, or check and empty an existing one (see the class docstring)."""
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"{self.path}: output path exists and is not a folder")
        self.path.mkdir(parents=True, exist_ok=True)
        if not self._has_content():
            self._reset_manifest()
            return
        if not self.overwrite:
            raise InputError(
                f"{self.path}: output folder is not empty (pass --overwrite to replace what vosuite wrote there)"
            )
        files, folders = self._scan(_read_manifest(self.manifest))
        for file in files:
            file.unlink()
        for folder in folders:
            if not any(folder.iterdir()):
                folder.rmdir()
        self._reset_manifest()

    def _has_content(self) -> bool:
        """Whether the folder holds anything besides its manifest file."""
        return any(entry != self.manifest or not entry.is_file() for entry in self.path.iterdir())

    def _reset_manifest(self) -> None:
        """Forget every registered file."""
        if self.manifest.is_file():
            self.manifest.unlink()
        self._registered.clear()

    def _scan(self, listed: set[str]) -> tuple[list[Path], list[Path]]:
        """The listed files and the folders holding them (deepest first); InputError at the first foreign entry."""
        files: list[Path] = []
        folders: list[Path] = []
        self._walk(self.path, listed, _ancestors(listed), files, folders)
        return files, folders

    def _walk(self, folder: Path, listed: set[str], folders_of_listed: set[str], files: list[Path],
              folders: list[Path]) -> None:
        """Collect ``folder``'s files and sub-folders (after their contents), in sorted depth-first order."""
        for entry in sorted(folder.iterdir(), key=lambda item: item.name):
            kind = self._classify(entry, listed, folders_of_listed)
            if kind == "folder":
                self._walk(entry, listed, folders_of_listed, files, folders)
                folders.append(entry)
            elif kind == "file":
                files.append(entry)

    def _classify(self, entry: Path, listed: set[str], folders_of_listed: set[str]) -> str:
        """``"file"`` or ``"folder"`` for an entry vosuite wrote; InputError naming it otherwise."""
        relative = entry.relative_to(self.path).as_posix()
        if relative == MANIFEST_NAME and entry.is_file() and not entry.is_symlink():
            return "manifest"
        is_folder = entry.is_dir() and not entry.is_symlink()
        if is_folder and relative in folders_of_listed:
            return "folder"
        if not is_folder and relative in listed:
            return "file"
        foreign = _first_file(entry) if is_folder else entry
        raise InputError(
            f"{self.path}: {foreign.relative_to(self.path).as_posix()} was not written by vosuite; "
            "refusing to overwrite (move it away or choose another --out)"
        )


def _first_file(folder: Path) -> Path:
    """The first non-folder under ``folder`` in sorted depth-first order; ``folder`` itself if it holds none."""
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if not entry.is_dir() or entry.is_symlink():
            return entry
        found = _first_file(entry)
        if found != entry:
            return found
    return folder


def prepare_output(out: str | os.PathLike, overwrite: bool) -> OutputFolder:
    """Create the output folder ``out`` (with ``overwrite``, first delete what vosuite wrote there).

    See :class:`OutputFolder` for the rule; register each file with :meth:`OutputFolder.file`.
    """
    return OutputFolder(out, overwrite)
