"""The folder pairs being ingested, and whether each one is there right now.

Each folder pair is handled on its own: one that disappears (NAS unmounted, folder renamed)
is reported once and retried, the others carry on. Only the instance that scans a folder
(bshmd.ingest.scanner) watches it; every instance checks that its input can be read and that
its output share is mounted and tracked by this ledger before claiming its files.
"""

from __future__ import annotations

import logging
import os
import stat as stat_module
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bshmd.config import Config, FolderConfig
from bshmd.errors import ShareOwnedElsewhere
from bshmd.fs.mounts import watch_mode_for
from bshmd.fs.output import OutputMount
from bshmd.ingest.attrcache import settle_window
from bshmd.ingest.filters import PathFilter, excluded_dirs_for
from bshmd.ingest.settle import SettleTracker
from bshmd.ingest.watch import start_observer, stop_observer
from bshmd.ledger.claims import Claims, FolderClaims

log = logging.getLogger("bshmd.ingest")

Clock = Callable[[], float]
Emit = Callable[[str, dict], None]
Nominate = Callable[["Folder", Path, bool], None]


@dataclass(eq=False)
class Folder:
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
    rescan_due: float = 0.0  # on the ingestor's clock
    state_warned: bool = False
    refused: str = ""  # the share is tracked by another ledger: nothing is claimed here
    scanner: bool = False  # this instance holds the folder's scanner lease
    ledger_due: float = 0.0  # on the ingestor's clock: when to look for ready rows next


def stop_watching(folder: Folder) -> None:
    observer, folder.observer = folder.observer, None
    if observer is not None:
        stop_observer(observer)


class Folders:
    """The configured folder pairs (``current``) and the configuration they come from.

    ``current`` is only ever replaced, never changed in place, so a reader on another thread
    (health, record_counts) takes one consistent set without a lock.
    """

    def __init__(self, config: Config, claims: Claims, *, emit: Emit, nominate: Nominate,
                 clock: Clock = time.monotonic) -> None:
        self.config = config
        self.claims = claims
        self.current: dict[str, Folder] = {}
        self.next_check = 0.0  # on ``clock``: when availability is checked next
        self._emit = emit
        self._nominate = nominate
        self._clock = clock
        self._stores: dict[Path, FolderClaims] = {}
        self.build(config)

    def __iter__(self):  # noqa: ANN204 - an iterator of Folder
        return iter(self.current.values())

    def build(self, config: Config, previous_config: Config | None = None) -> None:
        """Take ``config``'s folders: unchanged pairs keep their state, others start afresh."""
        previous = self.current
        self.config = config
        excluded = excluded_dirs_for(config.folders)
        poll_changed = previous_config is not None and previous_config.poll_seconds != config.poll_seconds
        folders: dict[str, Folder] = {}
        now = self._clock()
        for index, cfg in enumerate(config.folders):
            key = str(cfg.input)
            path_filter = PathFilter(cfg.input, config.extensions, excluded, cfg.ignore, config.raw_pairs_for(cfg))
            old = previous.get(key)
            if old is not None and old.cfg == cfg:
                old.index, old.path_filter = index, path_filter
                old.tracker.settle_seconds = settle_window(cfg, config.settle_seconds).seconds
                old.rescan_due = min(old.rescan_due, now + config.rescan_seconds)
                if poll_changed and old.mode == "poll":
                    stop_watching(old)
                    old.available = None  # restarts the observer at the next check
                folders[key] = old
                continue
            if old is not None:
                stop_watching(old)
            folders[key] = Folder(
                cfg=cfg,
                index=index,
                root=cfg.input,
                path_filter=path_filter,
                store=self._store_for(cfg),
                tracker=SettleTracker(settle_window(cfg, config.settle_seconds).seconds, clock=self._clock,
                                      root=cfg.input),
            )
        for key, old in previous.items():
            if key not in folders:
                stop_watching(old)
                log.info("no longer watching %s", old.root)
        self.claims.lease_seconds = config.ledger.lease_seconds
        self.current = folders
        self.next_check = 0.0

    def _store_for(self, cfg: FolderConfig) -> FolderClaims:
        store = self._stores.get(cfg.output)
        if store is None or store.root != cfg.input:
            store = FolderClaims(self.claims, cfg.input, cfg.output, mounted=OutputMount(cfg.output))
            self._stores[cfg.output] = store
        return store

    def check_output(self, folder: Folder) -> None:
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

    def check_input(self, folder: Folder) -> None:
        """Is the input folder there and readable? Its scanner (re)starts watching it when it
        appears, comes back or was replaced; other instances only need to read its files."""
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
                            folder.root, reason, self.config.poll_seconds)
                self._emit("folder_unavailable", {"folder": str(folder.root), "reason": reason})
            folder.available = False
            stop_watching(folder)
            return
        came_back = folder.available is False
        if not folder.scanner:
            # Another instance watches it; this one only needs to read its files.
            stop_watching(folder)
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
        stop_watching(folder)
        folder.available, folder.identity = True, identity
        self._watch(folder)
        folder.rescan_due = 0.0

    def _watch(self, folder: Folder) -> None:
        config = self.config
        folder.mode = watch_mode_for(folder.root, folder.cfg.watch)
        # Attribute caches (bshmd.ingest.attrcache): the mount may have changed with the folder.
        window = settle_window(folder.cfg, config.settle_seconds)
        folder.tracker.settle_seconds = window.seconds
        log.info("watching %s (%s): %s", folder.root, folder.mode, window.describe())
        name = f"bshmd-watch-{folder.index}"

        def nominate(path: Path, is_dir: bool) -> None:
            self._nominate(folder, path, is_dir)

        try:
            folder.observer = start_observer(folder.root, folder.mode, config.poll_seconds, nominate, name)
        except OSError as exc:
            # Typically the inotify watch limit: polling still works.
            log.warning("cannot watch %s with %s (%s); polling instead", folder.root, folder.mode, exc)
            folder.mode = "poll"
            try:
                folder.observer = start_observer(folder.root, "poll", config.poll_seconds, nominate, name)
            except OSError as exc2:
                log.warning("cannot watch %s (%s); relying on rescans", folder.root, exc2)

    def health(self) -> dict[str, Any]:
        """Each folder as /status shows it, and the files settling (read without a lock: see
        the class)."""
        current = list(self.current.values())
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
        return {"folders": folders, "pending": sum(len(f.tracker) for f in current)}

    def record_counts(self) -> dict[str, int]:
        """Files settling, finished files remembered, and the done caches' entries."""
        current = list(self.current.values())
        stores = {id(f.store): f.store for f in current}.values()
        return {
            "settling": sum(len(f.tracker) for f in current),
            "finished": sum(f.tracker.finished_count() for f in current),
            "done_cached": sum(s.done_cached_count() for s in stores),
        }
