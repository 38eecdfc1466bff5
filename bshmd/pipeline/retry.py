"""Per-file retry backoff for inputs given back because of their surroundings, not their content.

When the quarantine folder cannot be written (a symlinked subfolder, a share that is
unmounted, read-only or full) or results cannot be written (output unavailable, disk full),
the input stays where it is and its claim is released. Offered again at once it would be
decoded, maybe inferred, and fail again, once a second for as long as the condition lasts.
So each such file waits before its next attempt: ``base_seconds`` after the first failure,
doubling per consecutive failure, at most ``max_seconds``.

Streaks are keyed by (input folder, FileKey): a success (results written or quarantined)
ends a file's streak, and a file that changes gets a new key, hence a fresh start. The
ledger keeps the delay: the pipeline releases the claim with ``Outcome(retry_after=delay)``,
and no instance claims the file again before that long has passed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bshmd.ledger.keys import FileKey

# Release reasons that say nothing about the file: retrying soon would fail the same way.
# ("claim_lost": another instance owns the file; "shutdown": it is retried by the next run.)
BACK_OFF_REASONS = ("quarantine_failed", "output_unavailable", "disk_full", "internal_error")

DEFAULT_BASE_SECONDS = 5.0
DEFAULT_MAX_SECONDS = 300.0
# A summary line per failing folder at most this often, while files wait on it.
SUMMARY_EVERY_SECONDS = 60.0


@dataclass
class Streak:
    """Consecutive environmental failures of one file."""

    reason: str
    where: str  # the folder that could not be written (quarantine or output root)
    failures: int
    delay: float  # seconds until the next attempt
    retry_at: float  # monotonic

    @property
    def first(self) -> bool:
        return self.failures == 1


class RetryBackoff:
    """Thread-safe bookkeeping of the files waiting out a failure; see the module docstring."""

    def __init__(self, base_seconds: float = DEFAULT_BASE_SECONDS, max_seconds: float = DEFAULT_MAX_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.set_limits(base_seconds, max_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self._streaks: dict[tuple[str, FileKey], Streak] = {}
        self._summarised: dict[str, float] = {}  # where → monotonic time of its last summary

    def set_limits(self, base_seconds: float, max_seconds: float) -> None:
        """New delays apply from the next failure; a maximum below the base means the base."""
        if base_seconds <= 0:
            raise ValueError(f"the first retry delay must be positive, not {base_seconds}")
        self.base_seconds = base_seconds
        self.max_seconds = max(max_seconds, base_seconds)

    def failed(self, folder_input: Path, key: FileKey, reason: str, where: str) -> Streak:
        """Record one more failure of this file; returns its streak (``first`` for a new one)."""
        now = self._clock()
        with self._lock:
            self._prune(now)
            ident = (str(folder_input), key)
            previous = self._streaks.get(ident)
            failures = previous.failures + 1 if previous is not None else 1
            delay = min(self.base_seconds * 2 ** min(failures - 1, 32), self.max_seconds)
            streak = Streak(reason, where, failures, delay, now + delay)
            self._streaks[ident] = streak
            self._summarised.setdefault(where, now)  # the first failure is logged on its own
            return streak

    def succeeded(self, folder_input: Path, key: FileKey) -> None:
        """The file was finished for good: its streak, if any, ends."""
        with self._lock:
            streak = self._streaks.pop((str(folder_input), key), None)
            if streak is not None and not any(s.where == streak.where for s in self._streaks.values()):
                self._summarised.pop(streak.where, None)

    def summary_due(self, where: str) -> int:
        """Files waiting on ``where`` when a summary line is due for it (then not again for a
        minute), else 0."""
        now = self._clock()
        with self._lock:
            if now - self._summarised.get(where, now) < SUMMARY_EVERY_SECONDS:
                return 0
            self._summarised[where] = now
            return sum(1 for s in self._streaks.values() if s.where == where)

    def count(self, reason: str | None = None) -> int:
        """Files in a streak (for ``reason``, or any)."""
        now = self._clock()
        with self._lock:
            self._prune(now)
            return sum(1 for s in self._streaks.values() if reason is None or s.reason == reason)

    def _prune(self, now: float) -> None:
        # A file that did not come back long after its retry time was deleted, moved or
        # changed (new key): forget it. Its streak would otherwise count as waiting for ever.
        grace = max(2 * self.max_seconds, SUMMARY_EVERY_SECONDS)
        stale = [ident for ident, s in self._streaks.items() if now > s.retry_at + grace]
        for ident in stale:
            del self._streaks[ident]
        if stale:
            live = {s.where for s in self._streaks.values()}
            for where in [w for w in self._summarised if w not in live]:
                del self._summarised[where]
