"""Background work of ``vosuite app``: propagation from an annotated frame (forward, backward or
both) and "find objects" (``vosuite discover``), one job per session, in a thread, with progress,
fps and the last finished frame for the live view.

Propagation restarts the model's memory at the start frame, as the interactive tools of XMem and
Cutie do after a correction: the start frame's mask (the user's annotation there, else the mask
propagated there before) is the only prompt, and every frame the job reaches gets a new mask.
Going backward, the frames are fed in reverse order. Frames are read from the session folder one
at a time, so memory stays bounded by the model's capped memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from vosuite.app.session import AppSession
from vosuite.errors import InputError

DIRECTIONS = ("forward", "backward", "both")


@dataclass
class JobStatus:
    """What the page polls: ``state`` is running, done, stopped or failed."""

    kind: str
    state: str = "running"
    done: int = 0
    total: int = 0
    fps: float = 0.0
    latest: int | None = None
    error: str | None = None
    started: float = field(default_factory=time.perf_counter)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "state": self.state, "done": self.done, "total": self.total,
                "fps": round(self.fps, 2), "latest": self.latest, "error": self.error}


class Job:
    """A thread running ``work(status, stop_event)``; its failures become ``status.error``."""

    def __init__(self, kind: str, work: Callable[[JobStatus, threading.Event], None]) -> None:
        self.status = JobStatus(kind)
        self.stop_event = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(work,), name=f"vosuite-app-{kind}", daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[JobStatus, threading.Event], None]) -> None:
        try:
            work(self.status, self.stop_event)
            self.status.state = "stopped" if self.stop_event.is_set() else "done"
        except InputError as error:
            self.status.state, self.status.error = "failed", str(error)
        except Exception as error:  # noqa: BLE001 - the server keeps running; the page shows the message
            self.status.state, self.status.error = "failed", f"{type(error).__name__}: {error}"

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> None:
        self.stop_event.set()
        self._thread.join(timeout)


def frame_order(start: int, num_frames: int, direction: str) -> list[list[int]]:
    """The passes of a propagation from ``start``: each a list of frame indices, start first."""
    if direction not in DIRECTIONS:
        raise InputError(f"direction {direction!r}: choose one of {', '.join(DIRECTIONS)}")
    forward, backward = list(range(start, num_frames)), list(range(start, -1, -1))
    return {"forward": [forward], "backward": [backward], "both": [forward, backward]}[direction]


def start_frame_labels(session: AppSession, start: int) -> np.ndarray:
    labels, kind = session.labels(start)
    if kind == "empty":
        raise InputError(f"frame {start} has no mask: draw the objects there (or import a mask) first")
    return session.check_labels(labels, f"the mask of frame {start}")


def propagation_job(session: AppSession, segmenter, start: int, direction: str) -> Job:
    """Follow frame ``start``'s objects with ``segmenter`` (a :class:`vosuite.Segmenter`)."""
    video = session.require_video()
    passes = frame_order(session.frame_index(start), video.num_frames, direction)
    first = start_frame_labels(session, start)

    def work(status: JobStatus, stop: threading.Event) -> None:
        status.total = len({index for order in passes for index in order})
        counted: set[int] = set()
        for order in passes:
            for position, labels in segmenter.propagate(_frames(session, order, stop), {0: first}):
                index = order[position]
                if index != start:  # the start frame keeps its mask
                    session.write_result(index, labels)
                if index not in counted:  # each pass begins at the start frame
                    counted.add(index)
                    _advance(status, index)
            if stop.is_set():
                return

    return Job("propagate", work)


def discovery_job(session: AppSession, discoverer) -> Job:
    """Find objects in every frame with ``discoverer`` (a :class:`vosuite.Discoverer`); the
    proposals become the propagated masks (ids 1..K)."""
    video = session.require_video()

    def work(status: JobStatus, stop: threading.Event) -> None:
        status.total = video.num_frames
        for index, labels in discoverer.discover(session.frames_dir):
            session.write_result(index, labels)
            _advance(status, index)
            if stop.is_set():
                return

    return Job("discover", work)


def _frames(session: AppSession, order: list[int], stop: threading.Event) -> Iterator[np.ndarray]:
    for index in order:
        if stop.is_set():
            return
        yield session.frame_rgb(index)


def _advance(status: JobStatus, index: int) -> None:
    status.done += 1
    status.latest = index
    elapsed = time.perf_counter() - status.started
    status.fps = status.done / elapsed if elapsed > 0 else 0.0
