"""The hot-folder front end: watch, rescan, settle, claim, hand over.

One ``bshmd-ingest`` thread does all the deciding (so the bookkeeping needs no locks of its
own); observers only nominate paths to it, and a ``bshmd-claim-renewer`` thread keeps this
instance's leases alive. Which files are in flight is the job ledger's to say
(``bshmd.ledger``): the ingestor keeps no list of its own of the files it handed over.

The jobs are in modules of their own, wired here: the folder pairs and whether each is there
(``folders``), the scanner role that watches and settles one folder per lease (``scanner``),
the claiming of ready files in batches (``claimer``) and the renewing of leases
(``renewer``). Each reads the time from the ``clock`` given here (``time.monotonic`` unless a
test drives one); leases in the ledger are judged by the database's clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bshmd.config import Config
from bshmd.ingest.claimer import Claimer, OnReady
from bshmd.ingest.folders import Clock, Folder, Folders, stop_watching
from bshmd.ingest.renewer import Renewer
from bshmd.ingest.scanner import Scanner
from bshmd.ingest.sweep import sweep_folders
from bshmd.ingest.watch import OverflowListener
from bshmd.ledger.claims import Claims
from bshmd.ledger.store import Ledger

log = logging.getLogger("bshmd.ingest")

OnEvent = Callable[[str, dict], None]


class Ingestor:
    def __init__(self, config: Config, on_ready: OnReady, *, instance_id: str, on_event: OnEvent | None = None,
                 ledger: Ledger | None = None, clock: Clock = time.monotonic) -> None:
        self._on_event = on_event
        self.instance_id = instance_id
        self._clock = clock
        # Held by the ingest thread for a whole pass (and by stop()). A pass may wait in
        # on_ready for room in the pipeline for as long as a backlog takes, so nothing that
        # another thread calls (reconfigure, request_rescan, health) takes it: they leave
        # their request in the inbox below and the ingest thread picks it up.
        self._lock = threading.RLock()
        if ledger is None:
            from bshmd.ledger import open_ledger

            ledger = open_ledger(config, instance_id)
        self.ledger = ledger
        self.claims = Claims(ledger, config.ledger.lease_seconds)
        self._nominated: dict[Path, tuple[Folder, bool]] = {}
        self._pending_config: Config | None = None
        self._rescan_requested = False
        self._inbox_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._overflow = OverflowListener(self.request_rescan)
        self.folders = Folders(config, self.claims, emit=self._emit, nominate=self._nominate, clock=clock)
        reconfigure_waiting = lambda: self._pending_config is not None  # noqa: E731 - named for both parts
        self.scanner = Scanner(self.folders, ledger, emit=self._emit, wake=self._wake, stopping=self._stopping,
                               reconfigure_waiting=reconfigure_waiting, clock=clock)
        self.claimer = Claimer(self.folders, self.scanner, on_ready, wake=self._wake, clock=clock,
                               should_pause=lambda: self._stopping.is_set() or reconfigure_waiting())
        self.claims.on_finished = self.claimer._note_ended
        self.renewer = Renewer(self.folders, self.claims, self.scanner, clock=clock)

    @property
    def _config(self) -> Config:
        return self.folders.config

    def start(self) -> None:
        if self._threads:
            return
        self._stopping.clear()
        self._overflow.install()
        self._threads = [
            threading.Thread(target=self._run, name="bshmd-ingest", daemon=True),
            threading.Thread(target=self.renewer.run, args=(self._stopping,), name="bshmd-claim-renewer", daemon=True),
            threading.Thread(target=sweep_folders, args=(self._config, self._stopping, self._emit),
                             name="bshmd-sweep", daemon=True),
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
            for folder in self.folders:
                stop_watching(folder)
                self.scanner.drop_lease(folder)

    def close(self) -> None:
        """Stop, and close the ledger connection."""
        self.stop()
        self.ledger.close()

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
        if config is not None:
            self.folders.build(config, previous_config=self._config)

    def health(self) -> dict:
        # No lock: the ingest thread holds it for a whole pass, and a pass may wait for room
        # in the pipeline for as long as a backlog takes to drain. /status, STATUS= and the
        # main loop (hence the watchdog) must not wait with it.
        return {**self.folders.health(), "last_rescan": self.scanner.last_rescan}

    def record_counts(self) -> dict[str, int]:
        """How many per-file records the ingestor holds, summed over folders (for /status and
        leak checks): files settling, finished files remembered, claims held in the ledger
        (the files in the pipeline: ``handed`` and ``held_claims`` are one number, kept under
        both names) and the done cache. Read without the lock, like health()."""
        held = len(self.claims.held())
        counts = self.folders.record_counts()
        return {"settling": counts["settling"], "finished": counts["finished"], "handed": held,
                "held_claims": held, "done_cached": counts["done_cached"]}

    def ledger_status(self) -> dict[str, Any]:
        """The ledger as last seen by the renewer thread (never waits for the database)."""
        return self.renewer.status()

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

    def _tick(self) -> float:
        """One pass over everything that is due; returns how long to sleep (on the clock)."""
        folders = self.folders
        now = self._clock()
        if now >= folders.next_check:
            for folder in folders:
                self.scanner.check_available(folder)
            folders.next_check = now + min(self._config.poll_seconds, 5.0)
        with self._inbox_lock:
            nominated, self._nominated = self._nominated, {}
            rescan_all, self._rescan_requested = self._rescan_requested, False
        if rescan_all:
            for folder in folders:
                folder.rescan_due = 0.0
        self.claimer.take_ended()
        self.scanner.run_due(nominated)
        self.claimer.run_due()
        deadlines = [folders.next_check, *(f.ledger_due for f in folders), *self.scanner.deadlines()]
        return min(deadlines) - self._clock()

    def _nominate(self, folder: Folder, path: Path, is_dir: bool) -> None:
        with self._inbox_lock:
            self._nominated[path] = (folder, is_dir or self._nominated.get(path, (folder, False))[1])
        self._wake.set()

    def _emit(self, name: str, fields: dict) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(name, fields)
        except Exception:
            log.exception("event callback failed for %s", name)
