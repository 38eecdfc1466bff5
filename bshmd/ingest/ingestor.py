"""The hot-folder front end: watch, rescan, settle, claim, hand over.

One ``bshmd-ingest`` thread does all the deciding (so the bookkeeping needs no locks of its
own); observers only nominate paths to it, and a ``bshmd-claim-renewer`` thread keeps this
instance's leases alive. Which files are in flight is the job ledger's to say
(``bshmd.ledger``): the ingestor keeps no list of its own of the files it handed over.

One instance at a time scans each folder: the holder of the folder's scanner lease in the
ledger watches, polls, rescans and settles, and turns each settled file into a ``ready`` row;
every instance (the scanner too) claims ready rows in batches of ``batch.max_size`` and hands
them to its pipeline. When the scanner stops or dies, another instance takes the lease over
once it has run out.
Each folder pair is handled on its own: one that disappears (NAS
unmounted, folder renamed) is reported once and retried, the others carry on.
"""

from __future__ import annotations

import logging
import os
import stat as stat_module
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bshmd.config import Config, FolderConfig
from bshmd.errors import ClaimLost, LedgerUnavailable, ShareOwnedElsewhere
from bshmd.fs.fresh import revalidate
from bshmd.fs.mounts import watch_mode_for
from bshmd.fs.output import OutputMount
from bshmd.ingest import settle as settle_states
from bshmd.ingest.attrcache import settle_window
from bshmd.ingest.filters import PathFilter, excluded_dirs_for
from bshmd.ingest.scan import stat_candidate, walk
from bshmd.ingest.settle import SettleTracker
from bshmd.ingest.sweep import sweep_leftovers
from bshmd.ingest.watch import OverflowListener, start_observer, stop_observer
from bshmd.ledger.claims import Claims, FolderClaims, LedgerClaim
from bshmd.ledger.keys import FileKey
from bshmd.ledger.outcome import NOT_FINISHED, RELEASED, SKIPPED, Outcome
from bshmd.ledger.store import Ledger
from bshmd.pipeline.job import Job

log = logging.getLogger("bshmd.ingest")

def _scan_lease(folder_id: str) -> str:
    return f"scan:{folder_id}"


LEDGER_STATS_SECONDS = 5.0  # how often /status and the metrics' ledger counts are refreshed

OnReady = Callable[[Job], bool]
OnEvent = Callable[[str, dict], None]


@dataclass(eq=False)
class _Folder:
    """Everything the ingestor keeps about one folder pair."""

    cfg: FolderConfig
    index: int
    root: Path
    path_filter: PathFilter
    store: FolderClaims
    tracker: SettleTracker
    mode: str = "events"
    observer: Any = None
    available: bool | None = None  # None: not checked yet
    output_available: bool | None = None  # the output folder can hold claims (share mounted)
    identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the root the observer watches
    rescan_due: float = 0.0  # monotonic
    state_warned: bool = False
    refused: str = ""  # the share is tracked by another ledger: nothing is claimed here
    scanner: bool = False  # this instance holds the folder's scanner lease
    ledger_due: float = 0.0  # monotonic: when to look for ready rows next


class Ingestor:
    def __init__(
        self,
        config: Config,
        on_ready: OnReady,
        *,
        instance_id: str,
        on_event: OnEvent | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self._config = config
        self._on_ready = on_ready
        self._on_event = on_event
        self.instance_id = instance_id
        # Held by the ingest thread for a whole pass (and by stop()). A pass may wait in
        # on_ready for room in the pipeline for as long as a backlog takes, so nothing that
        # another thread calls (reconfigure, request_rescan, health) takes it: they leave
        # their request in the inbox below and the ingest thread picks it up.
        self._lock = threading.RLock()
        self._folders: dict[str, _Folder] = {}
        if ledger is None:
            from bshmd.ledger import open_ledger

            ledger = open_ledger(config, instance_id)
        self.ledger = ledger
        self.claims = Claims(ledger, config.claims.lease_seconds)
        self.claims.on_finished = self._note_ended
        self._stores: dict[Path, FolderClaims] = {}
        self._nominated: dict[Path, tuple[_Folder, bool]] = {}
        self._ended: list[LedgerClaim] = []
        self._ledger_status: dict[str, Any] | None = None
        self._pending_config: Config | None = None
        self._rescan_requested = False
        self._inbox_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._overflow = OverflowListener(self.request_rescan)
        self._next_availability_check = 0.0
        self._last_rescan = 0.0
        self._build_folders(config)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._threads:
            return
        self._stopping.clear()
        self._overflow.install()
        self._threads = [
            threading.Thread(target=self._run, name="bshmd-ingest", daemon=True),
            threading.Thread(target=self._renew_leases, name="bshmd-claim-renewer", daemon=True),
            threading.Thread(target=self._sweep, args=(self._config,), name="bshmd-sweep", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop watching. Claims already handed to the pipeline stay valid for one lease."""
        self._stopping.set()
        self._wake.set()
        for thread in self._threads:
            thread.join()
        self._threads = []
        self._overflow.remove()
        with self._lock:
            for folder in self._folders.values():
                self._stop_watching(folder)
                if folder.scanner and folder.store._folder_id is not None:
                    folder.scanner = False
                    try:
                        self.ledger.drop_lease(_scan_lease(folder.store._folder_id))
                    except Exception as exc:  # the lease runs out by itself
                        log.debug("cannot drop the scanner lease of %s: %s", folder.root, exc)

    def reconfigure(self, config: Config) -> None:
        """Apply a reloaded configuration: folders added or removed, timings changed.

        Returns at once (SIGHUP is handled on the daemon's main loop, which also pings the
        watchdog): the ingest thread applies the configuration before its next file, or,
        when it is waiting for room in the pipeline, as soon as that hand-over is done.
        """
        with self._inbox_lock:
            self._pending_config = config
        if not self._threads:
            with self._lock:  # not running: nobody else would apply it
                self._apply_pending_config()
        self._wake.set()

    def request_rescan(self) -> None:
        """Rescan every folder soon (after an inotify queue overflow, or on demand)."""
        with self._inbox_lock:
            self._rescan_requested = True
        self._emit("rescan", {"reason": "requested"})
        self._wake.set()

    def _apply_pending_config(self) -> None:
        with self._inbox_lock:
            config, self._pending_config = self._pending_config, None
        if config is None:
            return
        old_config, old = self._config, self._folders
        self._config = config
        self._build_folders(config, previous=old, previous_config=old_config)

    def _reconfigure_waiting(self) -> bool:
        return self._pending_config is not None

    def health(self) -> dict:
        # No lock: the ingest thread holds it for a whole pass, and a pass may wait for room
        # in the pipeline for as long as a backlog takes to drain. /status, STATUS= and the
        # main loop (hence the watchdog) must not wait with it. ``_folders`` is only ever
        # replaced, never changed in place, so one reference is a consistent set.
        current = list(self._folders.values())
        folders = {
            str(f.cfg.input): {
                "available": bool(f.available),
                "mode": f.mode,
                # Watched here, or by the instance that holds the scanner lease.
                "watching": (f.observer is not None and f.observer.is_alive()) or (
                    bool(f.available) and not f.scanner and f.store._folder_id is not None),
                "output_available": f.output_available is not False,
                "scanner": f.scanner,
                **({"refused": f.refused} if f.refused else {}),
            }
            for f in current
        }
        pending = sum(len(f.tracker) for f in current)
        return {"folders": folders, "pending": pending, "last_rescan": self._last_rescan}

    def record_counts(self) -> dict[str, int]:
        """How many per-file records the ingestor holds, summed over folders (for /status and
        leak checks): files settling, finished files remembered, claims held in the ledger
        (the files in the pipeline: ``handed`` and ``held_claims`` are one number, kept under
        both names) and the done cache. Read without the lock, like health()."""
        current = list(self._folders.values())
        stores = {id(f.store): f.store for f in current}.values()
        held = len(self.claims.held())
        return {
            "settling": sum(len(f.tracker) for f in current),
            "finished": sum(f.tracker.finished_count() for f in current),
            "handed": held,
            "held_claims": held,
            "done_cached": sum(s.done_cached_count() for s in stores),
        }

    # --- configuration --------------------------------------------------------------------

    def _build_folders(
        self,
        config: Config,
        previous: dict[str, _Folder] | None = None,
        previous_config: Config | None = None,
    ) -> None:
        previous = previous or {}
        excluded = excluded_dirs_for(config.folders)
        poll_changed = previous_config is not None and previous_config.poll_seconds != config.poll_seconds
        folders: dict[str, _Folder] = {}
        now = time.monotonic()
        for index, cfg in enumerate(config.folders):
            key = str(cfg.input)
            path_filter = PathFilter(cfg.input, config.extensions, excluded, cfg.ignore, config.raw_pairs_for(cfg))
            old = previous.get(key)
            if old is not None and old.cfg == cfg:
                old.index, old.path_filter = index, path_filter
                old.tracker.settle_seconds = settle_window(cfg, config.settle_seconds).seconds
                old.rescan_due = min(old.rescan_due, now + config.rescan_seconds)
                if poll_changed and old.mode == "poll":
                    self._stop_watching(old)
                    old.available = None  # restarts the observer at the next check
                folders[key] = old
                continue
            if old is not None:
                self._stop_watching(old)
            folders[key] = _Folder(
                cfg=cfg,
                index=index,
                root=cfg.input,
                path_filter=path_filter,
                store=self._store_for(cfg),
                tracker=SettleTracker(settle_window(cfg, config.settle_seconds).seconds, root=cfg.input),
            )
        for key, old in previous.items():
            if key not in folders:
                self._stop_watching(old)
                log.info("no longer watching %s", old.root)
        self.claims.lease_seconds = config.claims.lease_seconds
        self._folders = folders
        self._next_availability_check = 0.0

    def _store_for(self, cfg: FolderConfig) -> FolderClaims:
        store = self._stores.get(cfg.output)
        if store is None or store.root != cfg.input:
            store = FolderClaims(self.claims, cfg.input, cfg.output, mounted=OutputMount(cfg.output))
            self._stores[cfg.output] = store
        return store

    def close(self) -> None:
        """Stop, and close the ledger connection."""
        self.stop()
        self.ledger.close()

    # --- threads --------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                with self._lock:
                    self._apply_pending_config()
                    timeout = self._tick()
            except Exception:
                log.exception("ingest loop failed; continuing")
                timeout = 1.0
            self._wake.wait(max(0.01, timeout))
            self._wake.clear()

    def _renew_leases(self) -> None:
        """Renew every lease a third of a lease before it runs out; refresh the ledger's counts."""
        next_renew = next_stats = 0.0
        while True:
            now = time.monotonic()
            if now >= next_renew:
                next_renew = now + max(0.2, self._config.claims.lease_seconds / 3)
                try:
                    self.claims.renew()
                except Exception:
                    log.exception("renewing claims in %s failed; continuing", self.ledger.describe())
                for folder in list(self._folders.values()):
                    # Keep the lease while the ingest thread waits for room in the pipeline;
                    # only that thread changes the role (see _take_scan_lease).
                    if folder.scanner and folder.store._folder_id is not None:
                        try:
                            self.ledger.take_lease(_scan_lease(folder.store._folder_id),
                                                   max(self._config.claims.lease_seconds, 1.0))
                        except Exception as exc:
                            log.debug("cannot renew the scanner lease of %s: %s", folder.root, exc)
            if now >= next_stats:
                next_stats = now + LEDGER_STATS_SECONDS
                self._refresh_ledger_status()
                for folder in list(self._folders.values()):
                    folder.store.heartbeat()  # the share marker says this ledger is alive
            if self._stopping.wait(max(0.05, min(next_renew, next_stats) - time.monotonic())):
                return

    def _refresh_ledger_status(self) -> None:
        names = {f.store._folder_id: str(f.root) for f in list(self._folders.values()) if f.store._folder_id}
        status: dict[str, Any] = {"backend": self.ledger.dialect, "database": self.ledger.describe(),
                                  "id": self.ledger.ledger_id, "held": len(self.claims.held())}
        try:
            counts = self.ledger.counts()
            status["reachable"] = True
            status["jobs"] = {names.get(folder, folder): c for folder, c in counts.items() if folder in names}
        except Exception as exc:  # LedgerUnavailable, or anything the driver raises
            status["reachable"] = False
            status["error"] = str(exc)
            status["jobs"] = (self._ledger_status or {}).get("jobs", {})
        self._ledger_status = status

    def ledger_status(self) -> dict[str, Any]:
        """The ledger as last seen by the renewer thread (never waits for the database)."""
        return dict(self._ledger_status or {"backend": self.ledger.dialect, "database": self.ledger.describe(),
                                            "id": self.ledger.ledger_id, "held": len(self.claims.held()),
                                            "reachable": True, "jobs": {}})

    def _sweep(self, config: Config) -> None:
        """Once per start: remove the temporary and lock files that crashed writers left."""
        for cfg in config.folders:
            if self._stopping.is_set():
                return
            try:
                removed = sweep_leftovers(cfg.state_dir / "claims",
                                          (cfg.output, cfg.quarantine, cfg.done_dir, cfg.rejected_dir),
                                          config.claims.lease_seconds, stop=self._stopping)
            except Exception:
                log.exception("sweeping leftovers of %s failed; continuing", cfg.output)
                continue
            if removed:
                log.info("removed %d leftover temporary or lock file(s) of %s", len(removed), cfg.input)
                self._emit("swept", {"folder": str(cfg.input), "removed": len(removed)})

    # --- the loop -------------------------------------------------------------------------

    def _tick(self) -> float:
        """One pass over everything that is due; returns how long to sleep."""
        config = self._config
        now = time.monotonic()
        if now >= self._next_availability_check:
            for folder in self._folders.values():
                self._check_available(folder)
            self._next_availability_check = now + min(config.poll_seconds, 5.0)

        with self._inbox_lock:
            nominated, self._nominated = self._nominated, {}
            ended, self._ended = self._ended, []
            rescan_all, self._rescan_requested = self._rescan_requested, False
        if rescan_all:
            for folder in self._folders.values():
                folder.rescan_due = 0.0
        for claim in ended:
            self._ended_claim(claim)

        for folder in self._folders.values():
            if self._stopping.is_set():
                break
            if not folder.available or not folder.scanner:
                continue
            if time.monotonic() >= folder.rescan_due:
                self._rescan(folder)
        live = set(self._folders.values())
        for path, (folder, is_dir) in nominated.items():
            if folder in live and folder.available and folder.scanner:
                self._consider_nominated(folder, path, is_dir)
        for folder in self._folders.values():
            if folder.available and folder.scanner:
                self._settle_due(folder)
        for folder in self._folders.values():
            if self._stopping.is_set() or self._reconfigure_waiting():
                break
            if folder.available and folder.output_available and not folder.refused:
                self._take_ready(folder)

        deadlines = [self._next_availability_check]
        for folder in self._folders.values():
            deadlines.append(folder.ledger_due)
            if not folder.scanner:
                continue
            deadlines.append(folder.rescan_due)
            deadline = folder.tracker.next_deadline()
            if deadline is not None:
                deadlines.append(deadline)
        return min(deadlines) - time.monotonic()

    def _take_scan_lease(self, folder: _Folder) -> None:
        """Hold (or try to take) the folder's scanner lease; becoming or ceasing to be its
        scanner starts or stops the watching here."""
        folder_id = folder.store._folder_id
        if folder_id is None:
            return
        try:
            held = self.ledger.take_lease(_scan_lease(folder_id), max(self._config.claims.lease_seconds, 1.0))
        except Exception as exc:  # LedgerUnavailable: keep the role until the lease says otherwise
            log.debug("cannot renew the scanner lease of %s: %s", folder.root, exc)
            return
        if held == folder.scanner:
            return
        folder.scanner = held
        if held:
            log.info("scanning %s (this instance holds its scanner lease)", folder.root)
            folder.rescan_due = 0.0
            self._next_availability_check = 0.0
        else:
            holder = self.ledger.lease_holder(_scan_lease(folder_id))
            log.info("%s is scanned by %s; claiming its files from the ledger", folder.root,
                     f"{holder[0]} on {holder[1]}" if holder else "another instance")
            folder.tracker.clear()
        self._wake.set()

    def _take_ready(self, folder: _Folder) -> None:
        """Claim files waiting in the ledger (put there by whichever instance scans) and hand
        them over; a full batch means more may wait, so look again at once."""
        if time.monotonic() < folder.ledger_due:
            return
        limit = self._config.batch.max_size
        try:
            claims = folder.store.claim_ready(limit)
        except (LedgerUnavailable, OSError) as exc:
            log.debug("cannot claim waiting files of %s: %s", folder.root, exc)
            folder.ledger_due = time.monotonic() + self._config.poll_seconds
            return
        folder.ledger_due = 0.0 if len(claims) >= limit else time.monotonic() + min(self._config.poll_seconds, 1.0)
        for claim in claims:
            path = folder.root / claim.key.relpath
            try:
                st = stat_candidate(folder.root, path, folder.path_filter)
            except OSError:
                st = None
            if st is None:
                if not os.path.lexists(path):
                    folder.store.drop(claim)  # gone from the folder: nothing to do, ever
                else:
                    claim.release(Outcome(RELEASED, "not a candidate", retry_after=self._config.rescan_seconds))
                continue
            if FileKey.of(folder.root, path, st) != claim.key:
                # Changed since it settled: the scanner settles the new version and marks it.
                claim.release(Outcome(RELEASED, "changed", retry_after=self._config.settle_seconds))
                if folder.scanner:
                    self._observe(folder, path, st)
                continue
            # RAW+JPEG pairs (raw_pairs, bshmd.ingest.filters): the other half is processed instead.
            partner = folder.path_filter.paired_with(path)
            if partner is not None:
                log.info("leaving %s alone: %s of the same shot is processed (raw_pairs: %s)", path,
                         partner.name, folder.path_filter.raw_pairs,
                         extra={"bshmd_file": str(path), "bshmd_outcome": "skipped:raw_pair"})
                self._complete_skipped(claim)
                continue
            self._hand_over(folder, path, claim.key, claim)

    @staticmethod
    def _complete_skipped(claim: LedgerClaim) -> None:
        try:
            claim.complete(Outcome(SKIPPED, "raw_pair"))
        except (ClaimLost, LedgerUnavailable) as exc:  # another instance has it now, or decides later
            log.debug("cannot record %r as skipped: %s", claim.key.relpath, exc)

    def _check_output(self, folder: _Folder) -> None:
        """Is the output share there (and tracked by our ledger)? Files wait (unclaimed) while not."""
        try:
            available = folder.store.check_output()
        except ShareOwnedElsewhere as exc:
            if not folder.refused:
                log.error("%s; files of %s wait", exc, folder.root)
                self._emit("share_refused", {"folder": str(folder.root), "reason": str(exc)})
            folder.refused = str(exc)
            available = False
        else:
            folder.refused = ""
        if available == folder.output_available:
            return
        if not available:
            log.warning("output folder %s is unavailable (missing, or its share is unmounted); "
                        "files of %s wait", folder.cfg.output, folder.root)
            self._emit("output_unavailable", {"folder": str(folder.root), "output": str(folder.cfg.output)})
        elif folder.output_available is False:
            log.warning("output folder %s is available again", folder.cfg.output)
            self._emit("output_back", {"folder": str(folder.root), "output": str(folder.cfg.output)})
        folder.output_available = available

    def _check_available(self, folder: _Folder) -> None:
        self._check_output(folder)
        if folder.output_available and not folder.refused:
            self._take_scan_lease(folder)
        reason = ""
        identity = None
        try:
            st = os.stat(folder.root)
            identity = (st.st_dev, st.st_ino)
            if not stat_module.S_ISDIR(st.st_mode):
                reason = "not a folder"
            elif not os.access(folder.root, os.R_OK | os.X_OK):
                reason = "not readable"
        except OSError as exc:
            reason = exc.strerror or str(exc)
        if reason:
            if folder.available is not False:
                log.warning("input folder %s is unavailable (%s); retrying every %gs",
                            folder.root, reason, self._config.poll_seconds)
                self._emit("folder_unavailable", {"folder": str(folder.root), "reason": reason})
            folder.available = False
            self._stop_watching(folder)
            return
        came_back = folder.available is False
        if not folder.scanner:
            # Another instance watches it; this one only needs to read its files.
            self._stop_watching(folder)
            if came_back:
                log.warning("input folder %s is available again", folder.root)
                self._emit("folder_back", {"folder": str(folder.root)})
            folder.available, folder.identity = True, identity
            return
        if folder.available and identity == folder.identity and folder.observer is not None:
            return
        if came_back:
            log.warning("input folder %s is available again", folder.root)
            self._emit("folder_back", {"folder": str(folder.root)})
        # First sight, back after an outage, or replaced (remounted, recreated): watch anew.
        self._stop_watching(folder)
        folder.available, folder.identity = True, identity
        folder.mode = watch_mode_for(folder.root, folder.cfg.watch)
        # Attribute caches (bshmd.ingest.attrcache): the mount may have changed with the folder.
        window = settle_window(folder.cfg, self._config.settle_seconds)
        folder.tracker.settle_seconds = window.seconds
        log.info("watching %s (%s): %s", folder.root, folder.mode, window.describe())
        name = f"bshmd-watch-{folder.index}"
        try:
            folder.observer = start_observer(folder.root, folder.mode, self._config.poll_seconds,
                                             self._nominator(folder), name)
        except OSError as exc:
            # Typically the inotify watch limit: polling still works.
            log.warning("cannot watch %s with %s (%s); polling instead", folder.root, folder.mode, exc)
            folder.mode = "poll"
            try:
                folder.observer = start_observer(folder.root, "poll", self._config.poll_seconds,
                                                 self._nominator(folder), name)
            except OSError as exc2:
                log.warning("cannot watch %s (%s); relying on rescans", folder.root, exc2)
        folder.rescan_due = 0.0

    def _nominator(self, folder: _Folder) -> Callable[[Path, bool], None]:
        def nominate(path: Path, is_dir: bool) -> None:
            with self._inbox_lock:
                self._nominated[path] = (folder, is_dir or self._nominated.get(path, (folder, False))[1])
            self._wake.set()

        return nominate

    def _stop_watching(self, folder: _Folder) -> None:
        observer, folder.observer = folder.observer, None
        if observer is not None:
            stop_observer(observer)

    def _rescan(self, folder: _Folder) -> None:
        started = time.monotonic()
        folder.rescan_due = started + self._config.rescan_seconds
        seen: set[str] = set()  # names, not Paths: one per file in the folder, kept small
        try:
            for path, st in walk(folder.root, folder.path_filter):
                seen.add(os.fspath(path))
                self._observe(folder, path, st)
        except OSError as exc:
            log.info("rescan of %s failed: %s", folder.root, exc.strerror or exc)
            self._check_available(folder)
            return
        folder.tracker.forget_missing(seen)
        self._recheck_done(folder)
        self._last_rescan = time.time()
        self._emit("rescan", {"folder": str(folder.root), "files": len(seen),
                              "seconds": round(time.monotonic() - started, 3)})

    def _recheck_done(self, folder: _Folder) -> None:
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

    def _consider_nominated(self, folder: _Folder, path: Path, is_dir: bool) -> None:
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
                    self._observe(folder, found, st)
                return
            st = stat_candidate(folder.root, path, folder.path_filter)
            if st is None:
                if not os.path.lexists(path):
                    folder.tracker.forget(path)
                return
            self._observe(folder, path, st)
        except OSError as exc:
            log.debug("cannot look at %r: %s", str(path), exc)

    def _observe(self, folder: _Folder, path: Path, st: os.stat_result) -> None:
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

    def _settle_due(self, folder: _Folder) -> None:
        config = self._config
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

    def _mark_ready(self, folder: _Folder, path: Path, key: FileKey) -> None:
        """A settled file becomes a ready row, for whichever instance claims it first."""
        config = self._config
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

    def _hand_over(self, folder: _Folder, path: Path, key: FileKey, claim: LedgerClaim) -> None:
        # taken_from: an earlier holder may have written the result before it died; the
        # pipeline checks for it instead of doing the work again.
        job = Job(folder=folder.cfg, path=path, key=key, claim=claim, taken_from=claim.taken_from)
        try:
            accepted = bool(self._on_ready(job))
        except Exception:
            log.exception("the pipeline refused %r with an error", key.relpath)
            accepted = False
        if not accepted:
            claim.release()  # comes back through _note_ended and is offered again later

    def _note_ended(self, claim: LedgerClaim) -> None:
        """A claim this process held ended (any thread): the ingest thread looks at it next."""
        with self._inbox_lock:
            self._ended.append(claim)
        self._wake.set()

    def _ended_claim(self, claim: LedgerClaim) -> None:
        """Done: the scanner's record says so. Released: the ledger offers it again once its
        ``retry_after`` (the pipeline's pause for a failing output or quarantine folder, see
        bshmd.pipeline.retry) has passed; this instance looks then. Not finished (a copy still
        being written, see bshmd.pipeline.grace): the scanner settles it again as well, so a
        new version is marked ready as soon as it is quiet. Lost: another has it."""
        for folder in self._folders.values():
            if folder.store is not claim.folder:
                continue
            outcome = claim.outcome
            path = folder.root / claim.key.relpath
            if outcome is not None and outcome.done:
                if folder.scanner and folder.tracker.state_of(path) is not None:
                    folder.tracker.finish(path, claim.key, settle_states.DONE)
            elif outcome is not None:
                due = time.monotonic() + (outcome.retry_after or 0.0)
                folder.ledger_due = min(folder.ledger_due or due, due)
                if outcome.reason == NOT_FINISHED and folder.scanner:
                    folder.tracker.reopen(path, claim.key)
                    folder.tracker.retry_later(path, outcome.retry_after or self._config.settle_seconds)

    def _emit(self, name: str, fields: dict) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(name, fields)
        except Exception:
            log.exception("event callback failed for %s", name)
