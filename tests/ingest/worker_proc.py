"""A separate bshmd ingest process for the crash tests: Ingestor plus the copy consumer.

Usage: python tests/ingest/worker_proc.py INPUT OUTPUT QUARANTINE LOG INSTANCE_ID [DELAY]
Appends 'processed <relpath>' / 'recovered <relpath>' lines to LOG (O_APPEND, fsync).
Runs until SIGTERM.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bshmd.ingest import Ingestor  # noqa: E402
from bshmd.pipeline.job import Job  # noqa: E402
from tests.ingest.helpers import process_job  # noqa: E402
from tests.support.config import make_config  # noqa: E402


def main(argv: list[str]) -> int:
    src, out, quarantine, log_path, instance = argv[:5]
    delay = float(argv[5]) if len(argv) > 5 else 0.0
    config = make_config(Path(src).parent, [{"input": src, "output": out, "quarantine": quarantine, "watch": "events"}],
                         settle_seconds=0.3, poll_seconds=0.5, rescan_seconds=2, instance_id=instance,
                         ledger={"lease_seconds": 3})
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def log_line(text: str) -> None:
        os.write(log_fd, (text + "\n").encode("utf-8", "surrogateescape"))
        os.fsync(log_fd)

    jobs: queue.Queue[Job | None] = queue.Queue(4)
    stop = threading.Event()

    def on_ready(job: Job) -> bool:
        try:
            jobs.put(job, timeout=0.5)
            return True
        except queue.Full:
            return False

    def work() -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            if delay:
                stop.wait(delay)
            process_job(job, log_line)

    worker = threading.Thread(target=work, name="bshmd-test-consumer")
    worker.start()
    ingestor = Ingestor(config, on_ready, instance_id=instance)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ingestor.start()
    os.write(1, b"started\n")
    stop.wait()
    ingestor.stop()
    jobs.put(None)
    worker.join()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
