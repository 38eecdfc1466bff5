"""This process's claims in the ledger: the one owner of "this file is in flight".

``Claims`` (one per process) holds every claim this run has won, renews their leases in one
statement, and retries writes the ledger could not take while it was away. ``FolderClaims``
is its view for one folder pair: the ingestor claims through it, and the pipeline finishes
each job through the ``LedgerClaim`` it carries.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bshmd.errors import ClaimLost, LedgerUnavailable
from bshmd.ledger.keys import FileKey
from bshmd.ledger.outcome import RELEASED, Outcome
from bshmd.ledger.share import HEARTBEAT_SECONDS, STATE_DIR_NAME, ensure_marker, heartbeat
from bshmd.ledger.store import Ledger, Taken, Verdict

log = logging.getLogger("bshmd.ledger")

# Keys recently recorded as done, remembered without asking the ledger. Small on purpose:
# the ingestor's settle tracker already remembers every finished file still in the folder.
DONE_CACHE_LIMIT = 4096
FENCE_MARGIN = 0.25  # of a lease: what a rename may take after its fence check, at most


class LedgerClaim:
    """A lease on one input file held by this run (the ``Claim`` protocol of bshmd.ledger.keys)."""

    def __init__(self, folder: FolderClaims, key: FileKey, epoch: int, taken_from: str | None) -> None:
        self.folder = folder
        self.key = key
        self.epoch = epoch  # the fencing number: every write names it
        self.taken_from = taken_from  # instance whose claim this replaced, if any
        self.finished = False
        self.outcome: Outcome | None = None  # how it ended, as its holder said; None: lost
        self.mutex = threading.Lock()
        self._fenced_until = 0.0  # monotonic: nobody can take the file before then (see fence)

    @property
    def path(self) -> Path:
        return self.folder.root / self.key.relpath

    def complete(self, outcome: Outcome) -> None:
        self.folder.claims._finish(self, outcome)

    def release(self, outcome: Outcome | None = None) -> None:
        self.folder.claims._finish(self, outcome or Outcome(RELEASED, "released"))

    def verify(self) -> None:
        """Raise ClaimLost unless the ledger still shows this run's claim at this epoch; when it
        does, its lease is renewed in the same statement (see Ledger.extend)."""
        if self.finished:
            raise ClaimLost(f"the claim of {self.key.relpath!r} is finished")
        if not self.folder.output_mounted():
            # Results would land in the bare folder of an unmounted share, on the local disk.
            raise ClaimLost(f"the output share of {self.key.relpath!r} is gone: {self.folder.output}")
        claims = self.folder.claims
        asked = time.monotonic()
        if not claims.ledger.extend(self.folder.folder_id, self.key, self.epoch, claims.lease_seconds):
            raise ClaimLost(f"the claim of {self.key.relpath!r} is no longer held by "
                            f"{self.folder.claims.ledger.instance_id}")

        # The database granted a full lease at some moment after ``asked``: until a margin
        # before its end no instance can take the file, whatever the clocks of the hosts.
        self._fenced_until = asked + claims.lease_seconds * (1 - FENCE_MARGIN)

    def fence(self) -> None:
        """Raise ClaimLost once the lease granted by the last verify may have run out (the
        process was frozen or starved in between): no result is renamed into place then.
        CLOCK_MONOTONIC keeps counting while a process is stopped."""
        if time.monotonic() >= self._fenced_until:
            raise ClaimLost(f"the claim of {self.key.relpath!r} may have expired since it was last checked "
                            "(this process stalled): not writing its results")

    def __repr__(self) -> str:
        return f"LedgerClaim({self.key!r}, epoch={self.epoch}, finished={self.finished})"


class Claims:
    """Every claim this process holds, in one ledger."""

    def __init__(self, ledger: Ledger, lease_seconds: float) -> None:
        self.ledger = ledger
        self.lease_seconds = lease_seconds
        self._lock = threading.RLock()
        self._held: dict[tuple[str, FileKey], LedgerClaim] = {}
        self._unwritten: dict[tuple[str, FileKey], LedgerClaim] = {}
        # Called (from whichever thread finished it) when a held claim ends: completed,
        # released or lost. The ingestor turns it into its own bookkeeping, reading
        # ``claim.outcome``: the very Outcome its holder completed or released it with.
        self.on_finished: Callable[[LedgerClaim], None] | None = None

    def held(self) -> list[LedgerClaim]:
        with self._lock:
            return list(self._held.values())

    def holds(self, folder_id: str, key: FileKey) -> bool:
        with self._lock:
            return (folder_id, key) in self._held

    def _hold(self, claim: LedgerClaim) -> None:
        with self._lock:
            self._held[(claim.folder.folder_id, claim.key)] = claim

    def renew(self) -> None:
        """Retry what could not be written, extend every lease, and notice claims taken over."""
        for claim in list(self._unwritten.values()):
            assert claim.outcome is not None
            self._write(claim, claim.outcome, retrying=True)
        with self._lock:
            if not self._held:
                return
        try:
            alive = self.ledger.renew(self.lease_seconds)
        except LedgerUnavailable as exc:
            log.warning("cannot renew claims: %s", exc)
            return
        for claim in self.held():
            with claim.mutex:
                if claim.finished:
                    continue
                if (claim.folder.folder_id, claim.key.relpath, claim.epoch) in alive:
                    continue
                log.error("lost the claim of %r: another instance took it over", claim.key.relpath)
                claim.finished = True
                with self._lock:
                    self._held.pop((claim.folder.folder_id, claim.key), None)
            self._notify(claim)

    def _finish(self, claim: LedgerClaim, outcome: Outcome) -> None:
        with claim.mutex:
            if claim.finished:
                return
            if outcome.done:
                # Fencing before the done record too: a claim lost meanwhile raises here.
                claim.verify()
            claim.finished = True
            claim.outcome = outcome
            with self._lock:
                self._held.pop((claim.folder.folder_id, claim.key), None)
            self._write(claim, outcome, retrying=False)
        self._notify(claim)

    def _write(self, claim: LedgerClaim, outcome: Outcome, *, retrying: bool) -> None:
        """Record ``outcome``; while the ledger is away keep it and retry from renew()."""
        slot = (claim.folder.folder_id, claim.key)
        try:
            ours = self.ledger.finish(claim.folder.folder_id, claim.key, claim.epoch, outcome)
        except LedgerUnavailable as exc:
            if not retrying:
                log.warning("cannot record %r as %s yet (%s); will retry", claim.key.relpath, outcome, exc)
            with self._lock:
                self._unwritten[slot] = claim
            return
        with self._lock:
            self._unwritten.pop(slot, None)
        if not ours:
            # Our lease ran out while the ledger was away and another instance took the file
            # over; it finds the results and records them itself.
            log.error("lost the claim of %r before recording it as %s", claim.key.relpath, outcome)
            return
        if outcome.done:
            claim.folder._remember_done(claim.key)

    def _notify(self, claim: LedgerClaim) -> None:
        if self.on_finished is not None:
            try:
                self.on_finished(claim)
            except Exception:
                log.exception("on_finished callback failed for %r", claim.key.relpath)

    def release_all(self) -> None:
        for claim in self.held():
            claim.release(Outcome(RELEASED, "shutdown"))


class FolderClaims:
    """Claims for one folder pair (input root, output share), through the process's ``Claims``."""

    def __init__(self, claims: Claims, input: Path, output: Path,
                 mounted: Callable[[], bool] | None = None) -> None:
        self.claims = claims
        self._mounted = mounted
        self.root = Path(input)
        self.output = Path(output)
        self.state_dir = self.output / STATE_DIR_NAME
        self._folder_id: str | None = None
        self._inherited: str | None = None  # see share.py: files without a row are checked for results
        self._next_heartbeat = 0.0
        self._done: dict[FileKey, None] = {}  # insertion-ordered set, trimmed from the oldest
        self._done_lock = threading.Lock()
        self._root_gone = False

    @property
    def ledger(self) -> Ledger:
        return self.claims.ledger

    @property
    def lease_seconds(self) -> float:
        return self.claims.lease_seconds

    @property
    def folder_id(self) -> str:
        if self._folder_id is None:
            self._refuse_if_unmounted()
            marker = ensure_marker(self.ledger, self.root, self.output)
            self._inherited = marker.inherited
            self._folder_id = marker.folder
        return self._folder_id

    def heartbeat(self) -> None:
        """Refresh the share marker's heartbeat now and then (called by the renewer thread)."""
        now = time.monotonic()
        if self._folder_id is None or now < self._next_heartbeat or not self.output_mounted():
            return
        self._next_heartbeat = now + HEARTBEAT_SECONDS
        try:
            heartbeat(self.ledger, self.output)
        except (OSError, LedgerUnavailable) as exc:
            log.debug("cannot refresh the share marker of %s: %s", self.output, exc)

    # --- the output folder ----------------------------------------------------------------

    def check_output(self) -> bool:
        """Whether the output folder can take results now (and its share marker is read).

        False when ``mounted`` says no (see bshmd.fs.mounts.OutputMount: an unmounted
        share leaves its bare folder behind on the local disk, where results would be hidden
        once the share comes back). ShareOwnedElsewhere propagates.
        """
        if not self.output_mounted():
            return False
        try:
            _ = self.folder_id
        except LedgerUnavailable:
            return False
        return True

    def output_mounted(self) -> bool:
        """Whether the output folder can take results now (the ingestor's mount check, else
        whether it is a folder)."""
        ok = self._mounted() if self._mounted is not None else self.output.is_dir()
        self._root_gone = not ok
        return ok

    def _refuse_if_unmounted(self) -> None:
        if self._root_gone:
            raise LedgerUnavailable(f"{self.output}: the share mounted there is gone")

    # --- queries --------------------------------------------------------------------------

    def is_done(self, key: FileKey) -> bool:
        """True when a done row for exactly this key exists. Cached: no query once known."""
        if key in self._done:
            return True
        self._refuse_if_unmounted()
        if key in self.ledger.done_among(self.folder_id, [key]):
            self._remember_done(key)
            return True
        return False

    def done_among(self, keys: Sequence[FileKey], *, refresh: bool = False) -> set[FileKey]:
        """Batch form of is_done (one query per couple of hundred keys); ``refresh`` asks the
        ledger about cached ones too, and forgets those it no longer has as done."""
        if refresh:
            found = self.ledger.done_among(self.folder_id, keys)
            with self._done_lock:
                for key in keys:
                    if key not in found:
                        self._done.pop(key, None)
            return found
        cached = {k for k in keys if k in self._done}
        rest = [k for k in keys if k not in cached]
        if not rest:
            return cached
        self._refuse_if_unmounted()
        found = self.ledger.done_among(self.folder_id, rest)
        for key in found:
            self._remember_done(key)
        return cached | found

    def is_done_cached(self, key: FileKey) -> bool:
        return key in self._done

    def done_cached_count(self) -> int:
        return len(self._done)

    def holds(self, key: FileKey) -> bool:
        folder_id = self._folder_id
        return folder_id is not None and self.claims.holds(folder_id, key)

    def held(self) -> list[LedgerClaim]:
        folder_id = self._folder_id
        return [c for c in self.claims.held() if c.folder.folder_id == folder_id] if folder_id else []

    # --- claiming -------------------------------------------------------------------------

    def claim_many(self, keys: Sequence[FileKey]) -> dict[FileKey, LedgerClaim | Verdict]:
        """Claim ``keys`` in as few transactions as possible; a claim or the reason for each."""
        out: dict[FileKey, LedgerClaim | Verdict] = {}
        todo = []
        for key in keys:
            if key in self._done:
                out[key] = Verdict(key, "done")
            elif self.holds(key):
                out[key] = Verdict(key, "held")
            else:
                todo.append(key)
        if not todo:
            return out
        self._refuse_if_unmounted()
        for result in self.ledger.claim(self.folder_id, todo, self.lease_seconds):
            if isinstance(result, Taken):
                out[result.key] = self._held_claim(result)
            else:
                if result.why == "done":
                    self._remember_done(result.key)
                out[result.key] = result
        return out

    def _held_claim(self, result: Taken) -> LedgerClaim:
        # A file new to this ledger in a folder it inherited (a 0.1 tree, another ledger's
        # share): its results may exist already; the pipeline checks first.
        taken_from = result.taken_from or (self._inherited if result.reason == "new" else None)
        claim = LedgerClaim(self, result.key, result.epoch, taken_from)
        if result.taken_from and result.reason != "released":
            log.info("took over claim of %r from %s (%s)", result.key.relpath, result.taken_from, result.reason)
        self.claims._hold(claim)
        return claim

    def mark_ready(self, keys: Sequence[FileKey]) -> dict[FileKey, str]:
        """Settled files, handed to every instance through the ledger (the scanner's job)."""
        self._refuse_if_unmounted()
        states = self.ledger.mark_ready(self.folder_id, keys)
        for key, state in states.items():
            if state == "done":
                self._remember_done(key)
        return states

    def claim_ready(self, limit: int) -> list[LedgerClaim]:
        """Up to ``limit`` files waiting in the ledger (any instance's scanner put them there)."""
        self._refuse_if_unmounted()
        return [self._held_claim(r) for r in self.ledger.claim_ready(self.folder_id, limit, self.lease_seconds)]

    def known_among(self, keys: Sequence[FileKey]) -> set[FileKey]:
        return self.ledger.known_among(self.folder_id, keys)

    def drop(self, claim: LedgerClaim) -> None:
        """The file of a held claim is gone from the folder: its row goes too."""
        with claim.mutex:
            if claim.finished:
                return
            claim.finished = True
            with self.claims._lock:
                self.claims._held.pop((self.folder_id, claim.key), None)
            self.ledger.drop(self.folder_id, claim.key, claim.epoch)

    def try_claim(self, key: FileKey) -> LedgerClaim | None:
        """Claim ``key``; None when it is done already, held by a live lease, or waiting."""
        result = self.claim_many([key])[key]
        return result if isinstance(result, LedgerClaim) else None

    def release_all(self) -> None:
        for claim in self.held():
            claim.release(Outcome(RELEASED, "shutdown"))

    def _remember_done(self, key: FileKey) -> None:
        with self._done_lock:
            self._done[key] = None
            if len(self._done) > DONE_CACHE_LIMIT:
                for old in list(itertools.islice(self._done, DONE_CACHE_LIMIT // 4)):
                    del self._done[old]


