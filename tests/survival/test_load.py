"""10,000 small files dropped at once: all processed, memory bounded by the queues, no fd leak.

The daemon's RSS is sampled from /proc while it works. The pipeline holds at most
``queue_size + batch.max_size`` jobs (here 48 images of at most 64×64); what grows with the
number of waiting files is only ingest bookkeeping (a few hundred bytes per file). Holding
every decoded image and its results for 10,000 files would take several hundred MB more
(RGB, matte and RGBA per file, plus Python objects), so a growth bound of 200 MB over the
warmed-up daemon catches unbounded queuing with room for allocator noise.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.survival.harness import (
    CUTOUT,
    Daemon,
    Inputs,
    log_outcomes,
    proc_sample,
    wait_until,
    write_config,
)

FILES = 10_000
RSS_GROWTH_LIMIT_KB = 200 * 1024
FD_SLACK = 8


class Sampler:
    """Samples a process's RSS, threads and fds every ``interval`` seconds in a thread."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[dict[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="survival-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.samples.append(proc_sample(self.pid))
            except OSError:
                return

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _responsive_progress(daemon: Daemon) -> int:
    """Files processed so far; the endpoints must answer promptly under load all along (a
    stalled main loop fails /healthz and makes systemd's watchdog restart the service)."""
    assert daemon.get("/healthz", timeout=5)[0] == 200
    return daemon.status()["counts"]["processed"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ten_thousand_files_at_once(tmp_path: Path, standin_model: Path) -> None:
    src, out, quarantine = (tmp_path / n for n in ("in", "out", "quarantine"))
    for folder in (src, out, quarantine):
        folder.mkdir()
    config = write_config(tmp_path / "bshmd.yaml", model_dir=standin_model, input=src, output=out,
                          quarantine=quarantine, gate={"enabled": True, "min_input_side": 16, "max_uncertain": 0.6},
                          batch={"max_size": 16, "max_wait_ms": 50},
                          pipeline={"queue_size": 32, "decode_workers": 2, "write_workers": 2},
                          outputs={"png_compression": 1}, rescan_seconds=30)
    inputs = Inputs(src, subfolders=("", "a", "b", "c/d"))
    warm = inputs.plan(20, 1, broken_every=0, side_range=(32, 64))
    bulk = inputs.plan(FILES - len(warm), 2, broken_every=0, start=len(warm), side_range=(32, 64))
    daemon = Daemon(config, tmp_path / "daemon.log")
    daemon.start()
    try:
        daemon.wait_ready()
        inputs.drop(warm)  # warm-up: every lazily loaded library is in memory afterwards
        wait_until(lambda: all((out / (r + CUTOUT)).exists() for r, _ in warm), 60, what="the warm-up files")
        wait_until(lambda: daemon.status()["counts"]["queued"] == 0, 30, what="idle after the warm-up")
        before = proc_sample(daemon.pid)
        started = time.monotonic()
        with Sampler(daemon.pid) as sampler:
            inputs.drop(bulk)
            wait_until(lambda: _responsive_progress(daemon) >= FILES or not daemon.alive(), 480,
                       interval=1, what=f"{FILES} files to be processed")
            wait_until(lambda: daemon.status()["counts"]["queued"] == 0, 30, what="the daemon to become idle")
        seconds = time.monotonic() - started
        after = proc_sample(daemon.pid)
        peak = max(s["rss_kb"] for s in sampler.samples)
        print(f"\n{FILES} files in {seconds:.0f} s ({FILES / seconds:.0f}/s); RSS after warm-up "
              f"{before['rss_kb'] // 1024} MiB, peak {peak // 1024} MiB, after {after['rss_kb'] // 1024} MiB; "
              f"fds {before['fds']} → {after['fds']}; threads {before['threads']} → {after['threads']}")
        assert daemon.status()["counts"]["quarantined"] == 0
        assert peak - before["rss_kb"] < RSS_GROWTH_LIMIT_KB, "memory grew with the number of waiting files"
        assert after["fds"] <= before["fds"] + FD_SLACK, "file descriptors leaked"
        assert daemon.stop() == 0
    finally:
        daemon.ensure_dead()
    missing = [r for r in inputs.expected if not (out / (r + CUTOUT)).exists()]
    assert not missing, f"{len(missing)} inputs without a result, e.g. {missing[:5]}"
    counts = log_outcomes(daemon.text(), src)
    assert all(counts.get(r, {}).get("processed") == 1 for r in inputs.expected)
