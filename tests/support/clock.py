"""A clock that moves only when a test moves it: for the parts that take a ``clock``
(bshmd.ingest's folders, scanner, claimer and renewer), so no test sleeps through a lease or a
settle window. Leases in the ledger are judged by the database's clock: tests.support.ledger.py."""

from __future__ import annotations

import threading


class DrivenClock:
    """Monotonic seconds, starting well above zero (as ``time.monotonic`` does on a running host)."""

    def __init__(self, start: float = 10_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        """The same reading, for a module that calls ``time.monotonic()`` (monkeypatch its ``time``)."""
        return self()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
