"""Inputs given back because their quarantine or output folder fails wait longer each time.

Real files, a real Ingestor re-offering released files, a real Pipeline on the stand-in graph
(the test fixture with the model's contract, not the model), real threads.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bshmd.config import Config
from bshmd.decode.image import decode_image
from bshmd.ingest import Ingestor
from bshmd.ledger.keys import FileKey
from bshmd.ledger.outcome import Outcome
from bshmd.pipeline.job import Job
from bshmd.pipeline.pipeline import Pipeline
from bshmd.pipeline.retry import RetryBackoff
from bshmd.service.health import ServiceState
from tests.support import config as support_config
from tests.support.waiting import wait_until

BASE = 0.2  # seconds: the first retry delay in these tests (5 s in service)


def make_config(root: Path, output: str = "out", **pipeline: float) -> Config:
    return support_config.make_config(
        root, folder={"output": output},
        settle_seconds=0.2, poll_seconds=0.2, rescan_seconds=30,
        truncated_grace_seconds=0,  # the broken input is refused at once, as a finished one
        batch={"max_size": 2, "max_wait_ms": 20},
        pipeline={"decode_workers": 1, "write_workers": 1, "queue_size": 4, **pipeline},
        gate={"enabled": False},
    )


def photo(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    image = np.full((96, 72, 3), 220, np.uint8)
    image[20:90, 20:52] = (90, 60, 50)
    image = np.clip(image + rng.normal(0, 2, image.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def backing_off(pipeline: Pipeline, reason: str) -> float | None:
    """The bshmd_files_backing_off gauge as /metrics would show it."""
    return pipeline.metrics.registry.get_sample_value("bshmd_files_backing_off", {"reason": reason})


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if not p.is_dir()]


@pytest.mark.slow
def test_a_file_whose_quarantine_folder_is_a_symlink_waits_longer_each_time_then_is_quarantined(
        tmp_path: Path, engine: Any, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("in/sub", "out", "quarantine", "elsewhere"):
        (tmp_path / name).mkdir(parents=True)
    linked = tmp_path / "quarantine" / "sub"
    linked.symlink_to(tmp_path / "elsewhere")  # nothing may be written through it
    broken = tmp_path / "in" / "sub" / "broken.jpg"
    broken.write_bytes(photo(1)[:600])  # half a JPEG: it belongs in quarantine/sub/
    good = tmp_path / "in" / "good.jpg"
    good.write_bytes(photo(2))
    config = make_config(tmp_path)

    attempts: list[float] = []  # monotonic start of each decode of broken.jpg
    outcomes: list[tuple[str, str]] = []
    lock = threading.Lock()

    def decoder(path: Path, **limits: Any) -> Any:
        if path == broken:
            with lock:
                attempts.append(time.monotonic())
        return decode_image(path, **limits)

    def on_done(job: Job, outcome: Outcome) -> None:
        with lock:
            outcomes.append((job.path.name, str(outcome)))

    caplog.set_level(logging.DEBUG, logger="bshmd.pipeline")
    pipeline = Pipeline(config, engine, instance_id="node-1", on_done=on_done, decoder=decoder,
                        retry_base_seconds=BASE, retry_max_seconds=8 * BASE)
    pipeline.start()
    ingestor = Ingestor(config, lambda job: pipeline.submit(job, timeout=5), instance_id="node-1")
    ingestor.start()
    try:
        wait_until(lambda: len(attempts) >= 5, 30, "five attempts at broken.jpg")
        with lock:
            starts, seen = list(attempts), list(outcomes)
        # Each attempt waits at least twice as long as the one before: 0.2, 0.4, 0.8, 1.6 s.
        gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
        for number, gap in enumerate(gaps[:4]):
            assert gap >= BASE * 2 ** number, (number, gaps)
        assert starts[4] - starts[0] >= BASE * (1 + 2 + 4 + 8)
        assert ("good.jpg", "processed") in seen  # other files flow meanwhile
        assert {o for n, o in seen if n == "broken.jpg"} == {"released:quarantine_failed"}
        assert broken.exists()
        assert files_under(tmp_path / "elsewhere") == []

        problems = [r for r in caplog.records if "cannot quarantine" in r.getMessage()]
        assert [r.levelno for r in problems if r.levelno >= logging.ERROR] == [logging.ERROR]  # once
        assert len(problems) >= 4 and "failure 2 in a row" in problems[1].getMessage()
        health = pipeline.health()
        assert health.quarantine_unavailable and health.files_backing_off == 1
        assert backing_off(pipeline, "quarantine_failed") == 1
        state = ServiceState("node-1", pipeline_health=pipeline.health)
        assert any(c.startswith("quarantine unavailable") for c in state.conditions())

        # Someone fixes the share: the next attempt quarantines the file normally.
        linked.unlink()
        linked.mkdir()
        wait_until(lambda: any(n == "broken.jpg" and o.startswith("quarantined:") for n, o in outcomes), 15,
                   "broken.jpg to be quarantined")
        assert not broken.exists()
        assert (linked / "broken.jpg").read_bytes() == photo(1)[:600]
        record = json.loads((linked / "broken.jpg.reason.json").read_text())
        assert record["relpath"] == "sub/broken.jpg" and record["status"] == "quarantined"
        assert files_under(tmp_path / "elsewhere") == []
        health = pipeline.health()
        assert not health.quarantine_unavailable and health.files_backing_off == 0
        assert backing_off(pipeline, "quarantine_failed") == 0
        assert not any(c.startswith("quarantine unavailable") for c in state.conditions())
    finally:
        ingestor.stop()
        assert pipeline.stop(timeout=30)


@pytest.mark.slow
def test_an_unavailable_output_backs_off_per_file_and_a_success_or_a_new_version_starts_afresh(
        tmp_path: Path, engine: Any, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("in", "quarantine", "share"):
        (tmp_path / name).mkdir()
    # share/out is missing: an unmounted share. The delays come from the configuration here.
    config = make_config(tmp_path, output="share/out", retry_base_seconds=BASE, retry_max_seconds=8 * BASE)
    folder = config.folders[0]
    source = tmp_path / "in" / "a.jpg"
    source.write_bytes(photo(3))
    ended: list[Outcome] = []
    caplog.set_level(logging.DEBUG, logger="bshmd.pipeline")
    pipeline = Pipeline(config, engine, instance_id="node-1", on_done=lambda job, o: ended.append(o))
    pipeline.start()

    def attempt() -> Outcome:
        # What the ingestor does for each offer: a new Job for the file as it is now.
        job = Job(folder=folder, path=source, key=FileKey.of(folder.input, source))
        count = len(ended)
        assert pipeline.submit(job, timeout=10)
        wait_until(lambda: len(ended) > count, 30, "the attempt to finish")
        return ended[-1]

    def errors() -> list[str]:
        return [r.getMessage() for r in caplog.records
                if r.levelno >= logging.ERROR and "cannot write results" in r.getMessage()]

    try:
        delays = [attempt().retry_after for _ in range(3)]
        assert [str(o) for o in ended] == ["released:output_unavailable"] * 3
        assert delays == [BASE, 2 * BASE, 4 * BASE]
        assert len(errors()) == 1
        assert pipeline.health().files_backing_off == 1
        assert backing_off(pipeline, "output_unavailable") == 1

        (tmp_path / "share" / "out").mkdir()  # the share is back
        assert attempt().retry_after is None
        assert str(ended[-1]) == "processed"
        assert pipeline.health().files_backing_off == 0

        # The share goes again and the file is re-exported (new mtime: a new key): a new
        # streak, from the first delay, logged again.
        (tmp_path / "share" / "out").rename(tmp_path / "share" / "gone")
        info = source.stat()
        os.utime(source, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
        assert attempt().retry_after == BASE
        assert str(ended[-1]) == "released:output_unavailable"
        assert len(errors()) == 2
    finally:
        assert pipeline.stop(timeout=30)


def test_streaks_double_to_their_cap_summarise_once_a_minute_and_are_forgotten_when_the_file_is_gone() -> None:
    now = [1000.0]
    backoff = RetryBackoff(5.0, 300.0, clock=lambda: now[0])
    root = Path("/srv/in")
    key = FileKey("a.jpg", 10, 1)
    delays = [backoff.failed(root, key, "quarantine_failed", "/srv/q").delay for _ in range(9)]
    assert delays == [5, 10, 20, 40, 80, 160, 300, 300, 300]
    other = backoff.failed(root, FileKey("b.jpg", 10, 1), "output_unavailable", "/srv/out")
    assert other.first and other.delay == 5  # per file
    assert (backoff.count(), backoff.count("quarantine_failed")) == (2, 1)

    assert backoff.summary_due("/srv/q") == 0  # the first failure was logged on its own
    now[0] += 61
    assert backoff.summary_due("/srv/q") == 1
    assert backoff.summary_due("/srv/q") == 0  # not again within the minute

    backoff.succeeded(root, key)
    assert backoff.count("quarantine_failed") == 0
    assert backoff.failed(root, key, "quarantine_failed", "/srv/q").first  # a fresh streak

    now[0] += 10_000  # nobody offered either file again: deleted, moved or changed
    assert backoff.count() == 0
