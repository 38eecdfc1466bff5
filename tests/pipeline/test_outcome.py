"""A job ends once, as one typed Outcome handed to its claim and to on_done; the clock is the pipeline's."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bshmd.errors import InputRejected, NotFinished
from bshmd.ledger.outcome import NOT_FINISHED, PROCESSED, QUARANTINED, RELEASED, Outcome
from bshmd.pipeline.job import Job
from bshmd.pipeline.pipeline import Pipeline
from bshmd.testing.images import synthetic_portrait
from tests.pipeline.test_pipeline import folder_pair, job_for, make_config, save


class KeepingClaim:
    """The Claim protocol, keeping the Outcome objects it is ended with."""

    taken_from = None

    def __init__(self) -> None:
        self.ended: list[Outcome] = []

    def complete(self, outcome: Outcome) -> None:
        self.ended.append(outcome)

    def release(self, outcome: Outcome | None = None) -> None:
        assert outcome is not None
        self.ended.append(outcome)

    def verify(self) -> None:
        pass

    def fence(self) -> None:
        pass


class Listener:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ended: dict[Path, list[Outcome]] = {}

    def __call__(self, job: Job, outcome: Outcome) -> None:
        with self.lock:
            self.ended.setdefault(job.path, []).append(outcome)


def test_the_claim_and_on_done_get_the_same_outcome_object(tmp_path: Path, engine: Any) -> None:
    config = make_config(tmp_path, [folder_pair(tmp_path, "a")])
    folder = config.folders[0]
    good = save(folder.input / "good.jpg", synthetic_portrait(160, 160, 1))
    broken = folder.input / "broken.jpg"
    broken.write_bytes(good.read_bytes()[:600])
    empty = save(folder.input / "empty.png", np.full((160, 160, 3), 200, np.uint8))
    listener = Listener()
    claims = {path: KeepingClaim() for path in (good, broken, empty)}
    pipeline = Pipeline(config, engine, instance_id="test-1", on_done=listener)
    pipeline.start()
    try:
        for path, claim in claims.items():
            assert pipeline.submit(job_for(config, path, claim=claim), timeout=10)
        assert pipeline.wait_idle(60)
    finally:
        assert pipeline.stop(30)
    for path, claim in claims.items():
        (told,) = listener.ended[path]
        (recorded,) = claim.ended
        assert told is recorded  # one object, one way: nothing is rebuilt from a string
    assert listener.ended[good] == [Outcome(PROCESSED)]
    assert listener.ended[broken] == [Outcome(QUARANTINED, "truncated")]
    assert listener.ended[empty] == [Outcome(QUARANTINED, "no_subject")]


def test_a_file_still_being_written_is_given_back_never_quarantined(tmp_path: Path, engine: Any) -> None:
    assert not issubclass(NotFinished, InputRejected)  # no refusal handler can quarantine it
    config = make_config(tmp_path, [folder_pair(tmp_path, "a")], truncated_grace_seconds=60)
    folder = config.folders[0]
    whole = save(folder.input / "whole.jpg", synthetic_portrait(160, 160, 2))
    young = folder.input / "young.jpg"
    young.write_bytes(whole.read_bytes()[:600])  # cut short a moment ago: still being copied
    listener = Listener()
    claim = KeepingClaim()
    pipeline = Pipeline(config, engine, instance_id="test-1", on_done=listener)
    pipeline.start()
    try:
        assert pipeline.submit(job_for(config, young, claim=claim), timeout=10)
        assert pipeline.wait_idle(60)
    finally:
        assert pipeline.stop(30)
    (outcome,) = claim.ended
    assert listener.ended[young] == [outcome]
    assert (outcome.kind, outcome.reason) == (RELEASED, NOT_FINISHED)
    assert outcome.retry_after is not None and 0 < outcome.retry_after <= 60
    assert young.exists() and list(folder.quarantine.iterdir()) == []


def test_timings_and_progress_are_read_from_the_injected_clock(tmp_path: Path, engine: Any,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    now = [5000.0]  # stands still: every duration the pipeline measures is zero, every wait is 10 s
    config = make_config(tmp_path, [folder_pair(tmp_path, "a")], batch={"max_size": 1, "max_wait_ms": 50})
    folder = config.folders[0]
    source = save(folder.input / "one.jpg", synthetic_portrait(160, 160, 3))
    listener = Listener()
    caplog.set_level(logging.INFO, logger="bshmd.pipeline")
    pipeline = Pipeline(config, engine, instance_id="test-1", on_done=listener, clock=lambda: now[0])
    pipeline.start()
    try:
        job = job_for(config, source)
        job.settled_at = now[0] - 10.0
        assert pipeline.submit(job, timeout=10)
        assert pipeline.wait_idle(60)
        health = pipeline.health()
    finally:
        assert pipeline.stop(30)
    assert listener.ended[source] == [Outcome(PROCESSED)]
    assert job.timings == {"wait": 10.0, "decode": 0.0, "infer": 0.0, "write": 0.0}
    assert health.last_progress == 5000.0 and health.processed == 1
    (line,) = [r for r in caplog.records if r.getMessage().startswith("processed ")]
    assert line.bshmd_latency == 10.0
