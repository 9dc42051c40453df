"""Shared test helpers: where the read-only shared data lives (never copied into the repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_ROOT = Path(os.environ.get("VOSUITE_DATA", REPO_ROOT.parent / "shared"))


def shared_data_root() -> Path | None:
    """The shared data folder, ``$VOSUITE_DATA`` or ``<repo>/../shared``; None when it does not exist."""
    return SHARED_ROOT if SHARED_ROOT.is_dir() else None


def requires_shared(relative: str, what: str) -> pytest.MarkDecorator:
    """Skip marker for tests that need ``<shared>/<relative>``, with the reason spelled out."""
    path = SHARED_ROOT / relative
    return pytest.mark.skipif(not path.exists(),
                              reason=f"{what} not found at {path} (set VOSUITE_DATA to the shared data folder)")


def shared_path(recorded: str | Path) -> Path:
    """A path that a fixture file records from the shared folder (``shared/...``) resolved here."""
    recorded = Path(recorded)
    return SHARED_ROOT.joinpath(*recorded.parts[1:]) if recorded.parts[0] == "shared" else SHARED_ROOT / recorded


@pytest.fixture
def shared_root() -> Path:
    """The shared data folder; skips the test when it is absent."""
    root = shared_data_root()
    if root is None:
        pytest.skip("VOSUITE_DATA (or ../shared beside the repository) not found")
    return root
