"""Shared test helpers: where the read-only shared data lives (never copied into the repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path | None:
    """The shared data folder, ``$VOSUITE_DATA`` or ``<repo>/../shared``; None when it does not exist."""
    root = Path(os.environ.get("VOSUITE_DATA", REPO_ROOT.parent / "shared"))
    return root if root.is_dir() else None


@pytest.fixture
def shared_root() -> Path:
    """The shared data folder; skips the test when it is absent."""
    root = shared_data_root()
    if root is None:
        pytest.skip("VOSUITE_DATA (or ../shared beside the repository) not found")
    return root
