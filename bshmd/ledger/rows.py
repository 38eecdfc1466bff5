"""The ledger's rows as Python sees them: how paths are stored, and what a claim returns."""

from __future__ import annotations

import os
from dataclasses import dataclass

from bshmd.ledger.keys import FileKey

CLAIMED = "claimed"
DONE = "done"
BATCH = 200  # rows per statement in batch operations (SQLite allows 32766 parameters)


def encode(relpath: str) -> bytes:
    """Relative paths are stored as bytes: names that are not UTF-8 survive unchanged."""
    return os.fsencode(relpath)


def decode(raw: bytes) -> str:
    return os.fsdecode(bytes(raw))


@dataclass(frozen=True)
class Taken:
    """A claim won: the fencing ``epoch``, and whose claim it replaced (None: nobody's, or a release)."""

    key: FileKey
    epoch: int
    taken_from: str | None
    reason: str  # new | released | lease expired | earlier run of this instance | stale key | held


@dataclass(frozen=True)
class Verdict:
    """Why a file was not taken: ``done``, ``held`` (live lease elsewhere), ``waiting`` (released,
    retry not yet due; ``due_in`` seconds) or ``busy`` (row locked by a concurrent claimer)."""

    key: FileKey
    why: str
    due_in: float = 0.0


@dataclass(frozen=True)
class JobRow:
    folder: str
    relpath: str
    size: int
    mtime_ns: int
    state: str
    epoch: int
    holder: str | None
    host: str | None
    lease_expires: float | None
    outcome: str | None
    reason: str | None
    retry_after: float | None
    attempts: int
    updated_at: float
    completed_at: float | None


JOB_COLUMNS = ("folder, relpath, size, mtime_ns, state, epoch, holder, host, lease_expires, outcome, "
                "reason, retry_after, attempts, updated_at, completed_at")


def job_row(row: tuple) -> JobRow:
    values = list(row)
    values[1] = decode(values[1])
    return JobRow(*values)
