"""The scanner role: one instance at a time watches, rescans and settles each folder.

The holder of the folder's scanner lease in the ledger watches, polls, rescans and settles,
and turns each settled file into a ``ready`` row for whichever instance claims it first
(bshmd.ingest.claimer). When the scanner stops or dies, another instance takes the lease
over once it has run out. The lease is judged by the database's clock (bshmd.ledger.store);
the scanner's own deadlines (rescans, settling) are on the ingestor's ``clock``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bshmd.errors import LedgerUnavailable
from bshmd.fs.fresh import revalidate
from bshmd.ingest import settle as settle_states
from bshmd.ingest.folders import Clock, Emit, Folder, Folders
from bshmd.ingest.scan import stat_candidate, walk
from bshmd.ledger.keys import FileKey
from bshmd.ledger.store import Ledger

log = logging.getLogger("bshmd.ingest")


def scan_lease(folder_id: str) -> str:
    """The name of a folder's scanner lease in the ledger."""
    return f"scan:{folder_id}"


class Scanner:
    def __init__(self, folders: Folders, ledger: Ledger, *, emit: Emit, wake: threading.Event,
                 stopping: threading.Event, reconfigure_waiting: Callable[[], bool],
                 clock: Clock = time.monotonic) -> None:
        self.folders = folders
        self.ledger = ledger
        self.last_rescan = 0.0  # wall clock (time.time): shown in /status
        self._emit = emit
        self._wake = wake
        self._stopping = stopping
        self._reconfigure_waiting = reconfigure_waiting  # a new configuration waits to be applied
        self._clock = clock

    def lease_seconds(self) -> float:
        return max(self.folders.config.ledger.lease_seconds, 1.0)

    def check_available(self, folder: Folder) -> None:
        """The output share, the scanner lease, then the input folder (watched if ours)."""
        self.folders.check_output(folder)
        if folder.output_available and not folder.refused:
            self.take_lease(folder)
        self.folders.check_input(folder)

    def take_lease(self, folder: Folder) -> None:
        """Hold (or try to take) the folder's scanner lease; becoming or ceasing to be its
        scanner starts or stops the watching here."""
        folder_id = folder.store._folder_id
        if folder_id is None:
            return
        try:
            held = self.ledger.take_lease(scan_lease(folder_id), self.lease_seconds())
        except Exception as exc:  # LedgerUnavailable: keep the role until the lease says otherwise
            log.debug("cannot renew the scanner lease of %s: %s", folder.root, exc)
            return
        if held == folder.scanner:
            return
        folder.scanner = held
        if held:
            log.info("scanning %s (this instance holds its scanner lease)", folder.root)
            folder.rescan_due = 0.0
            self.folders.next_check = 0.0
        else:
            holder = self.ledger.lease_holder(scan_lease(folder_id))
            log.info("%s is scanned by %s; claiming its files from the ledger", folder.root,
                     f"{holder[0]} on {holder[1]}" if holder else "another instance")
            folder.tracker.clear()
        self._wake.set()

    def renew_lease(self, folder: Folder) -> None:
        """Keep the lease while the ingest thread waits for room in the pipeline (renewer
        thread); only take_lease, on the ingest thread, changes the role."""
        if folder.scanner and folder.store._folder_id is not None:
            try:
                self.ledger.take_lease(scan_lease(folder.store._folder_id), self.lease_seconds())
            except Exception as exc:
                log.debug("cannot renew the scanner lease of %s: %s", folder.root, exc)

    def drop_lease(self, folder: Folder) -> None:
        if folder.scanner and folder.store._folder_id is not None:
            folder.scanner = False
            try:
                self.ledger.drop_lease(scan_lease(folder.store._folder_id))
            except Exception as exc:  # the lease runs out by itself
                log.debug("cannot drop the scanner lease of %s: %s", folder.root, exc)

    def run_due(self, nominated: dict[Path, tuple[Folder, bool]]) -> None:
        """One pass over the folders this instance scans: the rescans that are due, the paths
        the observers nominated, then the files whose settle time is up."""
        folders = self.folders
        for folder in folders:
            if self._stopping.is_set():
                break
            if folder.available and folder.scanner and self._clock() >= folder.rescan_due:
                self.rescan(folder)
        live = set(folders)
        for path, (folder, is_dir) in nominated.items():
            if folder in live and folder.available and folder.scanner:
                self.consider_nominated(folder, path, is_dir)
        for folder in folders:
            if folder.available and folder.scanner:
                self.settle_due(folder)

    def deadlines(self) -> list[float]:
        """When the scanner has work next: rescans and settle checks of the folders it scans."""
        out: list[float] = []
        for folder in self.folders:
            if folder.scanner:
                out.append(folder.rescan_due)
                deadline = folder.tracker.next_deadline()
                if deadline is not None:
                    out.append(deadline)
        return out

    def rescan(self, folder: Folder) -> None:
        started = time.monotonic()  # how long the walk took, for the event
        folder.rescan_due = self._clock() + self.folders.config.rescan_seconds
        seen: set[str] = set()  # names, not Paths: one per file in the folder, kept small
        try:
            for path, st in walk(folder.root, folder.path_filter):
                seen.add(os.fspath(path))
                self.observe(folder, path, st)
        except OSError as exc:
            log.info("rescan of %s failed: %s", folder.root, exc.strerror or exc)
            self.check_available(folder)
            return
        folder.tracker.forget_missing(seen)
        self._recheck_done(folder)
        self.last_rescan = time.time()
        self._emit("rescan", {"folder": str(folder.root), "files": len(seen),
                              "seconds": round(time.monotonic() - started, 3)})

    def _recheck_done(self, folder: Folder) -> None:
        """Files remembered as in the ledger whose row is gone now (``bshmd ledger forget``):
        settled and marked again. (``reprocess`` turns rows into released ones, which every
        instance claims without the scanner.) A few batched queries per full rescan."""
        finished = folder.tracker.finished_with(settle_states.DONE) + \
            folder.tracker.finished_with(settle_states.QUEUED)
        if not finished:
            return
        try:
            known = folder.store.known_among([key for _path, key in finished])
            folder.store.done_among([key for _path, key in finished], refresh=True)  # drops stale cache entries
        except (LedgerUnavailable, OSError) as exc:
            log.debug("cannot recheck the files of %s: %s", folder.root, exc)
            return
        for path, key in finished:
            if key not in known and not folder.store.holds(key):
                log.info("%s is no longer in the ledger: offering it again", path)
                folder.tracker.reopen(path, key)

    def consider_nominated(self, folder: Folder, path: Path, is_dir: bool) -> None:
        try:
            if not os.path.lexists(path):
                # Deleted or moved away (on_success: move/delete, quarantine, a user): its
                # record goes now rather than at the next full rescan.
                if is_dir:
                    folder.tracker.forget_under(path)
                folder.tracker.forget(path)
                return
            if is_dir:
                if path != folder.root and not folder.path_filter.accepts_dir(path):
                    return
                if os.path.islink(path):
                    return
                for found, st in walk(folder.root, folder.path_filter, start=path):
                    self.observe(folder, found, st)
                return
            st = stat_candidate(folder.root, path, folder.path_filter)
            if st is None:
                if not os.path.lexists(path):
                    folder.tracker.forget(path)
                return
            self.observe(folder, path, st)
        except OSError as exc:
            log.debug("cannot look at %r: %s", str(path), exc)

    def observe(self, folder: Folder, path: Path, st: os.stat_result) -> None:
        key = FileKey.of(folder.root, path, st)
        if folder.store.holds(key):
            return  # in the pipeline: the ledger says so, nothing to track here
        if not folder.tracker.observe(path, key):
            return
        self._emit("file_seen", {"folder": str(folder.root), "relpath": key.relpath, "size": key.size})
        try:
            done = folder.store.is_done(key)  # one ledger read at first sight, then cached
        except LedgerUnavailable:
            done = False  # settle anyway; the claim step waits for the ledger
        if done:
            folder.tracker.finish(path, key, settle_states.DONE)

    def settle_due(self, folder: Folder) -> None:
        config = self.folders.config
        for path, _entry in folder.tracker.due():
            if self._stopping.is_set() or self._reconfigure_waiting():
                return  # the rest is due still: the next pass, under the new configuration
            try:
                st = stat_candidate(folder.root, path, folder.path_filter)
                if st is None:
                    folder.tracker.forget(path)
                    continue
                key = FileKey.of(folder.root, path, st)
                if not folder.tracker.check(path, key):
                    continue
                # Attribute caches (bshmd.ingest.attrcache): the last look is at fresh attributes.
                fresh, why = revalidate(path)
                if fresh is None:
                    log.debug("%r does not open for reading yet (%s)", str(path), why)
                    folder.tracker.retry_later(path, max(config.settle_seconds / 2, 0.1))
                    continue
                fresh_key = FileKey.of(folder.root, path, fresh)
                if fresh_key != key:
                    folder.tracker.check(path, fresh_key)  # it changed after all: settle again
                    continue
                self._mark_ready(folder, path, key)
            except Exception:
                log.exception("cannot settle %r; will retry", str(path))
                folder.tracker.retry_later(path, config.poll_seconds)

    def _mark_ready(self, folder: Folder, path: Path, key: FileKey) -> None:
        """A settled file becomes a ready row, for whichever instance claims it first."""
        config = self.folders.config
        if folder.refused:
            folder.tracker.retry_later(path, config.poll_seconds)
            return
        try:
            state = folder.store.mark_ready([key])[key]
        except (LedgerUnavailable, OSError) as exc:
            if not folder.state_warned:
                log.warning("cannot claim files of %s: the job ledger or the output share is unreachable "
                            "(%s); waiting", folder.root, exc)
                folder.state_warned = True
            folder.tracker.retry_later(path, config.poll_seconds)
            return
        if folder.state_warned:
            log.warning("claiming files of %s again", folder.root)
            folder.state_warned = False
        # The ledger has it now (ready, in flight somewhere, or done): the tracker only
        # remembers that, so rescans do not ask again.
        folder.tracker.finish(path, key, settle_states.DONE if state == "done" else settle_states.QUEUED)
        if state == "ready":
            folder.ledger_due = 0.0
