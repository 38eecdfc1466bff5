"""The share marker through the real daemon: a second daemon with its own SQLite ledger refuses
a folder the first one serves; a 0.1 output tree (claim files, stamped results) is adopted
without processing anything again."""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

from tests.survival.harness import (
    CUTOUT,
    Daemon,
    image_bytes,
    ledger_records,
    log_outcomes,
    running,
    wait_until,
    write_config,
)

REPO = Path(__file__).resolve().parents[2]


def _folders(tmp_path: Path) -> dict[str, Path]:
    hot = {name: tmp_path / name for name in ("in", "out", "quarantine")}
    for path in hot.values():
        path.mkdir()
    return hot


def test_a_second_daemon_with_its_own_sqlite_ledger_refuses_naming_the_first(tmp_path, standin_model):
    hot = _folders(tmp_path)
    (hot["in"] / "a.png").write_bytes(image_bytes(random.Random(1)))
    first = Daemon(write_config(tmp_path / "first.yaml", model_dir=standin_model, input=hot["in"],
                                output=hot["out"], quarantine=hot["quarantine"], instance_id="studio-a",
                                state_dir=str(tmp_path / "state-a")), tmp_path / "first.log")
    second_config = write_config(tmp_path / "second.yaml", model_dir=standin_model, input=hot["in"],
                                 output=hot["out"], quarantine=hot["quarantine"], instance_id="studio-b",
                                 state_dir=str(tmp_path / "state-b"))
    with running(first):
        first.wait_ready()
        wait_until(lambda: (hot["out"] / ("a.png" + CUTOUT)).exists(), 60, what="the first daemon's result")
        env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
        second = subprocess.run([sys.executable, "-m", "bshmd", "run", "-c", str(second_config)], cwd=REPO,
                                env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stdout + second.stderr
        said = second.stdout + second.stderr
        assert "tracked by another job ledger" in said and f"of host {socket.gethostname()}" in said
        assert str(tmp_path / "state-a" / "ledger.db") in said and "ledger.url" in said
        assert "model loaded" not in said  # refused before loading anything
        assert first.alive()
        assert first.stop() == 0
    marker = json.loads((hot["out"] / ".bshmd" / "ledger.json").read_text())
    assert marker["host"] == socket.gethostname() and marker["database"] == str(tmp_path / "state-a" / "ledger.db")
    assert not (tmp_path / "state-b" / "ledger.db").exists() or ledger_records(tmp_path / "state-b", hot["out"]) == {}


def _write_01_claim(out: Path, relpath: str, st: os.stat_result, state: str) -> None:
    """A claim file exactly as bshmd 0.1 left it in <output>/.bshmd/claims/."""
    name = hashlib.sha256(os.fsencode(relpath)).hexdigest()
    path = out / ".bshmd" / "claims" / name[:2] / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"v": 2, "generation": 3, "relpath": relpath, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
              "state": state, "instance": "old-host", "token": "0" * 32, "write": 7, "host": "old-host",
              "pid": 1, "lease_expires": 0.0}
    if state == "done":
        record.update(outcome="processed", completed_at=1.0)
    path.write_text(json.dumps(record))


def test_a_01_output_tree_is_adopted_without_processing_anything_again(tmp_path, standin_model):
    hot = _folders(tmp_path)
    rng = random.Random(7)
    old = {f"old-{n}.png": image_bytes(rng) for n in range(6)}
    for name, data in old.items():
        (hot["in"] / name).write_bytes(data)
        # The results 0.1 wrote: a cut-out stamped with its input's mtime.
        result = hot["out"] / (name + CUTOUT)
        result.write_bytes(b"a 0.1 cut-out")
        st = (hot["in"] / name).stat()
        os.utime(result, ns=(st.st_mtime_ns, st.st_mtime_ns))
        # Done for most; one was killed after writing its results, one left released.
        state = {"old-4.png": "claimed", "old-5.png": "released"}.get(name, "done")
        _write_01_claim(hot["out"], name, st, state)
    (hot["in"] / "new.png").write_bytes(image_bytes(rng))
    before = {name: os.stat(hot["out"] / (name + CUTOUT)).st_ino for name in old}
    config = write_config(tmp_path / "bshmd.yaml", model_dir=standin_model, input=hot["in"], output=hot["out"],
                          quarantine=hot["quarantine"])
    daemon = Daemon(config, tmp_path / "daemon.log")
    with running(daemon):
        daemon.wait_ready()
        wait_until(lambda: (ledger_records(tmp_path / "state", hot["out"]).get("new.png") or {}).get("state") == "done"
                   and all((ledger_records(tmp_path / "state", hot["out"]).get(n) or {}).get("state") == "done"
                           for n in old), 90, what="every file to be done in the ledger")
        assert daemon.stop() == 0
    records = ledger_records(tmp_path / "state", hot["out"])
    assert {n: records[n]["outcome"] for n in old} == {
        **{f"old-{n}.png": "adopted" for n in range(4)}, "old-4.png": "recovered", "old-5.png": "recovered"}
    assert records["new.png"]["outcome"] == "processed"
    # Nothing of 0.1's was made again; the claim files are gone, imported into the ledger.
    assert {name: os.stat(hot["out"] / (name + CUTOUT)).st_ino for name in old} == before
    assert all((hot["out"] / (name + CUTOUT)).read_bytes() == b"a 0.1 cut-out" for name in old)
    lines = log_outcomes(daemon.text(), hot["in"])
    assert {name for name, seen in lines.items() if seen["processed"]} == {"new.png"}
    assert not (hot["out"] / ".bshmd" / "claims").exists()
    assert "Traceback" not in daemon.text()
