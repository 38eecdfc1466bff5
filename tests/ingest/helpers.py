"""A small real consumer for the ingest tests, and more instances of bshmd (no part of bshmd is faked).

The configuration factory and the waiter are tests.support's."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bshmd.fs.output import OutputMount
from bshmd.ledger.backend import SQLiteBackend
from bshmd.ledger.claims import Claims, FolderClaims
from bshmd.ledger.keys import FileKey
from bshmd.ledger.outcome import PROCESSED, Outcome
from bshmd.ledger.store import Ledger
from bshmd.pipeline.job import Job

_opened: list[Ledger] = []


def test_ledger(instance: str) -> Ledger:
    """A connection to this test's SQLite ledger (the one every Ingestor and daemon of the
    test opens through $BSHMD_STATE_DIR), as instance ``instance`` with a token of its own.
    Closed after the test (tests/ingest/conftest.py), or by close_test_ledgers."""
    ledger = Ledger(SQLiteBackend(Path(os.environ["BSHMD_STATE_DIR"]) / "ledger.db"), instance_id=instance)
    _opened.append(ledger)
    return ledger


def close_test_ledgers() -> None:
    while _opened:
        _opened.pop().close()


def folder_claims(hot: dict[str, Path], instance: str, lease_seconds: float = 60.0) -> FolderClaims:
    """Claims on the folder pair ``hot`` in this test's ledger: one more 'instance' of bshmd."""
    return FolderClaims(Claims(test_ledger(instance), lease_seconds), hot["in"], hot["out"],
                        mounted=OutputMount(hot["out"]))


test_ledger.__test__ = False  # a helper, not a test


def output_matches(output: Path, key: FileKey) -> bool:
    """The consumer stamps its result with the input's size and mtime: 'output for this key exists'."""
    try:
        st = os.stat(output)
    except OSError:
        return False
    return st.st_size == key.size and st.st_mtime_ns == key.mtime_ns


def process_job(job: Job, log_line: Callable[[str], None] | None = None, on_success: str = "keep") -> str:
    """Copy the input into the output tree atomically, then complete the claim.

    ``on_success`` 'move' (to the folder's done tree) or 'delete' removes the input after its
    result is written and before the claim is completed, like the pipeline.

    Returns 'processed', or 'recovered' when an earlier holder had already written the
    result (a claim taken over after that holder died between writing and completing).
    """
    out = Path(job.folder.output) / job.key.relpath
    if job.taken_from and log_line:
        log_line(f"retaken {(job.key.relpath, job.taken_from)!r}")
    if job.taken_from and output_matches(out, job.key):
        if log_line:
            log_line(f"recovered {job.key.relpath!r}")
        job.claim.complete(Outcome(PROCESSED))
        return "recovered"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{threading.get_ident()}.bshmd-tmp")
    data = job.path.read_bytes()
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.utime(tmp, ns=(job.key.mtime_ns, job.key.mtime_ns))
    os.replace(tmp, out)
    if on_success == "move":
        moved = Path(job.folder.done_dir) / job.key.relpath
        moved.parent.mkdir(parents=True, exist_ok=True)
        os.rename(job.path, moved)
    elif on_success == "delete":
        job.path.unlink()
    if log_line:
        log_line(f"processed {job.key.relpath!r}")
    job.claim.complete(Outcome(PROCESSED))
    return "processed"


class CopyConsumer:
    """on_ready for tests: a queue and a worker thread that processes each job with process_job."""

    def __init__(self, capacity: int = 64, delay: float = 0.0, on_success: str = "keep") -> None:
        self.jobs: queue.Queue[Job | None] = queue.Queue(capacity)
        self.counts: Counter[str] = Counter()
        self.ready_at: dict[str, float] = {}
        self.processed_at: dict[str, float] = {}
        self.delay = delay
        self.on_success = on_success
        self.errors: list[BaseException] = []  # a job whose claim was lost mid-way, say
        self._thread = threading.Thread(target=self._work, name="bshmd-test-consumer", daemon=True)
        self._thread.start()

    def on_ready(self, job: Job) -> bool:
        self.ready_at.setdefault(job.key.relpath, time.monotonic())
        try:
            self.jobs.put(job, timeout=0.5)
        except queue.Full:
            return False
        return True

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            if self.delay:
                time.sleep(self.delay)  # the work's own duration (real time), not synchronisation
            try:
                process_job(job, on_success=self.on_success)
            except Exception as exc:  # noqa: BLE001 - kept for the test to judge; the worker goes on
                self.errors.append(exc)
                continue
            self.counts[job.key.relpath] += 1
            self.processed_at[job.key.relpath] = time.monotonic()

    def close(self) -> None:
        self.jobs.put(None)
        self._thread.join(10)
