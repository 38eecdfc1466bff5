"""When a file is completely copied: its size and mtime stay the same for ``settle_seconds``.

Close-write events are no proof (SMB and NFS clients write from other hosts, copy tools
reopen files, FTP servers append), so the tracker trusts only its own observations, timed
with ``time.monotonic``: a file is settled when a fresh stat, taken at least
``settle_seconds`` after the first observation of its current size and mtime, still shows
them unchanged, and the file opens for reading (a Windows client writing over SMB holds a
share lock that makes the open fail). On filesystems that cache attributes, the settle time
is longer and the last look is at fresh attributes: see bshmd.ingest.attrcache.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bshmd.ledger.keys import FileKey

SETTLING = "settling"  # being observed until it stops changing
WAITING = "waiting"  # settled, but could not be claimed or handed over yet; retried later
DONE = "done"  # a done record exists for this key: nothing to do unless the file changes
QUEUED = "queued"  # settled and in the ledger (ready, or in flight on some instance)
# A file claimed and handed to the pipeline has no record here at all: the job ledger holds it.


@dataclass
class Entry:
    key: FileKey
    stable_since: float
    next_check: float
    state: str = SETTLING


class SettleTracker:
    """Per-folder bookkeeping of files seen, keyed by absolute path.

    Files settling or waiting are kept apart from files that are finished (done) so that the periodic work only walks the few files in flight, whatever the
    number of finished ones.

    A finished file that stays in the input folder (``on_success: keep``) keeps a record so
    that rescans do not read its claim again; that record is only its path string, size,
    mtime and state (no ``Path`` or ``FileKey`` objects), because there is one per file in
    the folder for as long as the daemon runs. Records of files that left the folder are
    dropped when a watcher reports it or at the next full rescan.
    """

    def __init__(self, settle_seconds: float, clock: Callable[[], float] = time.monotonic,
                 root: Path | None = None) -> None:
        self.root = root  # the input folder: relpaths of finished files are taken against it
        self.settle_seconds = settle_seconds
        self.clock = clock
        self._active: dict[Path, Entry] = {}
        self._finished: dict[str, tuple[int, int, str]] = {}  # path -> (size, mtime_ns, state)

    def __len__(self) -> int:
        return len(self._active)

    def finished_count(self) -> int:
        return len(self._finished)

    def state_of(self, path: Path) -> str | None:
        if path in self._active:
            return self._active[path].state
        finished = self._finished.get(os.fspath(path))
        return finished[2] if finished else None

    def finished_with(self, state: str) -> list[tuple[Path, FileKey]]:
        """(path, key) of every finished file in ``state`` (keys relative to ``root``)."""
        return [(Path(name), FileKey(self._relpath(name), size, mtime_ns))
                for name, (size, mtime_ns, done) in self._finished.items() if done == state]

    def _relpath(self, name: str) -> str:
        assert self.root is not None, "finished_with needs the tracker's root"
        return os.path.relpath(name, self.root)

    def observe(self, path: Path, key: FileKey) -> bool:
        """Record a sighting. True when this is news (a new file or a changed one)."""
        name = os.fspath(path)
        finished = self._finished.get(name)
        if finished is not None:
            if finished[:2] == (key.size, key.mtime_ns):
                return False
            del self._finished[name]
        entry = self._active.get(path)
        if entry is not None and entry.key == key:
            return False
        now = self.clock()
        self._active[path] = Entry(key, stable_since=now, next_check=now + self.settle_seconds)
        return True

    def due(self) -> list[tuple[Path, Entry]]:
        """Files in flight whose next check is due now."""
        now = self.clock()
        return [(path, entry) for path, entry in self._active.items() if entry.next_check <= now]

    def check(self, path: Path, key: FileKey) -> bool:
        """Compare a fresh stat with the record: True when unchanged for the settle time."""
        entry = self._active.get(path)
        if entry is None:
            self.observe(path, key)
            return False
        now = self.clock()
        if entry.key != key:
            entry.key, entry.stable_since, entry.state = key, now, SETTLING
            entry.next_check = now + self.settle_seconds
            return False
        if now - entry.stable_since >= self.settle_seconds:
            return True
        entry.next_check = entry.stable_since + self.settle_seconds
        return False

    def retry_later(self, path: Path, delay: float) -> None:
        """Settled but not taken (locked, claimed elsewhere, refused): look again after ``delay``."""
        entry = self._active.get(path)
        if entry is not None:
            entry.state = WAITING
            entry.next_check = self.clock() + delay

    def finish(self, path: Path, key: FileKey, state: str) -> None:
        self._active.pop(path, None)
        self._finished[os.fspath(path)] = (key.size, key.mtime_ns, state)

    def reopen(self, path: Path, key: FileKey) -> None:
        """A handed-over file came back unprocessed (its claim was released): offer it again."""
        self._finished.pop(os.fspath(path), None)
        now = self.clock()
        self._active[path] = Entry(key, stable_since=now - self.settle_seconds, next_check=now)

    def forget(self, path: Path) -> None:
        self._active.pop(path, None)
        self._finished.pop(os.fspath(path), None)

    def forget_under(self, folder: Path) -> None:
        """Drop every path below ``folder`` (it was removed or renamed away)."""
        prefix = os.fspath(folder).rstrip("/") + "/"
        for path in [p for p in self._active if os.fspath(p).startswith(prefix)]:
            del self._active[path]
        for name in [n for n in self._finished if n.startswith(prefix)]:
            del self._finished[name]

    def forget_missing(self, seen: set[str]) -> None:
        """Drop every path whose name is not in ``seen`` (after a full rescan)."""
        for path in [p for p in self._active if os.fspath(p) not in seen]:
            del self._active[path]
        for name in [n for n in self._finished if n not in seen]:
            del self._finished[name]

    def next_deadline(self) -> float | None:
        return min((entry.next_check for entry in self._active.values()), default=None)

    def clear(self) -> None:
        self._active.clear()
        self._finished.clear()

