"""Per-file records stay bounded over a long run: a real Ingestor, real files, a real consumer.

Over months a daemon sees millions of files. Whatever it keeps per file must go once the file
is finished and has left the folder; a file that stays (on_success: keep) keeps only a small
record, so that rescans do not read its claim again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from bshmd.ingest import Ingestor
from bshmd.ledger.claims import DONE_CACHE_LIMIT
from tests.ingest.helpers import CopyConsumer
from tests.support.config import QUICK_INGEST, make_config
from tests.support.waiting import wait_until

FILES = 240


def _drop(folder, count: int) -> list[str]:
    names = []
    for index in range(count):
        sub = folder / f"sub{index % 4}"
        sub.mkdir(exist_ok=True)
        (sub / f"img-{index:04d}.jpg").write_bytes(b"i" * (100 + index))
        names.append(f"sub{index % 4}/img-{index:04d}.jpg")
    return names


@pytest.fixture
def ingest(hot, request) -> Iterator[tuple[Ingestor, CopyConsumer]]:
    on_success, watch = request.param
    consumer = CopyConsumer(capacity=32, on_success=on_success)
    config = make_config(hot, defaults=QUICK_INGEST, settle_seconds=0.2, poll_seconds=0.2, rescan_seconds=600,
                         on_success=on_success, folder={"watch": watch})
    ingestor = Ingestor(config, consumer.on_ready, instance_id="bookkeeping")
    ingestor.start()
    yield ingestor, consumer
    ingestor.close()
    consumer.close()


@pytest.mark.parametrize("ingest", [("move", "events"), ("delete", "events"),
                                    pytest.param(("move", "poll"), marks=pytest.mark.slow)], indirect=True,
                         ids=["move-events", "delete-events", "move-poll"])
def test_records_of_files_that_left_the_folder_are_dropped(hot, ingest):
    ingestor, consumer = ingest
    names = _drop(hot["in"], FILES)
    assert wait_until(lambda: set(consumer.counts) == set(names), timeout=90), len(consumer.counts)
    # Completed jobs are not kept; claims are not held after completion.
    assert wait_until(lambda: ingestor.record_counts()["handed"] == 0, timeout=10), ingestor.record_counts()
    counts = ingestor.record_counts()
    assert counts["held_claims"] == 0 and counts["settling"] == 0, counts
    # Every input left the folder: inotify reports it and the records go at once; a polled
    # folder (a share written from other hosts) drops them at the next full rescan.
    if ingestor.health()["folders"][str(hot["in"])]["mode"] == "poll":
        ingestor.request_rescan()
    assert wait_until(lambda: ingestor.record_counts()["finished"] == 0, timeout=15), ingestor.record_counts()
    assert not any(path.is_file() for path in hot["in"].rglob("*"))
    assert all(count == 1 for count in consumer.counts.values())


@pytest.mark.slow
@pytest.mark.parametrize("ingest", [("keep", "events")], indirect=True, ids=["keep"])
def test_kept_files_keep_one_small_record_each_until_they_go(hot, ingest):
    ingestor, consumer = ingest
    names = _drop(hot["in"], FILES)
    assert wait_until(lambda: set(consumer.counts) == set(names), timeout=90), len(consumer.counts)
    assert wait_until(lambda: ingestor.record_counts()["handed"] == 0, timeout=10), ingestor.record_counts()
    counts = ingestor.record_counts()
    # One record per file still in the folder, nothing more; the done cache is capped.
    assert counts["finished"] == FILES and counts["held_claims"] == 0, counts
    assert counts["done_cached"] <= min(FILES, DONE_CACHE_LIMIT)
    # Files removed by hand while the daemon looks away (no event is promised for a share
    # written from another host): the next full rescan drops their records.
    ingestor.stop()
    for name in names[::2]:
        os.unlink(hot["in"] / name)
    ingestor.start()
    ingestor.request_rescan()
    assert wait_until(lambda: ingestor.record_counts()["finished"] == FILES // 2, timeout=15), \
        ingestor.record_counts()
    assert all(count == 1 for count in consumer.counts.values())
