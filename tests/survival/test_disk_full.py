"""The output folder fills up while the daemon runs (a small tmpfs), then space is freed.

No partial result appears, the input stays where it is (it is not the input's fault), the
daemon says so (log line, ``bshmd_disk_full``, /status and the systemd STATUS line) and it
carries on by itself once there is room again.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.survival.harness import (
    CUTOUT,
    TMP_MARK,
    Daemon,
    NotifyListener,
    decodes,
    image_bytes,
    log_outcomes,
    noise_png,
    tmpfs,
    wait_until,
    write_config,
)

PAUSED = "disk full: writing results paused"


@pytest.fixture
def small_output(tmp_path: Path) -> Iterator[Path]:
    out = tmp_path / "out"
    try:
        with tmpfs(out, "3m"):
            yield out
    except OSError as exc:
        pytest.skip(f"needs a tmpfs mount (root): {exc}")


def _fill(folder: Path, leave: int) -> Path:
    """A filler file that leaves about ``leave`` bytes free."""
    filler = folder / "filler.bin"
    vfs = os.statvfs(folder)
    size = vfs.f_bavail * vfs.f_frsize - leave
    with open(filler, "wb") as handle:
        handle.write(b"\0" * size)
    return filler


@pytest.mark.slow
def test_disk_full_pauses_and_resumes_without_losing_the_input(tmp_path: Path, small_output: Path,
                                                               standin_model: Path) -> None:
    src, quarantine = tmp_path / "in", tmp_path / "quarantine"
    src.mkdir()
    quarantine.mkdir()
    rng = random.Random(7)
    config = write_config(tmp_path / "bshmd.yaml", model_dir=standin_model, input=src, output=small_output,
                          quarantine=quarantine)
    listener = NotifyListener(tmp_path / "notify.sock")
    daemon = Daemon(config, tmp_path / "daemon.log", env={"NOTIFY_SOCKET": str(listener.path)})
    daemon.start()
    try:
        daemon.wait_ready()
        (src / "first.png").write_bytes(image_bytes(rng))
        wait_until(lambda: (small_output / ("first.png" + CUTOUT)).exists(), 30, what="the first result")

        filler = _fill(small_output, leave=64 * 1024)
        big = src / "big.png"
        big.write_bytes(noise_png(rng, 400))  # its cut-out is ~600 KiB: it cannot fit
        wait_until(lambda: "cannot write results of " + str(big) in daemon.text(), 60,
                   what="the daemon to log the failed write")
        assert "No space left on device" in daemon.text()
        wait_until(lambda: daemon.metric("bshmd_disk_full") == 1, 10, what="bshmd_disk_full = 1")
        assert any(PAUSED in line for line in daemon.status()["conditions"])
        wait_until(lambda: any(PAUSED in line for line in listener.statuses()), 20,
                   what="the condition in systemd's STATUS line")
        # Nothing half-written, the input where it was, nothing quarantined.
        assert not (small_output / ("big.png" + CUTOUT)).exists()
        assert not [p for p in small_output.rglob("*") if TMP_MARK in p.name]
        assert big.exists() and not any(quarantine.rglob("big.png*"))

        filler.unlink()  # an operator makes room; no restart
        result = small_output / ("big.png" + CUTOUT)
        wait_until(result.exists, 120, interval=0.2, what="the result once space is back")
        assert decodes(result)
        assert daemon.alive() and daemon.starts == 1
        wait_until(lambda: daemon.metric("bshmd_disk_full") == 0, 10, what="bshmd_disk_full = 0")
        wait_until(lambda: not any(PAUSED in line for line in daemon.status()["conditions"]), 10, what="the condition to clear")
        assert big.exists() and not any(quarantine.rglob("big.png*"))
        assert log_outcomes(daemon.text(), src)["big.png"]["processed"] == 1
        assert daemon.stop() == 0
    finally:
        daemon.ensure_dead()
        listener.close()
    assert "Traceback" not in daemon.text()
