"""The sweep after crashes removes only bshmd's own temporary and lock files, and only old ones.

Ages are judged by the later of mtime and ctime; a test cannot set a ctime into the past, so
the sweeps below are given a ``now`` hours ahead of the clock instead, and files meant to look
fresh get an mtime close to that ``now``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from bshmd.ingest.sweep import RESULT_TMP_MIN_AGE, claims_max_age, sweep_leftovers

LEASE = 30.0
HEX64 = hashlib.sha256(b"some/input.jpg").hexdigest()  # a 0.1 claim file's name


def _touch(path: Path, mtime: float, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def test_sweep_removes_old_bshmd_leftovers_and_nothing_else(tmp_path):
    out, quarantine = tmp_path / "out", tmp_path / "quarantine"
    claims = out / ".bshmd" / "claims"
    # A 0.1 claims folder (adopted into the ledger, its leftovers still swept), as 0.1 laid it out.
    shard = claims / HEX64[:2]
    claim_file = _touch(shard / f"{HEX64}.json", time.time(), json.dumps(
        {"v": 2, "generation": 1, "relpath": "some/input.jpg", "size": 10, "mtime_ns": 1,
         "state": "done", "instance": "sweeper", "outcome": "processed"}).encode())

    later = time.time() + RESULT_TMP_MIN_AGE * 3  # the sweep's "now"
    days_ago = time.time() - 3 * 86400
    leftovers = [
        _touch(shard / f".{'a1' * 16}-17.bshmd-tmp", days_ago),  # 0.1's claim temporary file
        _touch(shard / f"{HEX64}.g5.lock", days_ago),  # a generation lock
        _touch(out / "sub" / ".portrait.png.0123abcd.bshmd-tmp", days_ago),  # atomic_write
        _touch(out / ".long-name.deadbeef.bshmd-tmp", days_ago),
        _touch(quarantine / "x" / ".bad.jpg.00ff00ff.bshmd-tmp", days_ago),  # a copy into quarantine
    ]
    fresh = [  # being written right now, by this or another instance
        _touch(shard / f".{'b2' * 16}-3.bshmd-tmp", later - 5),
        _touch(shard / f"{HEX64}.g6.lock", later - 5),
        _touch(out / "sub" / ".other.png.11112222.bshmd-tmp", later - 60),
    ]
    lookalikes = [
        _touch(shard / f".{'c3' * 15}-3.bshmd-tmp", days_ago),  # 30 hex digits: not our token
        _touch(shard / f"{HEX64}.g5.lock.bak", days_ago),
        _touch(shard / "notes.lock", days_ago),
        _touch(out / "sub" / "portrait.png.0123abcd.bshmd-tmp", days_ago),  # not hidden
        _touch(out / "sub" / ".portrait.png.bshmd-tmp", days_ago),  # no random part
        _touch(out / "sub" / ".portrait.png.0123abcd.bshmd-tmp.keep", days_ago),
        _touch(out / "sub" / ".portrait.png.XYZ12345.bshmd-tmp", days_ago),
        _touch(out / "sub" / "portrait.png", days_ago),
        _touch(out / "user-notes.lock", days_ago),
        _touch(out / ".bshmd" / ".unrelated.0123abcd.bshmd-tmp", days_ago),  # state folder: not results
    ]
    (out / "sub" / ".folder.0123abcd.bshmd-tmp").mkdir()  # a folder with a matching name
    roots = (out, quarantine, tmp_path / "missing.done")

    # With the real clock nothing is old: mtimes lie (atomic_write stamps the input's mtime
    # on its temporary file), ctimes do not.
    assert sweep_leftovers(claims, roots, LEASE) == []
    assert all(path.exists() for path in leftovers)

    removed = sweep_leftovers(claims, roots, LEASE, now=later)
    assert sorted(removed) == sorted(leftovers)
    assert not any(path.exists() for path in leftovers)
    assert all(path.exists() for path in fresh + lookalikes + [claim_file])
    assert (out / "sub" / ".folder.0123abcd.bshmd-tmp").is_dir()


def test_claim_leftovers_go_after_two_lock_lifetimes_results_after_an_hour(tmp_path):
    out = tmp_path / "out"
    shard = out / ".bshmd" / "claims" / HEX64[:2]
    lock = _touch(shard / f"{HEX64}.g2.lock", time.time())
    result_tmp = _touch(out / ".a.jpg.0123abcd.bshmd-tmp", time.time())
    now = time.time() + claims_max_age(LEASE) + 5
    assert claims_max_age(LEASE) < RESULT_TMP_MIN_AGE
    assert sweep_leftovers(out / ".bshmd" / "claims", [out], LEASE, now=now) == [lock]
    assert result_tmp.exists()


def test_sweep_of_a_missing_output_does_nothing(tmp_path):
    assert sweep_leftovers(tmp_path / "gone" / ".bshmd" / "claims", [tmp_path / "gone"], LEASE,
                           now=time.time() + 86400) == []
    assert not (tmp_path / "gone").exists()
