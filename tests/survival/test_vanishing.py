"""Input and output folders that go away while the daemon runs, and come back.

Renamed away (a share's folder moved) and unmounted (a bind mount, as a NAS mount would
be): the daemon keeps running and answering /healthz, loses no file, and when the folder
returns it does not process again what it already did.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.survival.harness import (
    CUTOUT,
    Daemon,
    Inputs,
    decodes,
    log_outcomes,
    unmount,
    wait_until,
    write_config,
)


def _bind(source: Path, target: Path) -> None:
    result = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"needs bind mounts (root): {result.stderr.strip()}")


def _all_done(out: Path, inputs: Inputs) -> bool:
    return all((out / (relpath + CUTOUT)).exists() for relpath in inputs.expected)


def _healthy(daemon: Daemon) -> bool:
    return daemon.alive() and daemon.get("/healthz")[0] == 200


def _conditions(daemon: Daemon) -> str:
    return " | ".join(daemon.status()["conditions"])


@pytest.mark.slow
def test_folders_that_vanish_and_return(tmp_path: Path, standin_model: Path) -> None:
    # The input lies on a "share" (a bind mount), as hot folders on a NAS do.
    real_share, share, out, quarantine = (tmp_path / n for n in ("share-real", "share", "out", "quarantine"))
    for folder in (real_share, share, out, quarantine):
        folder.mkdir()
    src = share / "in"
    (real_share / "in").mkdir()
    _bind(real_share, share)
    daemon = Daemon(write_config(tmp_path / "bshmd.yaml", model_dir=standin_model, input=src, output=out,
                                 quarantine=quarantine, rescan_seconds=1),
                    tmp_path / "daemon.log")
    inputs = Inputs(src)
    rng_seed = 3  # the inputs are generated from seeded randomness
    try:
        daemon.start()
        daemon.wait_ready()
        inputs.drop(inputs.plan(20, rng_seed, broken_every=0))
        wait_until(lambda: _all_done(out, inputs), 60, what="the first files")

        # 1. The input folder is renamed away, then back.
        src.rename(share / "in.away")
        wait_until(lambda: "folder unavailable" in _conditions(daemon), 20, what="input reported unavailable")
        assert _healthy(daemon)
        (share / "in.away").rename(src)
        wait_until(lambda: "folder unavailable" not in _conditions(daemon), 20, what="input available again")
        inputs.drop(inputs.plan(5, rng_seed + 1, broken_every=0, start=100))
        wait_until(lambda: _all_done(out, inputs), 60, what="files dropped after the input came back")

        # 2. The share is unmounted (the input folder with it), then mounted again.
        unmount(share)
        wait_until(lambda: "folder unavailable" in _conditions(daemon), 20, what="input reported unavailable")
        assert _healthy(daemon)
        _bind(real_share, share)
        wait_until(lambda: "folder unavailable" not in _conditions(daemon), 20, what="input available again")
        inputs.drop(inputs.plan(5, rng_seed + 2, broken_every=0, start=200))
        wait_until(lambda: _all_done(out, inputs), 60, what="files dropped after the remount")

        # 3. The output folder is renamed away while files are in flight, then back.
        inputs.drop(inputs.plan(15, rng_seed + 3, broken_every=0, start=300))
        out.rename(tmp_path / "out.away")
        # Files not yet claimed wait for the state folder (kept in the output); files in
        # flight fail to write and are released. Either way the daemon says so.
        wait_until(lambda: "state folder unreachable" in daemon.text()
                   or "output unavailable" in _conditions(daemon), 30,
                   what="the daemon to notice the missing output")
        assert _healthy(daemon)
        assert not out.exists()  # nothing re-created the missing output folder
        (tmp_path / "out.away").rename(out)
        wait_until(lambda: _all_done(out, inputs), 120, interval=0.2, what="every file once the output is back")

        wait_until(lambda: daemon.status()["counts"]["queued"] == 0, 30, what="the daemon to become idle")
        assert daemon.alive() and daemon.starts == 1
        assert daemon.stop() == 0
    finally:
        daemon.ensure_dead()
        unmount(share)
    counts = log_outcomes(daemon.text(), src)
    assert {relpath: counts.get(relpath, {}).get("processed", 0) for relpath in inputs.expected} == \
        dict.fromkeys(inputs.expected, 1), "each file processed exactly once"
    for relpath in inputs.expected:
        assert decodes(out / (relpath + CUTOUT))
    assert not any(quarantine.rglob("*.reason.json"))
    assert "Traceback" not in daemon.text()
