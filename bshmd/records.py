"""The records that flow between bshmd's stages: watch → settle/claim → batch → engine → write."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bshmd.config import FolderConfig


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
    """A lease on one input, held while it is in flight (see bshmd.ingest.claims)."""

    def complete(self, outcome: str) -> None:
        """Mark the input as finished ('processed' or 'quarantined'); it will not be claimed again."""

    def release(self) -> None:
        """Give the input back unprocessed (shutdown); another instance or a restart takes it."""

    def verify(self) -> None:
        """Raise ClaimLost unless the claim is still this holder's (checked right before writing results)."""


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
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def relpath(self) -> PurePosixPath:
        return PurePosixPath(self.key.relpath)
