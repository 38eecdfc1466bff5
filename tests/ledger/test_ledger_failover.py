"""Three ingest instances on one PostgreSQL ledger while the server is restarted twice: every
file processed exactly once, nothing lost. Real server, real Ingestors, real files."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from bshmd.errors import ClaimLost
from bshmd.ingest import Ingestor
from bshmd.ledger.backend import PostgresBackend
from bshmd.ledger.store import Ledger
from tests.ingest.helpers import CopyConsumer
from tests.support.config import QUICK_INGEST, make_config
from tests.support.ledger import every_row_done
from tests.support.waiting import wait_until

FILES = 150

pytestmark = pytest.mark.slow


def test_three_instances_survive_database_restarts_exactly_once(hot, pg_cluster, pg_url):
    for index in range(FILES):
        sub = hot["in"] / f"set-{index % 5}"
        sub.mkdir(exist_ok=True)
        (sub / f"img-{index:03d}.jpg").write_bytes(bytes([index % 251]) * (500 + index))
    config = make_config(hot, defaults=QUICK_INGEST, settle_seconds=0.2, poll_seconds=0.3, rescan_seconds=2,
                         ledger={"url": pg_url, "retry_seconds": 30, "lease_seconds": 6})
    consumers = [CopyConsumer(capacity=8, delay=0.03) for _ in range(3)]
    ingestors = [Ingestor(config, c.on_ready, instance_id=f"host-{n}") for n, c in enumerate(consumers)]

    def total() -> Counter:
        return sum((c.counts for c in consumers), Counter())

    for ingestor in ingestors:
        ingestor.start()
    try:
        assert wait_until(lambda: sum(total().values()) >= 30, timeout=60)
        pg_cluster.restart()  # immediate: connections cut mid-transaction
        assert wait_until(lambda: sum(total().values()) >= 90, timeout=90), total()
        restarted = threading.Thread(target=pg_cluster.restart, name="bshmd-test-pg-restart")
        restarted.start()
        restarted.join(60)
        assert wait_until(lambda: len(total()) == FILES, timeout=120), \
            (len(total()), [repr(e) for c in consumers for e in c.errors][:5])
        # Every row done: nothing can be picked up again; closing drains what was picked up before.
        checker = Ledger(PostgresBackend(pg_url), instance_id="waiter")
        try:
            wait_until(lambda: every_row_done(checker, FILES), 60, "every file done in the ledger")
        finally:
            checker.close()
    finally:
        for ingestor in ingestors:
            ingestor.close()
        for consumer in consumers:
            consumer.close()
    errors = [e for c in consumers for e in c.errors]
    assert all(isinstance(e, ClaimLost) for e in errors), errors
    counts = total()
    assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v != 1}
    assert all(c.counts for c in consumers), "every instance should have taken a share of the work"
    ledger = Ledger(PostgresBackend(pg_url), instance_id="checker")
    try:
        [(folder_id, *_)] = ledger.folders()
        rows = ledger.jobs(folder_id)
    finally:
        ledger.close()
    assert len(rows) == FILES and {r.state for r in rows} == {"done"}
