"""The records that flow between bshmd's stages: watch → settle/claim → batch → engine → write."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bshmd.config import FolderConfig
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
    """A lease on one input, held while it is in flight (see bshmd.ledger)."""

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


@dataclass
class Job:
    """One settled, claimed input file on its way through the pipeline."""

    folder: FolderConfig
    path: Path  # absolute path of the input file
    key: FileKey
    claim: Claim | None = None
    settled_at: float = field(default_factory=time.monotonic)
    accept_once: bool = False  # requeued with --accept: skip the quality gate this time
    timings: dict[str, float] = field(default_factory=dict)
    # An earlier holder that died may have written the results already: the pipeline looks
    # for them (stamped with this input's mtime) before doing the work again.
    taken_from: str | None = None
    matte: dict[str, Any] | None = None  # the quality gate's measurements of the matte
    moved_to: Path | None = None  # on_success: move
    quarantined_to: Path | None = None
    outcome: Outcome | None = None  # how it ended, as recorded in the ledger (retry_after included)

    @property
    def relpath(self) -> PurePosixPath:
        return PurePosixPath(self.key.relpath)
