"""Exactly-once across SIGKILL and across several instances: real separate processes."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bshmd.ledger.keys import FileKey
from tests.ingest.helpers import folder_claims, output_matches, test_ledger
from tests.support.ledger import every_row_done
from tests.support.waiting import wait_until

WORKER = Path(__file__).with_name("worker_proc.py")
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def start_worker(hot: dict[str, Path], log: Path, instance: str, delay: float) -> subprocess.Popen:
    with open(log.with_suffix(f".{instance}.err"), "ab") as errors:
        return subprocess.Popen(
            [sys.executable, str(WORKER), str(hot["in"]), str(hot["out"]), str(hot["quarantine"]),
             str(log), instance, str(delay)],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=errors,
        )


def read_log(log: Path) -> list[tuple[str, str]]:
    if not log.exists():
        return []
    lines = log.read_bytes().decode("utf-8", "surrogateescape").splitlines()
    entries = []
    for line in lines:
        kind, rest = line.split(" ", 1)
        entries.append((kind, ast.literal_eval(rest)))
    return entries


def make_inputs(root: Path, count: int) -> list[Path]:
    paths = []
    for index in range(count):
        sub = root / f"batch-{index % 10}"
        sub.mkdir(exist_ok=True)
        path = sub / f"img-{index:04d}.jpg"
        path.write_bytes(os.urandom(2000 + index))
        paths.append(path)
    return paths


def assert_each_exactly_once(hot: dict[str, Path], paths: list[Path], log: Path) -> None:
    entries = read_log(log)
    entries = [(kind, rel) for kind, rel in entries if kind in ("processed", "recovered")]
    processed = Counter(rel for kind, rel in entries if kind == "processed")
    recovered = Counter(rel for kind, rel in entries if kind == "recovered")
    store = folder_claims(hot, "checker")
    for path in paths:
        key = FileKey.of(hot["in"], path)
        # The work (writing the result) happened exactly once: either a 'processed' line, or
        # none because the writer died right after writing, and a successor recovered it.
        assert processed[key.relpath] <= 1, f"{key.relpath} processed {processed[key.relpath]} times"
        assert processed[key.relpath] == 1 or recovered[key.relpath] >= 1, f"{key.relpath} lost"
        assert output_matches(hot["out"] / key.relpath, key)
        assert (hot["out"] / key.relpath).read_bytes() == path.read_bytes()
        assert store.is_done(key), f"{key.relpath} has no done record"


def wait_all_done(count: int) -> None:
    """Until every file's row is done in the ledger: no instance can pick one up again after
    that, and stop_all lets each worker finish (and log) whatever it had picked up before."""
    ledger = test_ledger("checker")
    try:
        wait_until(lambda: every_row_done(ledger, count), 60, "every file done in the ledger")
    finally:
        ledger.close()


def stop_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_restart_after_sigkill_processes_everything_exactly_once(hot, tmp_path):
    log = tmp_path / "processed.log"
    paths = make_inputs(hot["in"], 60)
    first = start_worker(hot, log, "node-1", delay=0.05)
    procs = [first]
    try:
        assert wait_until(lambda: len(read_log(log)) >= 15, timeout=60)
        first.send_signal(signal.SIGKILL)
        first.wait()
        done_before = len(read_log(log))
        assert done_before < len(paths), "the kill came too late to test anything"
        # Same instance id: the restart recognises its earlier run's claims and takes them at once.
        second = start_worker(hot, log, "node-1", delay=0.0)
        procs.append(second)
        assert wait_until(
            lambda: {rel for _, rel in read_log(log)} >= {FileKey.of(hot["in"], p).relpath for p in paths},
            timeout=60,
        )
        wait_all_done(len(paths))  # then stopping drains any wrong second pickup into the log
    finally:
        stop_all(procs)
    assert_each_exactly_once(hot, paths, log)


def test_three_instances_one_killed_share_300_files_exactly_once(hot, tmp_path):
    log = tmp_path / "processed.log"
    paths = make_inputs(hot["in"], 300)
    procs = [start_worker(hot, log, f"host-{n}", delay=0.02) for n in range(3)]
    try:
        assert wait_until(lambda: len(read_log(log)) >= 60, timeout=90)
        victim = procs[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        relpaths = {FileKey.of(hot["in"], p).relpath for p in paths}
        assert wait_until(lambda: {rel for _, rel in read_log(log)} >= relpaths, timeout=120)
        wait_all_done(len(paths))
    finally:
        stop_all(procs)
    assert_each_exactly_once(hot, paths, log)
    # The dead instance held claims on the files in its queue; the survivors took them over
    # once its lease ran out.
    taken_from = [rel for kind, rel in read_log(log) if kind == "retaken"]
    assert "host-0" in {origin for _, origin in taken_from}
