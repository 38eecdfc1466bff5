"""Keeping this instance's leases alive, and the ledger's counts fresh for /status.

The ``bshmd-claim-renewer`` thread renews every claim and scanner lease a third of a lease
before it runs out, so a long wait for room in the pipeline never loses them, and refreshes
the ledger's counts and the share markers' heartbeat. Its deadlines are on the ingestor's
``clock``; whether a lease has run out is judged by the database's clock.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from bshmd.ingest.folders import Clock, Folders
from bshmd.ingest.scanner import Scanner
from bshmd.ledger.claims import Claims

log = logging.getLogger("bshmd.ingest")

LEDGER_STATS_SECONDS = 5.0  # how often /status and the metrics' ledger counts are refreshed


class Renewer:
    def __init__(self, folders: Folders, claims: Claims, scanner: Scanner, *,
                 clock: Clock = time.monotonic) -> None:
        self.folders = folders
        self.claims = claims
        self.ledger = claims.ledger
        self.scanner = scanner
        self._clock = clock
        self._next_renew = 0.0
        self._next_stats = 0.0
        self._status: dict[str, Any] | None = None

    def run(self, stopping: threading.Event) -> None:
        """The thread: renew and refresh whenever due, until ``stopping`` is set."""
        self._next_renew = self._next_stats = 0.0
        while True:
            wait = self.tick()
            if stopping.wait(max(0.05, wait)):
                return

    def tick(self) -> float:
        """Whatever is due now; returns how long until the next thing is."""
        now = self._clock()
        if now >= self._next_renew:
            self._next_renew = now + max(0.2, self.folders.config.ledger.lease_seconds / 3)
            try:
                self.claims.renew()
            except Exception:
                log.exception("renewing claims in %s failed; continuing", self.ledger.describe())
            for folder in list(self.folders):
                self.scanner.renew_lease(folder)
        if now >= self._next_stats:
            self._next_stats = now + LEDGER_STATS_SECONDS
            self.refresh_status()
            for folder in list(self.folders):
                folder.store.heartbeat()  # the share marker says this ledger is alive
        return min(self._next_renew, self._next_stats) - self._clock()

    def refresh_status(self) -> None:
        names = {f.store._folder_id: str(f.root) for f in list(self.folders) if f.store._folder_id}
        status: dict[str, Any] = {"backend": self.ledger.dialect, "database": self.ledger.describe(),
                                  "id": self.ledger.ledger_id, "held": len(self.claims.held())}
        try:
            counts = self.ledger.counts()
            status["reachable"] = True
            status["jobs"] = {names.get(folder, folder): c for folder, c in counts.items() if folder in names}
        except Exception as exc:  # LedgerUnavailable, or anything the driver raises
            status["reachable"] = False
            status["error"] = str(exc)
            status["jobs"] = (self._status or {}).get("jobs", {})
        self._status = status

    def status(self) -> dict[str, Any]:
        """The ledger as last seen by the renewer thread (never waits for the database)."""
        return dict(self._status or {"backend": self.ledger.dialect, "database": self.ledger.describe(),
                                     "id": self.ledger.ledger_id, "held": len(self.claims.held()),
                                     "reachable": True, "jobs": {}})
