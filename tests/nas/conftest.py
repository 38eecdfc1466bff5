"""A hot folder behind a real FUSE mount (bindfs), and the daemon's own parts running on it.

``backing`` is the NAS's disk: tests write there, as another SMB client would; the daemon
watches ``mount``, the bindfs view of it, and writes its results and quarantine on the local
filesystem (so quarantining a file is a move across filesystems). ``HotFolder`` wires the
real Ingestor to the real Pipeline (stand-in engine) exactly as the daemon does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bshmd.config import Config
from bshmd.ingest import Ingestor
from bshmd.ledger.outcome import Outcome
from bshmd.pipeline.job import Job
from bshmd.pipeline.pipeline import Pipeline
from tests.support.config import make_config
from tests.support.waiting import wait_until


@contextlib.contextmanager
def bindfs(backing: Path, mount: Path, *options: str) -> Iterator[Path]:
    """``bindfs [-o OPTIONS] backing mount`` for the duration of the block."""
    if shutil.which("bindfs") is None:
        pytest.skip("bindfs is not installed (scripts/setup --dev installs it)")
    mount.mkdir(parents=True, exist_ok=True)
    command = ["bindfs", *(("-o", ",".join(options)) if options else ()), str(backing), str(mount)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        pytest.skip(f"cannot mount bindfs here: {result.stderr.strip()}")
    fusermount = shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount3"
    try:
        yield mount
    finally:
        def unmounted() -> bool:
            unmount = subprocess.run([fusermount, "-u", str(mount)], capture_output=True, text=True)
            return unmount.returncode == 0 or not os.path.ismount(mount)

        # Busy while a daemon thread still closes a file: try again for a while.
        wait_until(unmounted, 5, interval=0.1, fail=False)


@pytest.fixture
def nas(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """backing (written by tests), mount (watched), out and quarantine (local disk)."""
    folders = {name: tmp_path / name for name in ("backing", "out", "quarantine")}
    for path in folders.values():
        path.mkdir()
    with bindfs(folders["backing"], tmp_path / "mount") as mount:
        yield {**folders, "mount": mount}


def nas_config(nas: dict[str, Path], *, folder: dict[str, Any] | None = None, **overrides: Any) -> Config:
    folders = [{"input": str(nas["mount"]), "output": str(nas["out"]), "quarantine": str(nas["quarantine"]),
                **(folder or {})}]
    defaults: dict[str, Any] = {
        "settle_seconds": 0.5, "poll_seconds": 0.2, "rescan_seconds": 2,
        "truncated_grace_seconds": 60,
        "gate": {"enabled": False},  # these tests are about files arriving, not matte quality
        "batch": {"max_size": 2, "max_wait_ms": 20},
        "pipeline": {"decode_workers": 1, "write_workers": 1, "queue_size": 4},
    }
    return make_config(nas["out"].parent, folders, defaults=defaults, **overrides)


class HotFolder:
    """Ingestor → Pipeline, wired like bshmd.service.daemon; records every file's outcomes."""

    def __init__(self, config: Config, engine: Any) -> None:
        self.config = config
        self.outcomes: list[tuple[str, str]] = []  # (relpath, outcome), in order
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.pipeline = Pipeline(config, engine, instance_id="nas-test", on_done=self._done,
                                 retry_base_seconds=0.2, retry_max_seconds=1.0)
        self.ingestor = Ingestor(config, self._offer, instance_id="nas-test")

    def __enter__(self) -> HotFolder:
        self.pipeline.start()
        self.ingestor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self.ingestor.close()  # stops it and closes the ledger it opened
        assert self.pipeline.stop(timeout=30)

    def _offer(self, job: Job) -> bool:
        while not self._closed.is_set():
            if self.pipeline.submit(job, timeout=0.2):
                return True
        return False

    def _done(self, job: Job, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append((job.key.relpath, str(outcome)))

    def of(self, relpath: str) -> list[str]:
        with self._lock:
            return [outcome for rel, outcome in self.outcomes if rel == relpath]

    def finished(self, relpath: str) -> bool:
        return any(not outcome.startswith("released:") for outcome in self.of(relpath))


def files_under(root: Path) -> list[str]:
    """Every file below ``root`` (relative POSIX paths), bshmd's state folder included."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
