"""Taking an action back: the entry goes into quarantine again, with its reason.

Undo puts the input back through ``quarantine_input``, the one way anything enters quarantine,
with the entry's reason, message and measured values; the new record's history names the
undo. What each action left behind:

- **reject**: the input and its matte are in the rejected folder: they come back, and the
  rejected folder's record of them is removed.
- **requeue**: the input is back in its hot folder, where a running daemon may pick it up
  again. Undo first claims it in the job ledger (the claim every instance obeys); if another
  instance holds it already, the undo is refused and the file is left to be processed.
  Requeue deletes the matte, so whoever offers undo keeps a copy before acting (``Done.matte``).
- **accept**: the results accept wrote are removed and the input (back in the hot folder with
  a done record, or in the done folder) returns; with ``on_success: delete`` there is nothing
  left to bring back, and the undo is refused.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from bshmd.errors import InputRejected
from bshmd.quarantine.record import MATTE_SUFFIX, SIDECAR_SUFFIXES, QuarantineRecord
from bshmd.quarantine.store import quarantine_input

if TYPE_CHECKING:
    import numpy as np

    from bshmd.config import Config, FolderConfig

log = logging.getLogger("bshmd.quarantine")


class UndoRefused(Exception):
    """The action cannot be taken back; the message says why, in words for a person."""


@dataclass
class Done:
    """One action taken on an entry, with what is needed to take it back."""

    action: str  # "accept", "requeue" or "reject"
    folder: FolderConfig
    relpath: PurePosixPath  # where the input was in its hot folder
    record: QuarantineRecord  # the entry's record before the action
    place: Path | None = None  # where the input is now
    outputs: list[Path] = field(default_factory=list)  # what accept wrote
    matte: Path | None = None  # requeue and accept delete the matte: a copy kept for undo


def undo(config: Config, done: Done, *, by: str) -> Path:
    """Put the entry back into quarantine; returns where it is. UndoRefused when it cannot."""
    if done.place is None or not done.place.exists():
        raise UndoRefused(f"{done.relpath.name}: the photo is no longer where {done.action} put it")
    try:
        if done.action == "requeue":
            return _undo_requeue(config, done, by=by)
        if done.action == "accept":
            restored = _requarantine(done, _read_matte(done.matte), by=by)
            for output in done.outputs:
                with contextlib.suppress(FileNotFoundError):
                    output.unlink()
            return restored
        # reject: the matte, preview and record lie beside the rejected input.
        place = done.place
        sidecars = [place.with_name(place.name + suffix) for suffix in SIDECAR_SUFFIXES]
        restored = _requarantine(done, _read_matte(place.with_name(place.name + MATTE_SUFFIX)), by=by)
        for sidecar in sidecars:
            with contextlib.suppress(FileNotFoundError):
                sidecar.unlink()
        return restored
    except UndoRefused:
        raise
    except (InputRejected, OSError, ValueError) as exc:
        raise UndoRefused(str(exc)) from exc


def _undo_requeue(config: Config, done: Done, *, by: str) -> Path:
    """Take the requeued photo back, unless an instance has claimed it meanwhile: a claim in
    the job ledger, held while the photo moves, so no instance can start on it halfway."""
    from bshmd.ledger import open_ledger
    from bshmd.ledger.keys import FileKey
    from bshmd.ledger.share import ensure_marker
    from bshmd.ledger.store import Taken

    assert done.place is not None
    folder = done.folder
    ledger = open_ledger(config, f"{config.effective_instance_id}-review")
    try:
        folder_id = ensure_marker(ledger, folder.input, folder.output).folder
        key = FileKey.of(folder.input, done.place)
        (claim,) = ledger.claim(folder_id, [key], config.ledger.lease_seconds)
        if not isinstance(claim, Taken):
            raise UndoRefused(f"{done.relpath.name}: already being processed again; it cannot be taken back")
        try:
            return _requarantine(done, _read_matte(done.matte), by=by)
        finally:
            ledger.drop(folder_id, key, claim.epoch)  # the photo has left the folder
    finally:
        ledger.close()


def _requarantine(done: Done, matte: np.ndarray | None, *, by: str) -> Path:
    assert done.place is not None
    record = done.record
    rejection = InputRejected(record.reason, record.message, record.measured)
    restored = quarantine_input(done.folder, done.place, done.relpath, rejection, instance_id=by, matte=matte)
    log.info("undid %s of %s: back in quarantine as %s (by %s)", done.action, done.relpath, restored, by)
    return restored


def _read_matte(path: Path | None) -> np.ndarray | None:
    if path is None or not path.is_file():
        return None
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.uint8).copy()
