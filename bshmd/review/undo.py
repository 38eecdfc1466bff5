"""Taking back the page's last decisions: ``U`` puts an entry back into quarantine.

An action is done for real at once, through ``bshmd.quarantine.store`` (the files move as
``bshmd quarantine`` would move them). Undo puts the input back through the same module's
``quarantine_input``, the one way anything enters quarantine, with the entry's reason, message
and measured values; the new record's history names the undo. What each action left behind:

- **reject**: the input and its matte are in the rejected folder: they come back, and the
  rejected folder's record of them is removed.
- **requeue**: the input is back in its hot folder, where a running daemon may pick it up
  again. Undo first claims it (the claim protocol every instance obeys); if another instance
  holds it already, the undo is refused and the file is left to be processed. Requeue deletes
  the matte, so a copy is kept here before acting (in ``<output>/.bshmd/review-undo/``).
- **accept**: the results accept wrote are removed and the input (back in the hot folder with
  a done record, or in the done folder) returns; with ``on_success: delete`` there is nothing
  left to bring back, and the undo is refused.

Undo records live in memory, the last ``KEEP`` actions: the page's session, not an archive.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from bshmd.errors import InputRejected
from bshmd.quarantine import store as quarantine

if TYPE_CHECKING:
    import numpy as np

    from bshmd.config import Config, FolderConfig

log = logging.getLogger("bshmd.review")

KEEP = 200
UNDO_DIR = "review-undo"
STALE_SECONDS = 86400.0  # copies left by a process that stopped are removed after a day


class UndoRefused(Exception):
    """The action cannot be taken back; the message says why, in words for the page."""


@dataclass
class Done:
    """One action taken from the page, with what is needed to take it back."""

    action: str
    folder: FolderConfig
    relpath: PurePosixPath  # where the input was in its hot folder
    record: dict[str, Any]  # the entry's record before the action
    place: Path | None  # where the input is now
    outputs: list[Path] = field(default_factory=list)  # what accept wrote
    matte_copy: Path | None = None  # requeue and accept delete the matte: a copy kept for undo
    rejected_sidecars: list[Path] = field(default_factory=list)


class UndoBook:
    """The last actions by token; ``keep_matte`` before acting, ``record`` after, ``undo`` later."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._session = secrets.token_hex(8)
        self._done: OrderedDict[str, Done] = OrderedDict()
        self._lock = threading.Lock()
        self._swept: set[Path] = set()

    def keep_matte(self, entry: quarantine.QuarantineEntry) -> Path | None:
        """A copy of the entry's matte that survives the action (a hard link where possible)."""
        matte = entry.sidecar("matte")
        if matte is None or not matte.is_file():
            return None
        folder = entry.folder.state_dir / UNDO_DIR
        self._sweep(folder)
        copy = folder / self._session / f"{secrets.token_hex(8)}.matte.png"
        try:
            copy.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(matte, copy)
            except OSError:
                shutil.copyfile(matte, copy)  # another filesystem
        except OSError as exc:
            log.warning("review: cannot keep a copy of %s for undo: %s", matte, exc)
            return None
        return copy

    def record(self, done: Done) -> str:
        token = secrets.token_urlsafe(12)
        with self._lock:
            self._done[token] = done
            while len(self._done) > KEEP:
                _, old = self._done.popitem(last=False)
                _discard(old.matte_copy)
        return token

    def undo(self, token: str, *, by: str) -> Path:
        """Put the entry back into quarantine; returns where it is. UndoRefused when it cannot."""
        with self._lock:
            done = self._done.pop(token, None)
        if done is None:
            raise UndoRefused("nothing to undo (already undone, or from before the page was reloaded)")
        try:
            return self._restore(done, by=f"{by} (undo of {done.action})")
        except UndoRefused:
            raise
        except (InputRejected, OSError, ValueError) as exc:
            raise UndoRefused(str(exc)) from exc
        finally:
            _discard(done.matte_copy)

    def _restore(self, done: Done, *, by: str) -> Path:
        if done.place is None or not done.place.exists():
            raise UndoRefused(f"{done.relpath.name}: the photo is no longer where {done.action} put it")
        if done.action == "requeue":
            return self._restore_requeued(done, by=by)
        matte_file = done.matte_copy if done.action == "accept" else _first(done.rejected_sidecars, ".matte.png")
        restored = self._requarantine(done, done.place, _read_matte(matte_file), by=by)
        if done.action == "accept":
            for output in done.outputs:
                with contextlib.suppress(FileNotFoundError):
                    output.unlink()
        for sidecar in done.rejected_sidecars:
            with contextlib.suppress(FileNotFoundError):
                sidecar.unlink()
        return restored

    def _restore_requeued(self, done: Done, *, by: str) -> Path:
        """Take the requeued photo back, unless an instance has claimed it meanwhile: a claim in
        the job ledger, held while the photo moves, so no instance can start on it halfway."""
        from bshmd.ledger import open_ledger
        from bshmd.ledger.keys import FileKey
        from bshmd.ledger.share import ensure_marker
        from bshmd.ledger.store import Taken

        assert done.place is not None
        folder = done.folder
        ledger = open_ledger(self.config, f"{self.config.effective_instance_id}-review")
        try:
            folder_id = ensure_marker(ledger, folder.input, folder.output).folder
            key = FileKey.of(folder.input, done.place)
            (claim,) = ledger.claim(folder_id, [key], self.config.claims.lease_seconds)
            if not isinstance(claim, Taken):
                raise UndoRefused(f"{done.relpath.name}: already being processed again; it cannot be taken back")
            try:
                return self._requarantine(done, done.place, _read_matte(done.matte_copy), by=by)
            finally:
                ledger.drop(folder_id, key, claim.epoch)  # the photo has left the folder
        finally:
            ledger.close()

    def _requarantine(self, done: Done, source: Path, matte: np.ndarray | None, *, by: str) -> Path:
        record = done.record
        measured = record.get("measured")
        rejection = InputRejected(str(record.get("reason", "?")), str(record.get("message", "")),
                                  measured if isinstance(measured, dict) else None)
        restored = quarantine.quarantine_input(done.folder, source, done.relpath, rejection,
                                               instance_id=by, matte=matte)
        log.info("review: undid %s of %s: back in quarantine as %s", done.action, done.relpath, restored)
        return restored

    def _sweep(self, folder: Path) -> None:
        """Remove copies other, stopped processes left behind (once per folder and process)."""
        if folder in self._swept:
            return
        self._swept.add(folder)
        cutoff = time.time() - STALE_SECONDS
        with contextlib.suppress(OSError):
            for session in folder.iterdir():
                with contextlib.suppress(OSError):
                    if session.name != self._session and session.stat().st_mtime < cutoff:
                        shutil.rmtree(session, ignore_errors=True)


def _first(paths: list[Path], suffix: str) -> Path | None:
    return next((p for p in paths if p.name.endswith(suffix)), None)


def _read_matte(path: Path | None) -> np.ndarray | None:
    if path is None or not path.is_file():
        return None
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.uint8).copy()


def _discard(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()
