"""Three real daemons on one folder behind a FUSE mount (bindfs, so they poll), one PostgreSQL
ledger: one is SIGKILLed, one frozen with SIGSTOP past its lease and resumed, and the database
is restarted mid-run. Every file is processed exactly once, counted from all three logs and
from the renames onto final result names; the frozen one writes nothing for jobs it lost."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.survival.harness import (
    CommitCounter,
    Daemon,
    Inputs,
    audit,
    log_outcomes,
    prepare_output_tree,
    wait_until,
    write_config,
)

FILES = 60
LEASE = 4.0

pytestmark = pytest.mark.slow


def _live_leases(url: str, holders: list[str]) -> int:
    """Claims and named leases of ``holders`` still live by the database's clock (the one the
    ledger judges leases by)."""
    import psycopg

    now = "extract(epoch from clock_timestamp())"
    with psycopg.connect(url) as conn:
        claims = conn.execute(f"SELECT count(*) FROM jobs WHERE state = 'claimed' AND holder = ANY(%s) "
                              f"AND lease_expires >= {now}", (holders,)).fetchone()[0]
        leases = conn.execute(f"SELECT count(*) FROM leases WHERE holder = ANY(%s) AND expires >= {now}",
                              (holders,)).fetchone()[0]
    return claims + leases


def _ledger_states(url: str) -> Counter:
    import psycopg

    with psycopg.connect(url) as conn:
        return Counter(dict(conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()))


@pytest.fixture
def fuse_share(tmp_path: Path):
    if shutil.which("bindfs") is None:
        pytest.skip("bindfs is not installed")
    backing, share = tmp_path / "nas", tmp_path / "share"
    backing.mkdir()
    share.mkdir()
    try:
        subprocess.run(["bindfs", str(backing), str(share)], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount with bindfs here: {exc}")
    try:
        yield backing, share
    finally:
        subprocess.run(["fusermount", "-u", str(share)], check=False, capture_output=True, timeout=30)


@pytest.mark.timeout(600)
def test_three_daemons_one_postgres_ledger_kill_freeze_and_db_restart(tmp_path, fuse_share, pg_cluster, pg_url,
                                                                      standin_model):
    backing, share = fuse_share
    folders = {name: share / name for name in ("in", "out", "quarantine")}
    for path in folders.values():
        path.mkdir()
    inputs = Inputs(folders["in"])
    items = inputs.plan(FILES, seed=16, broken_every=0)
    prepare_output_tree(folders["out"], inputs.subfolders)
    # Renames onto final names, seen on the backing folder (bindfs does them there).
    counter = CommitCounter(backing / "out", inputs.subfolders)
    counter.start()
    daemons = []
    names = ("host-a", "host-b", "host-c")
    for name in names:
        config = write_config(tmp_path / f"{name}.yaml", model_dir=standin_model, input=folders["in"],
                              output=folders["out"], quarantine=folders["quarantine"], instance_id=name,
                              state_dir=str(tmp_path / f"state-{name}"), ledger={"url": pg_url, "retry_seconds": 30, "lease_seconds": LEASE},
                              rescan_seconds=5,
                              batch={"max_size": 2, "max_wait_ms": 50})
        daemons.append(Daemon(config, tmp_path / f"{name}.log"))
    try:
        for daemon in daemons:
            daemon.start()
        for daemon in daemons:
            daemon.wait_ready(180)
        # One scanner for the folder (polling: it is a FUSE mount); the others only claim.
        states = [d.status()["folders"][str(folders["in"])] for d in daemons]
        scanners = [d for d, state in zip(daemons, states, strict=True) if state["scanner"]]
        assert len(scanners) == 1 and [s["mode"] for s in states if s["scanner"]] == ["poll"], states
        # The scanner is the one killed: another instance must take its lease over.
        killed = scanners[0]
        frozen, steady = [d for d in daemons if d is not killed]
        inputs.drop(items)

        def done() -> int:
            return _ledger_states(pg_url)["done"]

        wait_until(lambda: done() >= 10, 180, what="the first files")
        killed.kill()
        frozen.proc.send_signal(signal.SIGSTOP)
        # Their leases run out; the others take their files over.
        gone = [names[daemons.index(killed)], names[daemons.index(frozen)]]
        wait_until(lambda: _live_leases(pg_url, gone) == 0, LEASE + 60,
                   what="the leases of the killed and the frozen instance to run out")
        pg_cluster.restart()
        wait_until(lambda: done() >= 30, 180, what="progress after the database restart")
        frozen.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: done() == FILES, 300, what="every file to be done in the ledger")
        wait_until(lambda: all(d.status()["counts"]["queued"] == 0 for d in (frozen, steady)), 60,
                   what="the survivors to become idle")
        assert frozen.stop() == 0 and steady.stop() == 0
    finally:
        for daemon in daemons:
            if daemon.alive():
                daemon.proc.send_signal(signal.SIGCONT)
            daemon.ensure_dead()
        counter.stop()
    # Exactly once: one "processed" line per file over all three logs (or a "recovered" one
    # after the killed instance had written results), and one commit of each result.
    lines: dict[str, Counter] = {}
    for daemon in daemons:
        for relpath, seen in log_outcomes(daemon.text(), folders["in"]).items():
            lines.setdefault(relpath, Counter()).update(seen)
    for relpath in inputs.expected:
        seen = lines.get(relpath, Counter())
        assert seen["processed"] <= 1, (relpath, seen)
        assert seen["processed"] + seen["recovered"] >= 1 or counter.commits.get(relpath) == 1, (relpath, seen)
        assert counter.commits.get(relpath) == 1, (relpath, counter.commits.get(relpath))
    found = audit(folders["out"], folders["quarantine"])
    assert found.problems(inputs.expected) == []
    assert _ledger_states(pg_url) == Counter({"done": FILES})
    assert sum("(this instance holds its scanner lease)" in d.text() for d in (frozen, steady)) >= 1
    # The frozen instance lost its claims while stopped: it wrote no result for them.
    frozen_log = frozen.text()
    assert "lost the claim" in frozen_log or "released" in frozen_log or "claim_lost" in frozen_log
    for daemon in (frozen, steady):
        assert "Traceback" not in daemon.text(), daemon.text()[-3000:]
