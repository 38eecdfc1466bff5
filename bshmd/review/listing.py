"""The entries waiting for a decision, as the page lists them, counts them and polls them.

``Waiting.current()`` is what the grid, the counts left and ``/api/state`` read. It is polled
by every open page, so it reads the records again only when something changed: each call
walks the quarantine folders with one stat per ``.reason.json`` (a few milliseconds for a
thousand entries), and only a different walk reads the records, through the quarantine
module's own ``list_entries``, over the same walk (``reason_files``). Every change that matters adds, removes or rewrites a record:
a new entry, an action here or elsewhere (the CLI, another browser, another host).

A shoot is an entry's top-level folder inside its quarantine folder.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bshmd.quarantine.entries import QuarantineEntry, list_entries, reason_files

if TYPE_CHECKING:
    from bshmd.config import FolderConfig

NO_SHOOT = ""  # entries straight in the quarantine folder, not in a shoot folder


@dataclass(frozen=True)
class Listing:
    """The waiting entries at one moment, with the version the page compares to see a change."""

    version: str
    entries: list[QuarantineEntry]  # newest first
    left: list[tuple[int, str, int]]  # (folder index, shoot, entries waiting), by folder then shoot


def shoot_of(entry: QuarantineEntry) -> str:
    parts = entry.path.relative_to(entry.folder.quarantine).parts
    return parts[0] if len(parts) > 1 else NO_SHOOT


class Waiting:
    """The listing of ``folders``' quarantine, kept until a folder changes; thread-safe."""

    def __init__(self, folders: Sequence[FolderConfig]) -> None:
        self.folders = list(folders)
        self.reads = 0  # how many times the records were read (the rest came from memory)
        self._index = {f.quarantine: i for i, f in enumerate(self.folders)}
        self._lock = threading.Lock()
        self._listing: Listing | None = None

    def current(self) -> Listing:
        version = self._signature()
        with self._lock:
            if self._listing is not None and self._listing.version == version:
                return self._listing
        entries = list_entries(self.folders)
        counts = Counter((self.index_of(e), shoot_of(e)) for e in entries)
        listing = Listing(version, entries, sorted((i, shoot, n) for (i, shoot), n in counts.items()))
        with self._lock:
            self.reads += 1
            self._listing = listing
        return listing

    def index_of(self, entry: QuarantineEntry) -> int:
        return self._index[entry.folder.quarantine]

    def matching(self, entries: list[QuarantineEntry], folder: int | None, shoot: str | None,
                 reason: str | None) -> list[QuarantineEntry]:
        """The entries of one folder, shoot and reason (None: any)."""
        return [e for e in entries
                if (folder is None or self.index_of(e) == folder)
                and (shoot is None or shoot_of(e) == shoot)
                and (reason is None or e.reason == reason)]

    def _signature(self) -> str:
        # Names, sizes and mtimes of the records. Rewrites change the mtime (within one
        # timestamp tick, only a change of size would show: but the actions and new
        # entries add or remove a record's name, which always shows).
        digest = hashlib.sha256()
        for folder in self.folders:
            digest.update(os.fsencode(folder.quarantine) + b"\0")
            for path, info in reason_files(folder.quarantine):
                digest.update(os.fsencode(path) + f"\0{info.st_size}:{info.st_mtime_ns}\0".encode())
        return digest.hexdigest()[:16]
