"""SIGKILL the real daemon at random moments while it works through 500 files.

Afterwards every input has exactly one result or one quarantine entry, each result was
committed once (counted with inotify as renames onto the final name, and in the daemon's own
per-file log lines), nothing half-written sits under a final name and every result decodes.
scripts/kill_loop.py runs the same loop with more files and kills.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.survival.harness import kill_loop

FILES = 500
KILLS = 20
SEED = 20240611


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_daemon_survives_repeated_sigkill(tmp_path: Path, standin_model: Path) -> None:
    report = kill_loop(tmp_path, standin_model, files=FILES, kills=KILLS, seed=SEED, finish_timeout=240)
    print(report.summary())
    assert report.kills == KILLS and report.starts == KILLS + 1
    assert report.problems == [], "\n".join(report.problems[:50])
    assert report.results + report.quarantined == FILES
    assert report.quarantined == FILES // 10  # exactly the deliberately broken ones
