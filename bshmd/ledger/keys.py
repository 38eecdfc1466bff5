"""File identity as the ledger keeps it: what makes two sightings the same input, and the
lease on one input that travels with it while it is in flight."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from bshmd.ledger.outcome import Outcome


@dataclass(frozen=True)
class FileKey:
    """What makes a file 'the same file' for exactly-once processing.

    A file re-exported under the same name with new content gets a new size or mtime,
    hence a new key, and is processed again.
    """

    relpath: str  # POSIX path relative to the input root; undecodable bytes kept via surrogateescape
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, root: Path, path: Path, stat: os.stat_result | None = None) -> FileKey:
        stat = stat or path.stat()
        rel = PurePosixPath(os.fsdecode(os.path.relpath(path, root)))
        return cls(str(rel), stat.st_size, stat.st_mtime_ns)


class Claim(Protocol):
    """A lease on one input, held while it is in flight (``LedgerClaim`` in bshmd.ledger.claims)."""

    taken_from: str | None  # whose claim this replaced (an earlier holder that died), if any

    def complete(self, outcome: Outcome) -> None:
        """Record the input as finished (processed, recovered, quarantined); it is not claimed again."""

    def release(self, outcome: Outcome | None = None) -> None:
        """Give the input back unprocessed (shutdown, a failing output folder); ``outcome.retry_after``
        says how long nobody should take it again."""

    def verify(self) -> None:
        """Raise ClaimLost unless the claim is still this holder's (checked right before writing results)."""

    def fence(self) -> None:
        """Raise ClaimLost when this process stalled (frozen, swapped out) for so long since
        ``verify`` that another instance may have taken the file: called before each rename."""
