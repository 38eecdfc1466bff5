"""The pipeline's records: a ``Job`` as it is handed in, and the ``Work`` the stages make of it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from bshmd.config import Config, FolderConfig
from bshmd.errors import InputRejected, NotFinished
from bshmd.ledger.keys import Claim, FileKey


@dataclass
class Job:
    """One settled, claimed input file on its way through the pipeline.

    How it ended is not kept here: the pipeline hands that ``Outcome`` to the claim and to its
    ``on_done`` listener, the same object to both (bshmd.pipeline.bookkeeping).
    """

    folder: FolderConfig
    path: Path  # absolute path of the input file
    key: FileKey
    claim: Claim | None = None
    settled_at: float = field(default_factory=time.monotonic)  # on the pipeline's clock
    accept_once: bool = False  # requeued with --accept: skip the quality gate this time
    timings: dict[str, float] = field(default_factory=dict)
    # An earlier holder that died may have written the results already: the pipeline looks
    # for them (stamped with this input's mtime) before doing the work again.
    taken_from: str | None = None
    moved_to: Path | None = None  # on_success: move
    quarantined_to: Path | None = None

    @property
    def relpath(self) -> PurePosixPath:
        return PurePosixPath(self.key.relpath)


@dataclass
class Work:
    """One job and what the stages have made of it so far."""

    job: Job
    config: Config  # the configuration in force when its decoding started
    folder: FolderConfig
    accepted: bool = False  # requeued with --accept: no quality gate
    rgb: Any = None  # what the network sees: the photo in sRGB
    prepared: Any = None  # engine.prepare(rgb), until ``alpha`` is brought to the photo's size
    photo: Any = None  # the Decoded input: its own pixels, 16-bit pixels and metadata
    notes: list[str] = field(default_factory=list)  # metadata blocks dropped, for the log line
    alpha: Any = None
    rejection: InputRejected | None = None  # it goes to quarantine for this
    unfinished: NotFinished | None = None  # still being written: given back, never quarantined
    batch_size: int = 0
    outputs: dict[str, Path] = field(default_factory=dict)
    cancelled: bool = False  # the job was finished elsewhere (timeout, abort): do not touch it
    recovered: bool = False  # an earlier holder wrote the results before it died: only finish up

