"""The batcher with real producer and consumer threads."""

from __future__ import annotations

import threading
import time

import pytest

from bshmd.pipeline.batcher import Batcher
from tests.support.waiting import wait_until


def _consume(batcher: Batcher, out: list, stamps: list) -> threading.Thread:
    def loop() -> None:
        while True:
            batch = batcher.next_batch()
            if batch is None:
                return
            stamps.append(time.monotonic())
            out.append(batch)

    thread = threading.Thread(target=loop, name="bshmd-test-consumer")
    thread.start()
    return thread


def test_flushes_as_soon_as_a_group_is_full() -> None:
    # A deadline far away: only the size can release the batch.
    batcher: Batcher[int] = Batcher(max_size=3, max_wait=60.0)
    out: list = []
    consumer = _consume(batcher, out, [])
    try:
        for i in range(3):
            batcher.add(i, (10, 10))
        assert wait_until(lambda: len(out) == 1, 10, interval=0.005)
        assert out == [[0, 1, 2]]
        batcher.add(3, (10, 10))
        batcher.add(4, (10, 10))
        assert batcher.pending() == 2
    finally:
        batcher.close()
        consumer.join(5)
    assert out[1] == [3, 4]


def test_flushes_at_the_deadline_of_the_first_item_and_not_before() -> None:
    max_wait = 0.5
    batcher: Batcher[str] = Batcher(max_size=8, max_wait=max_wait)
    out: list = []
    stamps: list = []
    consumer = _consume(batcher, out, stamps)
    try:
        added = time.monotonic()
        batcher.add("a", (4, 4))
        batcher.add("b", (4, 4))
        assert wait_until(lambda: len(out) == 1, 10, interval=0.005)
        waited = stamps[0] - added
        assert waited >= max_wait  # never before the deadline
        assert waited < max_wait + 5  # and released without another item arriving
        assert out == [["a", "b"]]
    finally:
        batcher.close()
        consumer.join(5)


def test_next_batch_times_out_before_the_deadline() -> None:
    batcher: Batcher[str] = Batcher(max_size=8, max_wait=30.0)
    batcher.add("a", (4, 4))
    assert batcher.next_batch(timeout=0.05) is None
    assert batcher.pending() == 1


def test_images_of_different_sizes_never_share_a_batch() -> None:
    batcher: Batcher[tuple[str, int]] = Batcher(max_size=2, max_wait=60.0)
    out: list = []
    consumer = _consume(batcher, out, [])
    try:
        batcher.add(("small", 1), (10, 10))
        batcher.add(("large", 1), (20, 10))
        batcher.add(("large", 2), (20, 10))
        assert wait_until(lambda: len(out) == 1, 10, interval=0.005)
        assert out[0] == [("large", 1), ("large", 2)]
        batcher.add(("small", 2), (10, 10))
        assert wait_until(lambda: len(out) == 2, 10, interval=0.005)
        assert out[1] == [("small", 1), ("small", 2)]
    finally:
        batcher.close()
        consumer.join(5)


def test_many_producers_lose_nothing() -> None:
    batcher: Batcher[int] = Batcher(max_size=4, max_wait=0.05)
    out: list = []
    consumer = _consume(batcher, out, [])

    def produce(base: int) -> None:
        for i in range(50):
            batcher.add(base + i, (i % 3, 1))

    producers = [threading.Thread(target=produce, args=(n * 1000,), name=f"bshmd-test-producer-{n}")
                 for n in range(4)]
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join(10)
    batcher.close()
    consumer.join(10)
    items = [item for batch in out for item in batch]
    assert sorted(items) == sorted(n * 1000 + i for n in range(4) for i in range(50))
    assert all(1 <= len(batch) <= 4 for batch in out)
    assert all(len({item % 1000 % 3 for item in batch}) == 1 for batch in out)


def test_close_releases_the_remainder_at_once() -> None:
    batcher: Batcher[int] = Batcher(max_size=10, max_wait=60.0)
    for i in range(3):
        batcher.add(i, (1, 1))
    batcher.add(9, (2, 2))
    batcher.close()
    started = time.monotonic()
    batches = [batcher.next_batch(), batcher.next_batch()]
    assert batcher.next_batch() is None
    assert time.monotonic() - started < 30  # not held back until the 60 s deadline
    assert sorted(map(tuple, batches)) == [(0, 1, 2), (9,)]
    with pytest.raises(RuntimeError):
        batcher.add(5, (1, 1))
