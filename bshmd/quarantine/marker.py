"""The accept-once marker: a requeued input that a person accepted passes the gate once.

``bshmd quarantine requeue --accept`` writes ``<state dir>/accept/<sha256 of relpath>.json``
for the key the input has once it is back (its new mtime); the pipeline consumes it when it
decodes exactly that size and mtime, and skips the quality gate for that one attempt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from bshmd.fs.atomic import atomic_write
from bshmd.quarantine.record import encode_json, now

if TYPE_CHECKING:
    from bshmd.config import FolderConfig
    from bshmd.ledger.keys import FileKey

log = logging.getLogger("bshmd.quarantine")


def accept_marker_path(folder: FolderConfig, key: FileKey) -> Path:
    digest = hashlib.sha256(os.fsencode(key.relpath)).hexdigest()
    return folder.state_dir / "accept" / f"{digest}.json"


def write_accept_marker(folder: FolderConfig, key: FileKey, by: str) -> Path:
    marker = accept_marker_path(folder, key)
    body = {"relpath": key.relpath, "size": key.size, "mtime_ns": key.mtime_ns, "by": by, "time": now()}
    atomic_write(marker, encode_json(body), root=folder.output)
    return marker


def consume_accept(folder: FolderConfig, key: FileKey) -> bool:
    """True once for a key requeued with accept; the marker is removed as it is used.

    A marker for another size or mtime (the file was replaced since) is removed and ignored.
    """
    marker = accept_marker_path(folder, key)
    try:
        body = json.loads(marker.read_bytes())
    except FileNotFoundError:
        return False
    except (OSError, ValueError) as exc:
        log.warning("unreadable accept marker %s: %s", marker, exc)
        return False
    matches = (
        isinstance(body, dict)
        and body.get("relpath") == key.relpath
        and body.get("size") == key.size
        and body.get("mtime_ns") == key.mtime_ns
    )
    try:
        marker.unlink()
    except FileNotFoundError:
        return False  # another instance consumed it first
    if not matches:
        log.info("ignored a stale accept marker for %s (the file changed since)", key.relpath)
    return matches
