"""Exactly-once processing across restarts and hosts, coordinated through the shared folder.

Several bshmd instances (on different hosts) may watch one NAS share. Each input file is
represented by one *claim file* in ``<output>/.bshmd/claims/<h[:2]>/<h>.json``, where ``h`` is
the sha256 of the file's relative path (bytes). Its JSON content::

    {"v": 1, "relpath": ..., "size": ..., "mtime_ns": ..., "state": "claimed" | "done",
     "instance": ..., "token": ..., "host": ..., "pid": ..., "lease_expires": <unix time>,
     "claimed_at": ..., "outcome": ..., "completed_at": ...}

Protocol (only operations that are atomic on local filesystems, NFSv3/v4 and SMB):

* **claim**: write the record to a unique temporary file, fsync it, then ``os.link`` it to
  the claim name. ``link`` fails with EEXIST if the name exists, atomically, even on NFS
  (unlike ``O_EXCL`` on old NFS clients), so exactly one instance wins.
* **renew**: the holder rewrites its record with a new ``lease_expires`` (temporary file +
  ``rename`` over the claim), after checking the claim still carries its token.
* **complete**: same, with ``state: done``. A done record is kept for good: with
  ``on_success: keep`` it is what stops a restarted daemon from processing the file again.
* **release**: the holder unlinks its claim (shutdown before processing).
* **takeover**: a claim may be replaced when its lease expired (holder dead), when it names
  a different size/mtime (the file was re-exported with new content), or when it was made
  by an earlier run of this same ``instance_id`` (restart after SIGKILL). The taker renames
  the claim to a tombstone name unique to itself. Only one rename of a given file can
  succeed; the winner then checks that the tombstone is byte-for-byte the record it judged
  (so it did not move away a claim somebody else made in the meantime; if it did, it puts
  it back) and links its own claim as above. Losers see ENOENT or EEXIST and give up.

Clock assumption: leases compare wall-clock times written by different hosts, so the hosts
must keep their clocks in step (NTP). Leases are generous (default 60 s, renewed every
lease/3), so skew of a few seconds cannot make a live holder look dead.

A claim is at most one holder's at a time; see ``Ingestor`` and the README for how the
pipeline turns that into exactly-once results.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bshmd.errors import BshmdError
from bshmd.records import FileKey

log = logging.getLogger("bshmd.ingest.claims")

CLAIMED = "claimed"
DONE = "done"
DONE_CACHE_LIMIT = 200_000  # keys remembered as done without touching the share


class ClaimLost(BshmdError):
    """This instance no longer holds the claim (its lease expired and another instance took it)."""


class StateUnavailable(BshmdError):
    """The state folder (on the output share) cannot be reached: nothing can be claimed now."""


def claim_name(relpath: str) -> str:
    return hashlib.sha256(os.fsencode(relpath)).hexdigest()


class FileClaim:
    """A lease on one input file held by this instance (the ``Claim`` protocol of records.py)."""

    def __init__(self, store: ClaimStore, key: FileKey, path: Path, taken_from: str | None) -> None:
        self.store = store
        self.key = key
        self.path = path
        self.taken_from = taken_from  # instance whose expired claim this replaced, if any
        self.finished = False
        self.outcome: str | None = None

    def complete(self, outcome: str) -> None:
        self.store._complete(self, outcome)

    def release(self) -> None:
        self.store._release(self)

    def __repr__(self) -> str:
        return f"FileClaim({self.key!r}, finished={self.finished})"


class ClaimStore:
    """Claims for one folder pair, kept in its state folder on the shared filesystem."""

    def __init__(self, state_dir: Path, instance_id: str, lease_seconds: float) -> None:
        self.state_dir = Path(state_dir)
        self.claims_dir = self.state_dir / "claims"
        self.instance_id = instance_id
        self.lease_seconds = lease_seconds
        self.token = uuid.uuid4().hex  # tells this run's claims from an earlier run's
        self.on_released: Callable[[FileKey], None] | None = None
        self._lock = threading.RLock()
        self._held: dict[FileKey, FileClaim] = {}
        self._unwritten_done: dict[FileKey, FileClaim] = {}
        self._done: dict[FileKey, None] = {}  # insertion-ordered set, trimmed from the oldest
        self._counter = itertools.count()
        self._host = socket.gethostname()

    # --- queries --------------------------------------------------------------------------

    def is_done(self, key: FileKey) -> bool:
        """True when a done record for exactly this key exists. Cached: no I/O once known."""
        if key in self._done:
            return True
        try:
            record = self._read(self._path_for(key.relpath))[0]
        except OSError as exc:
            raise StateUnavailable(f"{self.claims_dir}: {exc.strerror or exc}") from exc
        if record is not None and record.get("state") == DONE and _key_of(record) == key:
            self._remember_done(key)
            return True
        return False

    def is_done_cached(self, key: FileKey) -> bool:
        return key in self._done

    def held(self) -> list[FileClaim]:
        with self._lock:
            return list(self._held.values())

    # --- claiming -------------------------------------------------------------------------

    def try_claim(self, key: FileKey) -> FileClaim | None:
        """Claim ``key`` for this instance; None when it is done already or held by a live lease.

        Raises StateUnavailable when the state folder cannot be reached.
        """
        path = self._path_for(key.relpath)
        with self._lock:
            if key in self._done or key in self._held:
                return None
        try:
            self._ensure_dir(path.parent)
            taken_from: str | None = None
            for _attempt in range(4):
                if self._link_new(path, key):
                    claim = FileClaim(self, key, path, taken_from)
                    with self._lock:
                        self._held[key] = claim
                    return claim
                record, raw, ino = self._read(path)
                if raw is None:
                    continue  # vanished between link and read: try again
                verdict = self._judge(record, key, path)
                if verdict == "done":
                    self._remember_done(key)
                    return None
                if verdict == "live":
                    return None
                if not self._take_over(path, raw, ino):
                    return None
                taken_from = (record or {}).get("instance", "?")
                log.info("took over claim of %r from %s (%s)", key.relpath, taken_from, verdict)
            return None
        except OSError as exc:
            raise StateUnavailable(f"{self.claims_dir}: {exc.strerror or exc}") from exc

    def _judge(self, record: dict[str, Any] | None, key: FileKey, path: Path) -> str:
        """'done', 'live' (leave it alone) or the reason it may be taken over."""
        if record is None:
            # Claims are linked complete, so a damaged one was damaged from outside.
            # Leave it a lease's time in case it is a partial copy being restored.
            try:
                age = time.time() - path.stat().st_mtime
            except OSError:
                return "damaged"
            return "damaged" if age > self.lease_seconds else "live"
        if _key_of(record) != key:
            return "stale key"
        if record.get("state") == DONE:
            return "done"
        if record.get("instance") == self.instance_id and record.get("token") != self.token:
            return "earlier run of this instance"
        if float(record.get("lease_expires", 0)) < time.time():
            return "lease expired"
        return "live"

    def _take_over(self, path: Path, raw: bytes, ino: int) -> bool:
        tomb = path.with_name(f"{path.stem}.tomb-{self.token}-{next(self._counter)}")
        try:
            os.rename(path, tomb)
        except FileNotFoundError:
            return True  # someone else moved it; the next link attempt decides
        try:
            with open(tomb, "rb") as handle:
                same = handle.read() == raw and os.fstat(handle.fileno()).st_ino == ino
            if not same:
                # We moved away a claim made after we judged the old one: put it back.
                try:
                    os.link(tomb, path)
                except FileExistsError:
                    log.warning("claim %s changed hands twice during a takeover", path.name)
                return False
            return True
        finally:
            _unlink_quietly(tomb)

    # --- holder operations ----------------------------------------------------------------

    def renew(self) -> None:
        """Extend every lease this instance holds; retry done records that could not be written."""
        for claim in list(self._unwritten_done.values()):
            self._write_done(claim, claim.outcome or "processed", retrying=True)
        for claim in self.held():
            if claim.finished:
                continue
            try:
                with self._lock:
                    if claim.finished:
                        continue
                    self._verify_mine(claim)
                    self._replace(claim.path, self._record(claim.key, CLAIMED))
            except ClaimLost:
                log.error("lost the claim of %r: another instance took it over", claim.key.relpath)
                with self._lock:
                    claim.finished = True
                    self._held.pop(claim.key, None)
            except OSError as exc:
                log.warning("cannot renew the claim of %r: %s", claim.key.relpath, exc)

    def _complete(self, claim: FileClaim, outcome: str) -> None:
        with self._lock:
            if claim.finished:
                return
            self._verify_mine(claim)  # raises ClaimLost
            claim.outcome = outcome
            claim.finished = True
            self._held.pop(claim.key, None)
        self._write_done(claim, outcome, retrying=False)

    def _write_done(self, claim: FileClaim, outcome: str, *, retrying: bool) -> None:
        try:
            self._replace(claim.path, self._record(claim.key, DONE, outcome=outcome))
        except OSError as exc:
            # The share is away: keep the claim ours (renewed) and write the record later.
            if not retrying:
                log.warning("cannot record %r as %s yet (%s); will retry", claim.key.relpath, outcome, exc)
            with self._lock:
                self._unwritten_done[claim.key] = claim
            with contextlib.suppress(OSError):
                self._replace(claim.path, self._record(claim.key, CLAIMED))
            return
        with self._lock:
            self._unwritten_done.pop(claim.key, None)
        self._remember_done(claim.key)

    def _release(self, claim: FileClaim) -> None:
        with self._lock:
            if claim.finished:
                return
            claim.finished = True
            self._held.pop(claim.key, None)
            try:
                self._verify_mine(claim)
                os.unlink(claim.path)
            except (ClaimLost, OSError) as exc:
                log.debug("release of %r: %s", claim.key.relpath, exc)
        if self.on_released is not None:
            self.on_released(claim.key)

    def release_all(self) -> None:
        for claim in self.held():
            claim.release()

    def _verify_mine(self, claim: FileClaim) -> None:
        record = self._read(claim.path)[0]
        if (
            record is None
            or record.get("token") != self.token
            or record.get("state") != CLAIMED
            or _key_of(record) != claim.key
        ):
            raise ClaimLost(f"the claim of {claim.key.relpath!r} is no longer held by {self.instance_id}")

    # --- files ----------------------------------------------------------------------------

    def _path_for(self, relpath: str) -> Path:
        name = claim_name(relpath)
        return self.claims_dir / name[:2] / f"{name}.json"

    def _ensure_dir(self, shard: Path) -> None:
        if shard.is_dir():
            return
        # Never create the output folder itself: if it is missing, its share is not mounted
        # and creating it would write into the bare mount point.
        if not self.state_dir.parent.is_dir():
            raise FileNotFoundError(errno.ENOENT, "output folder missing", str(self.state_dir.parent))
        for folder in (self.state_dir, self.claims_dir, shard):
            with contextlib.suppress(FileExistsError):
                os.mkdir(folder)

    def _record(self, key: FileKey, state: str, outcome: str | None = None) -> bytes:
        now = time.time()
        record: dict[str, Any] = {
            "v": 1, "relpath": key.relpath, "size": key.size, "mtime_ns": key.mtime_ns,
            "state": state, "instance": self.instance_id, "token": self.token,
            "host": self._host, "pid": os.getpid(),
        }
        if state == CLAIMED:
            record["lease_expires"] = now + self.lease_seconds
        else:
            record["outcome"] = outcome
            record["completed_at"] = now
        # ensure_ascii keeps undecodable names (lone surrogates) representable.
        return json.dumps(record, ensure_ascii=True).encode("ascii")

    def _write_tmp(self, directory: Path, data: bytes) -> Path:
        tmp = directory / f".{self.token}-{next(self._counter)}.bshmd-tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return tmp

    def _link_new(self, path: Path, key: FileKey) -> bool:
        tmp = self._write_tmp(path.parent, self._record(key, CLAIMED))
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            _unlink_quietly(tmp)

    def _replace(self, path: Path, data: bytes) -> None:
        tmp = self._write_tmp(path.parent, data)
        try:
            os.replace(tmp, path)
        except OSError:
            _unlink_quietly(tmp)
            raise

    def _read(self, path: Path) -> tuple[dict[str, Any] | None, bytes | None, int]:
        """(parsed record or None if damaged, raw bytes or None if absent, inode)."""
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
                ino = os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            return None, None, 0
        try:
            record = json.loads(raw)
        except ValueError:
            return None, raw, ino
        return (record if isinstance(record, dict) else None), raw, ino

    def _remember_done(self, key: FileKey) -> None:
        with self._lock:
            self._done[key] = None
            if len(self._done) > DONE_CACHE_LIMIT:
                for old in list(itertools.islice(self._done, DONE_CACHE_LIMIT // 4)):
                    del self._done[old]


def _key_of(record: dict[str, Any]) -> FileKey | None:
    try:
        return FileKey(str(record["relpath"]), int(record["size"]), int(record["mtime_ns"]))
    except (KeyError, TypeError, ValueError):
        return None


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
