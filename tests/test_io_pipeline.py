"""Read-ahead and background writing: order, bounded queues, errors raised where they belong."""

from __future__ import annotations

import threading
import time

import pytest

from vosuite.io.pipeline import BackgroundWriter, prefetch


def test_prefetch_keeps_order_and_stays_bounded() -> None:
    produced = []

    def items():
        for index in range(20):
            produced.append(index)
            yield index

    seen = []
    for item in prefetch(items(), depth=2):
        time.sleep(0.002)
        assert len(produced) - len(seen) <= 4  # the queue (2), one in the producer's hand, one handed over
        seen.append(item)
    assert seen == list(range(20))


def test_prefetch_raises_the_producers_error_in_order_and_stops_when_closed() -> None:
    def failing():
        yield 1
        raise ValueError("bad frame")

    stream = prefetch(failing())
    assert next(stream) == 1
    with pytest.raises(ValueError, match="bad frame"):
        next(stream)
    started = threading.active_count()
    endless = prefetch(iter(int, 1))  # never ends
    next(endless)
    endless.close()
    time.sleep(0.3)
    assert threading.active_count() <= started


def test_background_writer_runs_in_order_and_reports_the_first_failure() -> None:
    done = []
    with BackgroundWriter(depth=2) as writer:
        for index in range(10):
            writer.submit(done.append, index)
    assert done == list(range(10))

    def fail(_):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), BackgroundWriter() as writer:
        writer.submit(fail, 0)
        writer.submit(done.append, 99)  # skipped after the failure
    assert 99 not in done
