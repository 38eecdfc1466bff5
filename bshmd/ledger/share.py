"""The output share's marker, ``<output>/.bshmd/ledger.json``: which ledger tracks this share.

The marker names the ledger (its id, made by its first migration), the folder's id in it and
the host that wrote it. Every instance checks it before claiming anything in that folder:

- no marker: this instance writes one (created with ``link``, so of two instances starting at
  once exactly one writes it and the other reads it); a 0.1 tree (claim files under
  ``.bshmd/claims/``) is adopted first, see ``adopt_claim_files``;
- a marker naming this ledger: its folder id is used;
- a marker naming another ledger whose heartbeat is live: ``ShareOwnedElsewhere``. Two
  SQLite ledgers over one share (two hosts, each with its own ``state_dir``) cannot see each
  other's claims and would process files twice; such hosts must share one PostgreSQL ledger
  (``ledger.url``). A marker whose heartbeat is older than HEARTBEAT_STALE_SECONDS (its
  ledger's instances are all gone) is taken over: the new marker says it ``inherited`` the
  folder, and every file the new ledger has no row for is checked for stamped results first,
  so nothing the old ledger finished is processed again.

Every running instance refreshes the heartbeat (``heartbeat``) of the folders it serves.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bshmd.errors import LedgerUnavailable, ShareOwnedElsewhere
from bshmd.ledger.keys import FileKey
from bshmd.ledger.outcome import ADOPTED, Outcome
from bshmd.ledger.store import Ledger

log = logging.getLogger("bshmd.ledger")

STATE_DIR_NAME = ".bshmd"
MARKER_NAME = "ledger.json"
LEGACY_CLAIMS = "claims"
HEARTBEAT_SECONDS = 30.0  # how often running instances refresh the marker's heartbeat
HEARTBEAT_STALE_SECONDS = 300.0  # a marker of another ledger not refreshed for this long is taken over


@dataclass(frozen=True)
class Marker:
    ledger: str
    folder: str
    host: str
    backend: str
    database: str
    adopted: bool
    heartbeat: float
    inherited: str | None  # whose results a file without a row may already have (see above)
    raw: dict[str, Any]


def marker_path(output: Path) -> Path:
    return Path(output) / STATE_DIR_NAME / MARKER_NAME


def read_marker(output: Path) -> Marker | None:
    path = marker_path(output)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LedgerUnavailable(f"cannot read the share marker {path}: {exc}") from exc
    if not isinstance(data, dict) or not data.get("ledger") or not data.get("folder"):
        raise LedgerUnavailable(f"the share marker {path} is damaged; remove it to let bshmd write a new one")
    return Marker(str(data["ledger"]), str(data["folder"]), str(data.get("host", "?")),
                  str(data.get("backend", "?")), str(data.get("database", "?")),
                  bool(data.get("adopted", True)), float(data.get("heartbeat") or data.get("created_at") or 0),
                  data.get("inherited"), data)


def _write_new(path: Path, data: dict[str, Any], *, replace: bool) -> bool:
    tmp = path.with_name(f".{MARKER_NAME}.{uuid.uuid4().hex}.bshmd-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, json.dumps(data, indent=1).encode("ascii") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        if replace:
            os.replace(tmp, path)
            return True
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _new_marker(ledger: Ledger, input: Path, state: Path, inherited: str | None) -> dict[str, Any]:
    legacy = (state / LEGACY_CLAIMS).is_dir()
    now = time.time()
    return {"v": 1, "ledger": ledger.ledger_id, "folder": uuid.uuid4().hex, "host": socket.gethostname(),
            "backend": ledger.dialect, "database": ledger.describe(), "input": str(input),
            "created_at": now, "heartbeat": now, "adopted": not legacy,
            "inherited": inherited or ("bshmd 0.1" if legacy else None)}


def ensure_marker(ledger: Ledger, input: Path, output: Path) -> Marker:
    """The marker of ``output`` for ``ledger``, writing it (and adopting a 0.1 tree) when
    there is none. Raises ShareOwnedElsewhere, or LedgerUnavailable (share unreadable)."""
    output = Path(output)
    state = output / STATE_DIR_NAME
    marker = read_marker(output)
    if marker is None:
        if not output.is_dir():
            raise LedgerUnavailable(f"output folder {output} is missing")
        with contextlib.suppress(FileExistsError):
            os.mkdir(state)
        _write_new(marker_path(output), _new_marker(ledger, input, state, None), replace=False)
        marker = read_marker(output)
        assert marker is not None
    if marker.ledger != ledger.ledger_id and time.time() - marker.heartbeat > HEARTBEAT_STALE_SECONDS:
        log.warning("%s was tracked by the job ledger %s %s of host %s, silent for %.0f s: taking it over; "
                    "files this ledger has no row for are checked for results first", output, marker.backend,
                    marker.database, marker.host, time.time() - marker.heartbeat)
        inherited = f"ledger {marker.ledger} of {marker.host}"
        _write_new(marker_path(output), _new_marker(ledger, input, state, inherited), replace=True)
        marker = read_marker(output)
        assert marker is not None
    if marker.ledger != ledger.ledger_id:
        raise ShareOwnedElsewhere(
            f"{output} is tracked by another job ledger: {marker.backend} {marker.database} of host "
            f"{marker.host} (marker {marker_path(output)}, heartbeat {time.time() - marker.heartbeat:.0f} s ago); "
            f"this instance uses {ledger.dialect} "
            f"{ledger.describe()}. Instances sharing a folder must share one ledger: set the same "
            f"ledger.url (PostgreSQL) on every host, or remove the marker if host {marker.host} is gone for good")
    ledger.register_folder(marker.folder, str(input), str(output))
    if not marker.adopted:
        adopt_claim_files(ledger, marker.folder, state / LEGACY_CLAIMS)
        _write_new(marker_path(output), {**marker.raw, "adopted": True, "adopted_at": time.time()}, replace=True)
        shutil.rmtree(state / LEGACY_CLAIMS, ignore_errors=True)  # imported: one record, in the ledger
        marker = read_marker(output) or marker
    return marker


def heartbeat(ledger: Ledger, output: Path) -> None:
    """Refresh the marker's heartbeat (and the host that last served the folder)."""
    marker = read_marker(output)
    if marker is None or marker.ledger != ledger.ledger_id:
        return
    _write_new(marker_path(output), {**marker.raw, "heartbeat": time.time(), "host": socket.gethostname()},
               replace=True)


def adopt_claim_files(ledger: Ledger, folder_id: str, claims_dir: Path) -> tuple[int, int]:
    """Import a 0.1 output tree's claim files: ``done`` records become done rows (not processed
    again); ``claimed``/``released`` ones become released rows carrying ``taken_from``, so the
    pipeline looks for results that run had already written (stamped with the input's mtime)
    and records them instead of processing the file again. Returns (done, pending) counts."""
    done = pending = 0
    if not claims_dir.is_dir():
        return done, pending
    for shard in sorted(os.listdir(claims_dir)):
        shard_path = claims_dir / shard
        if len(shard) != 2 or not shard_path.is_dir():
            continue
        for name in sorted(os.listdir(shard_path)):
            if not name.endswith(".json") or name.startswith("."):
                continue
            try:
                record = json.loads((shard_path / name).read_bytes())
                key = FileKey(str(record["relpath"]), int(record["size"]), int(record["mtime_ns"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if record.get("state") == "done":
                if ledger.record_done(folder_id, key, Outcome(ADOPTED, str(record.get("outcome") or "processed")),
                                      only_if_absent=True):
                    done += 1
            elif ledger.record_released(folder_id, key, taken_from=f"0.1:{record.get('instance', '?')}",
                                        reason="adopted"):
                pending += 1
    log.info("adopted the 0.1 claim files of %s: %d done, %d unfinished (their results are checked first)",
             claims_dir.parent.parent, done, pending)
    return done, pending
