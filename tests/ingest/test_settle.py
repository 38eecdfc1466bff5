from __future__ import annotations

import os
from pathlib import Path

from bshmd.fs.fresh import revalidate
from bshmd.ingest.settle import DONE, SETTLING, WAITING, SettleTracker
from bshmd.ledger.keys import FileKey


class Clock:
    """A hand-driven monotonic clock, so settle arithmetic is checked exactly."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


P = Path("/in/a.jpg")


def key(size: int, mtime: int = 1) -> FileKey:
    return FileKey("a.jpg", size, mtime)


def test_a_file_settles_only_after_settle_seconds_without_change():
    clock = Clock()
    tracker = SettleTracker(2.0, clock)
    assert tracker.observe(P, key(10))
    assert tracker.due() == []
    clock.now += 1.9
    assert tracker.due() == []
    clock.now += 0.1
    assert [path for path, _ in tracker.due()] == [P]
    assert tracker.check(P, key(10))


def test_a_change_restarts_the_settle_time():
    clock = Clock()
    tracker = SettleTracker(2.0, clock)
    tracker.observe(P, key(0))  # a copy tool creates the empty file first
    clock.now += 2.0
    assert not tracker.check(P, key(5000))
    clock.now += 1.0
    assert tracker.due() == []
    clock.now += 1.0
    assert tracker.check(P, key(5000))
    assert not tracker.check(P, key(5000, mtime=2))  # same size, new mtime: still changing


def test_repeated_sightings_of_an_unchanged_file_are_not_news():
    clock = Clock()
    tracker = SettleTracker(1.0, clock)
    assert tracker.observe(P, key(1))
    clock.now += 0.5
    assert not tracker.observe(P, key(1))
    clock.now += 0.5
    assert tracker.check(P, key(1))  # the first sighting still counts


def test_finished_files_stay_quiet_until_their_key_changes():
    clock = Clock()
    tracker = SettleTracker(1.0, clock)
    tracker.observe(P, key(1))
    tracker.finish(P, key(1), DONE)
    assert len(tracker) == 0 and tracker.state_of(P) == DONE
    assert not tracker.observe(P, key(1))
    assert tracker.next_deadline() is None
    assert tracker.observe(P, key(2))  # re-exported with new content
    assert tracker.state_of(P) == SETTLING


def test_retry_and_reopen():
    clock = Clock()
    tracker = SettleTracker(1.0, clock)
    tracker.observe(P, key(1))
    clock.now += 1.0
    tracker.retry_later(P, 5.0)
    assert tracker.state_of(P) == WAITING and tracker.due() == []
    clock.now += 5.0
    assert tracker.due() and tracker.check(P, key(1))
    tracker.forget(P)  # handed over: the ledger holds it, the tracker keeps nothing
    assert tracker.state_of(P) is None and len(tracker) == 0
    tracker.reopen(P, key(1))  # released: back without a record of its own
    assert tracker.due() and tracker.check(P, key(1))  # offered again without a new settle wait


def test_forget_missing_drops_vanished_files():
    tracker = SettleTracker(1.0, Clock())
    other = Path("/in/b.jpg")
    tracker.observe(P, key(1))
    tracker.observe(other, FileKey("b.jpg", 1, 1))
    tracker.finish(other, FileKey("b.jpg", 1, 1), DONE)
    tracker.forget_missing({str(P)})
    assert tracker.state_of(other) is None and tracker.state_of(P) == SETTLING


def test_forget_under_drops_a_removed_folder_only():
    tracker = SettleTracker(1.0, Clock())
    inside, beside = Path("/in/sub/a.jpg"), Path("/in/sub2/a.jpg")
    for path in (inside, beside):
        tracker.observe(path, FileKey(str(path), 1, 1))
        tracker.finish(path, FileKey(str(path), 1, 1), DONE)
    tracker.observe(Path("/in/sub/deeper/b.jpg"), FileKey("sub/deeper/b.jpg", 1, 1))
    tracker.forget_under(Path("/in/sub"))
    assert tracker.state_of(inside) is None and len(tracker) == 0
    assert tracker.state_of(beside) == DONE and tracker.finished_count() == 1


def test_revalidate_opens_the_file_and_gives_its_attributes(tmp_path):
    readable = tmp_path / "r.jpg"
    readable.write_bytes(b"xyz")
    fresh, why = revalidate(readable)
    assert why == "" and fresh is not None and fresh.st_size == 3
    assert fresh.st_mtime_ns == readable.stat().st_mtime_ns
    assert revalidate(tmp_path / "missing.jpg") == (None, "ENOENT")
    if os.geteuid() != 0:  # root reads anything
        readable.chmod(0)
        assert revalidate(readable)[0] is None
