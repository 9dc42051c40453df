"""Process-wide CPU settings, for command-line entry points only (the library never calls these)."""

from __future__ import annotations

import os

from vosuite.errors import InputError


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's ``os.cpu_count()``)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # platforms without affinity (macOS)
        return os.cpu_count() or 1


def set_threads(threads: int | None) -> int:
    """``torch.set_num_threads``: ``threads`` (at most the available cores), default every available
    core; returns the count. Called by the CLI, never by the library."""
    import torch

    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise InputError(f"--threads must be a positive integer, got {threads!r}")
    cores = available_cores()
    count = cores if threads is None else min(threads, cores)
    torch.set_num_threads(count)
    return count
