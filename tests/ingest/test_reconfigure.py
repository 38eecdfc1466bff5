"""SIGHUP under a backlog: reconfigure must not wait for the pipeline to make room.

The daemon calls ``Ingestor.reconfigure`` on its main thread, the one that pings systemd's
watchdog. A pass of the ingest thread may be blocked in ``on_ready`` for as long as the
pipeline is full.
"""

from __future__ import annotations

import threading

from bshmd.config import parse_config
from bshmd.ingest import Ingestor
from bshmd.pipeline.job import Job
from tests.ingest.helpers import CopyConsumer
from tests.support.config import QUICK_INGEST, make_config
from tests.support.waiting import wait_until


class GatedConsumer:
    """on_ready that blocks (like a full pipeline) until ``gate`` is opened."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.blocked = threading.Event()
        self.inner = CopyConsumer(capacity=256)

    def on_ready(self, job: Job) -> bool:
        self.blocked.set()
        self.gate.wait()
        return self.inner.on_ready(job)


def test_reconfigure_returns_while_a_pass_waits_for_room_and_applies_after(hot, tmp_path):
    for index in range(20):
        (hot["in"] / f"backlog-{index:02d}.jpg").write_bytes(b"b" * (10 + index))
    consumer = GatedConsumer()
    config = make_config(hot, defaults=QUICK_INGEST, settle_seconds=0.2, poll_seconds=0.2)
    ingestor = Ingestor(config, consumer.on_ready, instance_id="reload")
    ingestor.start()
    try:
        assert consumer.blocked.wait(15), "the ingest pass never offered a file"
        second = {name: tmp_path / f"{name}2" for name in ("in", "out", "quarantine")}
        for path in second.values():
            path.mkdir()
        (second["in"] / "other.jpg").write_bytes(b"o" * 10)
        new_config = parse_config(
            {"folders": [{"input": str(hot["in"]), "output": str(hot["out"]), "quarantine": str(hot["quarantine"])},
                         {"input": str(second["in"]), "output": str(second["out"]),
                          "quarantine": str(second["quarantine"])}],
             "settle_seconds": 0.2, "poll_seconds": 0.2},
            base_dir=tmp_path)
        caller = threading.Thread(target=ingestor.reconfigure, args=(new_config,), name="bshmd-test-reload")
        caller.start()
        # A generous responsiveness bound: before the fix this waited for the gate for ever.
        caller.join(5.0)
        returned = not caller.is_alive()
        consumer.gate.set()
        caller.join(10)
        assert returned, "reconfigure waited for the blocked hand-over"
        assert wait_until(lambda: "other.jpg" in consumer.inner.counts, timeout=20), consumer.inner.counts
        assert wait_until(lambda: len(consumer.inner.counts) == 21, timeout=20), consumer.inner.counts
        assert set(ingestor.health()["folders"]) == {str(hot["in"]), str(second["in"])}
        assert all(count == 1 for count in consumer.inner.counts.values())
    finally:
        consumer.gate.set()
        ingestor.close()
        consumer.inner.close()


def test_request_rescan_returns_while_a_pass_waits_for_room(hot):
    (hot["in"] / "one.jpg").write_bytes(b"1" * 10)
    consumer = GatedConsumer()
    events: list[str] = []
    ingestor = Ingestor(make_config(hot, defaults=QUICK_INGEST, settle_seconds=0.2, poll_seconds=0.2), consumer.on_ready,
                        instance_id="rescan", on_event=lambda name, fields: events.append(name))
    ingestor.start()
    try:
        assert consumer.blocked.wait(15)
        caller = threading.Thread(target=ingestor.request_rescan, name="bshmd-test-rescan")
        caller.start()
        caller.join(5.0)
        returned = not caller.is_alive()
        rescans = events.count("rescan")
        consumer.gate.set()
        caller.join(10)
        assert returned, "request_rescan waited for the blocked hand-over"
        # The requested rescan runs once the pass is free again.
        assert wait_until(lambda: events.count("rescan") > rescans, timeout=10)
    finally:
        consumer.gate.set()
        ingestor.close()
        consumer.inner.close()
