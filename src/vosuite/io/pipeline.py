"""Overlap decoding and writing with compute: a read-ahead thread and a writer thread, each with a
bounded queue (so memory stays bounded: at most ``depth`` frames or masks wait).

JPEG / video decoding (OpenCV, PyAV) and PNG encoding (zlib) release the GIL, so on a CPU they
run while the network computes in the main thread.

    for frame in prefetch(open_frames(path)):           # decoded one or two frames ahead
        ...
    with BackgroundWriter() as writer:
        writer.submit(write_mask, path, labels)          # written while the next frame computes
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """The items of ``items``, produced by a background thread up to ``depth`` ahead. An exception
    in the producer is raised here, in order; closing the generator stops the producer."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put((_DONE, None))
        except BaseException as error:  # handed to the consumer
            buffer.put((_DONE, error))

    thread = threading.Thread(target=produce, name="vosuite-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = buffer.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


class BackgroundWriter:
    """Run ``submit``-ted write calls in one background thread, in order, at most ``depth``
    waiting. Leaving the ``with`` block waits for every write; the first failure is raised there
    (or at the next ``submit``), and later writes are skipped."""

    def __init__(self, depth: int = 4) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="vosuite-writer", daemon=True)

    def __enter__(self) -> BackgroundWriter:
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            task = self._queue.get()
            if task is None:
                return
            if self._error is None:
                function, args = task
                try:
                    function(*args)
                except BaseException as error:
                    self._error = error

    def submit(self, function: Callable[..., Any], *args: Any) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((function, args))

    def __exit__(self, *exc: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and exc[0] is None:
            raise self._error
