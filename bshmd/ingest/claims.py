"""Exactly-once processing across restarts and hosts, coordinated through the shared folder.

Several bshmd instances (on different hosts) may watch one NAS share. Each input file is
represented by one *claim file* in ``<output>/.bshmd/claims/<h[:2]>/<h>.json``, where ``h`` is
the sha256 of the file's relative path (bytes). Its JSON content::

    {"v": 2, "generation": <int>, "relpath": ..., "size": ..., "mtime_ns": ...,
     "state": "claimed" | "done" | "released", "instance": ..., "token": ..., "write": <int>,
     "host": ..., "pid": ..., "lease_expires": <unix time>, "outcome": ..., "completed_at": ...}

Only operations that are atomic on local filesystems, NFSv3/v4 and SMB are used: ``link``
(fails with EEXIST if the name exists, even on old NFS clients where ``O_EXCL`` is not
atomic) and ``rename`` over an existing name. Every file is written complete to a hidden
temporary name (``.<token>-<n>.bshmd-tmp``, ignored by the watchers) and fsynced first.

**Creating a claim.** When no claim file exists, an instance links its record (generation 0)
to the claim name. Exactly one ``link`` succeeds.

**Changing a claim: generation locks.** Every later change of a claim file, whoever makes it
(a taker, or the holder renewing, completing or releasing), replaces a record it has read,
``R`` with generation ``g``, by a record with generation ``n > g``, in these steps:

1. *Lock*: link a lock file ``<h>.g<n>.lock`` with ``n = g + 1``. Only one instance can
   create a given lock name. If it exists and has not expired, another writer is at work:
   back off. If it has expired (its writer died between steps 1 and 4; a lock records its
   own expiry, ``max(lease, 10 s)`` after it was made), skip it and try ``n + 1``.
2. *Verify*: re-read the claim file; go on only if it is still byte-for-byte ``R`` (every
   record carries its writer's token and a per-writer serial, so no two writes are equal).
3. *Deadline*: give up unless less than half the lock's lifetime has passed since step 1.
4. *Replace*: ``rename`` the new record (generation ``n``) over the claim name.
5. Unlink its own lock, and after a successful step 4 the expired locks it skipped.

Invariants and why they hold:

* The claim name, once created, always exists: it is only ever replaced by ``rename``,
  never unlinked (releasing writes a ``released`` record instead of deleting, see below).
  A watcher never sees it missing, and nobody can slip a fresh ``link`` into a gap.
* Generations only grow: each write is ``n > g`` over a verified generation ``g``.
* **At most one writer passes step 2 for a given record and reaches step 4**, so no write is
  ever lost or clobbered. Two writers that verified the same ``R`` hold locks ``n1 <= n2``.
  If ``n1 == n2``, the first one's lock was unlinked before the second created it; that
  happens only after the first finished (its own step 5; if it replaced ``R``, the second's
  step 2 fails) or after the claim had moved past generation ``n1 > g`` (the second's step
  2 fails). If ``n1 < n2``, the second judged lock ``n1`` expired, so a full lock lifetime
  had passed since the first made it, while the first checked at step 3 that less than
  half had: the first is either dead or stalled between steps 3 and 4 for more than a
  quarter of a lock lifetime (allowing for a quarter of clock skew), which the timing
  assumption below excludes.
* A lock never blocks a claim for good: a lock left by a writer that died is skipped once
  it expires and unlinked by the next successful writer. Locks of generations at or below
  the claim's can never be needed again (writers lock above the generation they read).
* The holder's own writes go through the same steps, so a renewal can never overwrite a
  takeover that happened meanwhile; the holder then finds another token in the claim and
  raises ``ClaimLost``.

**Who may take a claim over** (replace a record that is not its own): when the record is
``released``; when its lease expired (holder dead or cut off); when it names another
size/mtime (the file was re-exported with new content); when it was made by an earlier run
of this same ``instance_id`` (restart after SIGKILL); when it is damaged (not JSON) and
older than a lease. A ``done`` record for the same key is permanent: with
``on_success: keep`` it is what stops a restarted daemon from processing the file again.

**Holder operations**: *renew* writes a fresh lease, *complete* a ``done`` record, *release*
a ``released`` record that anyone may take at once (an unlink would have a check-then-unlink
race against a takeover; a ``rename`` through the lock steps has none). Each first checks
that the claim still carries this run's token (else ``ClaimLost``). *verify* only re-reads
the claim: the pipeline calls it right before writing results, so a holder whose claim was
taken over while it was stalled does not write them (fencing).

Timing assumptions: leases and lock expiries compare wall-clock times written by different
hosts, so clocks must agree to well within a lease (NTP); and no process stalls between its
last check and its ``rename`` for longer than a quarter of a lock lifetime (>= 2.5 s).
Deleting claim files by hand while instances run is outside the protocol.

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
import re
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
RELEASED = "released"
# Keys recently recorded as done, remembered without touching the share. Small on purpose:
# the ingestor's settle tracker already remembers every finished file still in the folder,
# so this only bridges the moment between claiming and handing over.
DONE_CACHE_LIMIT = 4096
LOCK_MIN_SECONDS = 10.0  # a lock outlives a slow NFS round trip even with a short lease
MAX_SKIPPED_LOCKS = 256  # expired locks skipped in one write before giving up (each is a crash)
HOLDER_WAIT_SECONDS = 1.0  # how long a holder waits out another writer's lock before retrying later

# Outcomes of one locked write (see the module docstring).
WRITTEN = "written"  # the new record replaced the one that was read
CHANGED = "changed"  # the claim is no longer the record that was read
BUSY = "busy"  # another writer holds a live lock on the next generation

RecordMaker = Callable[[int], bytes]  # generation -> record bytes


class ClaimLost(BshmdError):
    """This instance no longer holds the claim (its lease expired and another instance took it)."""


class StateUnavailable(BshmdError):
    """The state folder (on the output share) cannot be reached: nothing can be claimed now."""


# Exactly the names this module creates besides claim files (see _write_tmp and lock_path), so
# that a sweep after crashes can tell them from anything else in the claims folder.
TMP_NAME_PATTERN = re.compile(r"\.[0-9a-f]{32}-[0-9]+\.bshmd-tmp")
LOCK_NAME_PATTERN = re.compile(r"[0-9a-f]{64}\.g[0-9]+\.lock")


def claim_name(relpath: str) -> str:
    return hashlib.sha256(os.fsencode(relpath)).hexdigest()


def lock_path(claim_path: Path, generation: int) -> Path:
    """The lock a writer must hold to write ``generation`` of the claim at ``claim_path``."""
    return claim_path.with_name(f"{claim_path.stem}.g{generation}.lock")


class FileClaim:
    """A lease on one input file held by this instance (the ``Claim`` protocol of records.py)."""

    def __init__(self, store: ClaimStore, key: FileKey, path: Path, taken_from: str | None) -> None:
        self.store = store
        self.key = key
        self.path = path
        self.taken_from = taken_from  # instance whose claim this replaced, if any
        self.finished = False
        self.outcome: str | None = None
        # Serialises this claim's own writes (renewer thread vs. the pipeline's complete) so
        # they never contend for the same generation lock within one process.
        self.mutex = threading.Lock()

    def complete(self, outcome: str) -> None:
        self.store._complete(self, outcome)

    def release(self) -> None:
        self.store._release(self)

    def verify(self) -> None:
        """Raise ClaimLost unless the claim file still carries this holder's live claim (one read)."""
        self.store._check_mine(self, self.store._read(self.path)[0])

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
        # Called with the claim when one this instance held ends completed or lost (a release
        # calls on_released instead), so that holders of per-file records can drop them.
        self.on_finished: Callable[[FileClaim], None] | None = None
        self._lock = threading.RLock()
        self._held: dict[FileKey, FileClaim] = {}
        self._unwritten_done: dict[FileKey, FileClaim] = {}
        self._done: dict[FileKey, None] = {}  # insertion-ordered set, trimmed from the oldest
        self._counter = itertools.count()
        self._host = socket.gethostname()
        # An output folder seen as a mount point (a NAS share) that later is not one is the
        # bare folder of an unmounted share: nothing may be written there (see check_output).
        self._root_was_mount = False
        self._root_gone = False

    @property
    def lock_seconds(self) -> float:
        """How long a generation lock made by this instance stays valid."""
        return max(self.lease_seconds, LOCK_MIN_SECONDS)

    # --- the output folder ----------------------------------------------------------------

    def check_output(self) -> bool:
        """Whether the output folder (the state folder's parent) can hold claims now.

        False when it is missing, or when it was a mount point once and is not any more: the
        share is unmounted and the folder left behind is on the local disk, where claims and
        results would be hidden (and the claim state split) once the share comes back. An
        output folder never seen as a mount point is trusted as it is.
        """
        from bshmd.ingest.mounts import is_mount_point

        try:
            mounted = is_mount_point(self.state_dir.parent)
        except OSError:
            self._root_gone = True
            return False
        if mounted:
            self._root_was_mount = True
        self._root_gone = self._root_was_mount and not mounted
        return not self._root_gone

    def _refuse_if_unmounted(self) -> None:
        if self._root_gone:
            raise StateUnavailable(f"{self.state_dir.parent}: the share mounted there is gone")

    # --- queries --------------------------------------------------------------------------

    def is_done(self, key: FileKey) -> bool:
        """True when a done record for exactly this key exists. Cached: no I/O once known."""
        if key in self._done:
            return True
        self._refuse_if_unmounted()
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

    def done_cached_count(self) -> int:
        return len(self._done)

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
        self._refuse_if_unmounted()
        try:
            self._ensure_dir(path.parent)
            for _attempt in range(4):
                if self._link_data(path, self._record(key, CLAIMED, generation=0)):
                    return self._hold(key, path, None)
                record, raw = self._read(path)
                if raw is None:
                    continue  # removed from outside between link and read: try again
                verdict = self._judge(record, key, path)
                if verdict == "done":
                    self._remember_done(key)
                    return None
                if verdict == "live":
                    return None
                outcome = self._write_locked(path, raw, _generation_of(record),
                                             lambda gen: self._record(key, CLAIMED, generation=gen))
                if outcome != WRITTEN:
                    return None  # another instance got there first, or is at work on it
                taken_from = None if verdict == "released" else str((record or {}).get("instance", "?"))
                if taken_from is not None:
                    log.info("took over claim of %r from %s (%s)", key.relpath, taken_from, verdict)
                return self._hold(key, path, taken_from)
            return None
        except OSError as exc:
            raise StateUnavailable(f"{self.claims_dir}: {exc.strerror or exc}") from exc

    def _hold(self, key: FileKey, path: Path, taken_from: str | None) -> FileClaim:
        claim = FileClaim(self, key, path, taken_from)
        with self._lock:
            self._held[key] = claim
        return claim

    def _judge(self, record: dict[str, Any] | None, key: FileKey, path: Path) -> str:
        """'done', 'live' (leave it alone) or the reason it may be taken over."""
        if record is None:
            # Claims are written complete, so a damaged one was damaged from outside.
            # Leave it a lease's time in case it is a partial copy being restored.
            try:
                age = time.time() - path.stat().st_mtime
            except OSError:
                return "damaged"
            return "damaged" if age > self.lease_seconds else "live"
        if _key_of(record) != key:
            return "stale key"
        state = record.get("state")
        if state == DONE:
            return "done"
        if state == RELEASED:
            return "released"
        if record.get("instance") == self.instance_id and record.get("token") != self.token:
            return "earlier run of this instance"
        if _float(record.get("lease_expires")) < time.time():
            return "lease expired"
        return "live"

    # --- the locked write -----------------------------------------------------------------

    def _write_locked(self, path: Path, judged: bytes, generation: int, make: RecordMaker) -> str:
        """Replace the claim ``judged`` (of ``generation``) by ``make(n)``; steps 1-5 of the docstring.

        Returns WRITTEN, CHANGED or BUSY. OSError propagates (the share is away).
        """
        taken = self._take_lock(path, generation)
        if taken is None:
            return BUSY
        number, lock, deadline, skipped = taken
        written = False
        try:
            if self._read(path)[1] != judged:
                return CHANGED
            tmp = self._write_tmp(path.parent, make(number))
            try:
                if time.monotonic() >= deadline:
                    # So slow that others may soon judge our lock abandoned: write nothing.
                    log.warning("gave up writing claim %s: the share is too slow", path.name)
                    return BUSY
                os.replace(tmp, path)
                written = True
            finally:
                _unlink_quietly(tmp)
            return WRITTEN
        finally:
            _unlink_quietly(lock)
            if written:
                for old in skipped:
                    _unlink_quietly(old)

    def _take_lock(self, path: Path, generation: int) -> tuple[int, Path, float, list[Path]] | None:
        """Link the lock of the next free generation: (number, lock, monotonic deadline, skipped)."""
        skipped: list[Path] = []
        for number in range(generation + 1, generation + 1 + MAX_SKIPPED_LOCKS):
            lock = lock_path(path, number)
            lifetime = self.lock_seconds
            made = time.monotonic()
            content = {"instance": self.instance_id, "token": self.token, "host": self._host,
                       "pid": os.getpid(), "expires": time.time() + lifetime}
            if self._link_data(lock, json.dumps(content).encode("ascii")):
                return number, lock, made + lifetime / 2, skipped
            if not self._lock_expired(lock):
                return None
            skipped.append(lock)
        log.error("claim %s has %d abandoned locks in a row; leaving it", path.name, MAX_SKIPPED_LOCKS)
        return None

    def _lock_expired(self, lock: Path) -> bool:
        try:
            with open(lock, "rb") as handle:
                raw = handle.read()
                mtime = os.fstat(handle.fileno()).st_mtime
        except FileNotFoundError:
            return False  # its writer just finished: the claim has moved on, back off
        try:
            expires = float(json.loads(raw)["expires"])
        except (ValueError, KeyError, TypeError):
            expires = mtime + self.lock_seconds  # damaged from outside: judge by its age
        return expires < time.time()

    # --- holder operations ----------------------------------------------------------------

    def _holder_write(self, claim: FileClaim, make: RecordMaker, wait: float) -> str:
        """Replace this holder's record by ``make(n)``: WRITTEN, or BUSY after ``wait`` seconds.

        Raises ClaimLost when the claim is not ours any more. Call with ``claim.mutex`` held.
        """
        deadline = time.monotonic() + wait
        while True:
            record, raw = self._read(claim.path)
            self._check_mine(claim, record)
            assert raw is not None  # _check_mine accepted it
            outcome = self._write_locked(claim.path, raw, _generation_of(record), make)
            if outcome == WRITTEN:
                return WRITTEN
            # CHANGED: somebody wrote in between; the next read tells whether it is still ours.
            if outcome == BUSY and time.monotonic() >= deadline:
                return BUSY
            time.sleep(0.01)

    def renew(self) -> None:
        """Extend every lease this instance holds; retry done records that could not be written."""
        for claim in list(self._unwritten_done.values()):
            with claim.mutex:
                self._write_done(claim, claim.outcome or "processed", retrying=True)
        for claim in self.held():
            with claim.mutex:
                if claim.finished:
                    continue
                try:
                    outcome = self._holder_write(
                        claim, lambda gen, key=claim.key: self._record(key, CLAIMED, generation=gen), wait=0.2)
                    if outcome == BUSY:
                        log.warning("cannot renew the claim of %r now: its lock is taken", claim.key.relpath)
                except ClaimLost:
                    log.error("lost the claim of %r: another instance took it over", claim.key.relpath)
                    claim.finished = True
                    with self._lock:
                        self._held.pop(claim.key, None)
                    self._notify_finished(claim)
                except OSError as exc:
                    log.warning("cannot renew the claim of %r: %s", claim.key.relpath, exc)

    def _complete(self, claim: FileClaim, outcome: str) -> None:
        with claim.mutex:
            if claim.finished:
                return
            self._check_mine(claim, self._read(claim.path)[0])  # raises ClaimLost
            claim.outcome = outcome
            claim.finished = True
            with self._lock:
                self._held.pop(claim.key, None)
            self._write_done(claim, outcome, retrying=False)
        self._notify_finished(claim)

    def _notify_finished(self, claim: FileClaim) -> None:
        if self.on_finished is not None:
            try:
                self.on_finished(claim)
            except Exception:
                log.exception("on_finished callback failed for %r", claim.key.relpath)

    def _write_done(self, claim: FileClaim, outcome: str, *, retrying: bool) -> None:
        """Record ``claim`` as done; on failure keep it ours (renewed) and retry from renew()."""
        key = claim.key
        try:
            result: str | OSError = self._holder_write(
                claim, lambda gen: self._record(key, DONE, outcome=outcome, generation=gen),
                wait=HOLDER_WAIT_SECONDS)
        except ClaimLost:
            # Our lease ran out while the share was away and another instance took the file
            # over; it finds the results and completes the claim itself.
            log.error("lost the claim of %r before recording it as %s", key.relpath, outcome)
            with self._lock:
                self._unwritten_done.pop(key, None)
            return
        except OSError as exc:
            result = exc
        if result == WRITTEN:
            with self._lock:
                self._unwritten_done.pop(key, None)
            self._remember_done(key)
            return
        if not retrying:
            log.warning("cannot record %r as %s yet (%s); will retry", key.relpath, outcome, result)
        with self._lock:
            self._unwritten_done[key] = claim
        with contextlib.suppress(OSError, ClaimLost):
            self._holder_write(claim, lambda gen: self._record(key, CLAIMED, generation=gen), wait=0.0)

    def _release(self, claim: FileClaim) -> None:
        with claim.mutex:
            if claim.finished:
                return
            claim.finished = True
            with self._lock:
                self._held.pop(claim.key, None)
            try:
                outcome = self._holder_write(
                    claim, lambda gen: self._record(claim.key, RELEASED, generation=gen),
                    wait=HOLDER_WAIT_SECONDS)
                if outcome == BUSY:
                    log.warning("cannot release the claim of %r now; it expires with its lease",
                                claim.key.relpath)
            except (ClaimLost, OSError) as exc:
                log.debug("release of %r: %s", claim.key.relpath, exc)
        if self.on_released is not None:
            self.on_released(claim.key)

    def release_all(self) -> None:
        for claim in self.held():
            claim.release()

    def _check_mine(self, claim: FileClaim, record: dict[str, Any] | None) -> None:
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
        # Nor the state folder inside the bare folder of an unmounted share.
        if not self.state_dir.is_dir() and not self.check_output():
            raise FileNotFoundError(errno.ENOENT, "output share not mounted", str(self.state_dir.parent))
        for folder in (self.state_dir, self.claims_dir, shard):
            with contextlib.suppress(FileExistsError):
                os.mkdir(folder)

    def _record(self, key: FileKey, state: str, *, generation: int, outcome: str | None = None) -> bytes:
        now = time.time()
        record: dict[str, Any] = {
            "v": 2, "generation": generation,
            "relpath": key.relpath, "size": key.size, "mtime_ns": key.mtime_ns,
            "state": state, "instance": self.instance_id, "token": self.token,
            "write": next(self._counter),  # with the token: no two records are byte-equal
            "host": self._host, "pid": os.getpid(),
        }
        if state == CLAIMED:
            record["lease_expires"] = now + self.lease_seconds
        elif state == DONE:
            record["outcome"] = outcome
            record["completed_at"] = now
        else:
            record["released_at"] = now
        # ensure_ascii keeps undecodable names (lone surrogates) representable.
        return json.dumps(record, ensure_ascii=True).encode("ascii")

    def _write_tmp(self, directory: Path, data: bytes) -> Path:
        tmp = directory / f".{self.token}-{next(self._counter)}.bshmd-tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            _unlink_quietly(tmp)
            raise
        os.close(fd)
        return tmp

    def _link_data(self, path: Path, data: bytes) -> bool:
        """Create ``path`` holding ``data`` unless it exists: True if this call created it."""
        tmp = self._write_tmp(path.parent, data)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            # Over NFS a retransmitted LINK whose first reply was lost answers EEXIST although
            # it succeeded: then the temporary file has a second name.
            with contextlib.suppress(OSError):
                if os.stat(tmp).st_nlink == 2:
                    return True
            return False
        finally:
            _unlink_quietly(tmp)

    def _read(self, path: Path) -> tuple[dict[str, Any] | None, bytes | None]:
        """(parsed record or None if damaged or absent, raw bytes or None if absent)."""
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            return None, None
        try:
            record = json.loads(raw)
        except ValueError:
            return None, raw
        return (record if isinstance(record, dict) else None), raw

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


def _generation_of(record: dict[str, Any] | None) -> int:
    """The record's generation; 0 for records from before generations, -1 for damaged ones."""
    if record is None:
        return -1
    try:
        return int(record.get("generation", 0))
    except (TypeError, ValueError):
        return -1


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
