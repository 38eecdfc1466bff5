"""Taking back the page's last decisions: ``U`` puts an entry back into quarantine.

An action is done for real at once, through ``bshmd.quarantine.actions`` (the files move as
``bshmd quarantine`` would move them), and taken back through ``bshmd.quarantine.undo``. What
this module adds is the page's memory: the last ``KEEP`` actions by token, and a copy of each
entry's matte made before an accept or requeue deletes it (in ``<output>/.bshmd/review-undo/``).

Undo records live in memory: the page's session, not an archive.
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
from pathlib import Path
from typing import TYPE_CHECKING

from bshmd.quarantine.undo import Done, UndoRefused, undo

if TYPE_CHECKING:
    from bshmd.config import Config
    from bshmd.quarantine.entries import QuarantineEntry

__all__ = ["KEEP", "Done", "UndoBook", "UndoRefused"]

log = logging.getLogger("bshmd.review")

KEEP = 200
UNDO_DIR = "review-undo"
STALE_SECONDS = 86400.0  # copies left by a process that stopped are removed after a day


class UndoBook:
    """The last actions by token; ``keep_matte`` before acting, ``record`` after, ``undo`` later."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._session = secrets.token_hex(8)
        self._done: OrderedDict[str, Done] = OrderedDict()
        self._lock = threading.Lock()
        self._swept: set[Path] = set()

    def keep_matte(self, entry: QuarantineEntry) -> Path | None:
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
                _discard(old.matte)
        return token

    def undo(self, token: str, *, by: str) -> Path:
        """Put the entry back into quarantine; returns where it is. UndoRefused when it cannot."""
        with self._lock:
            done = self._done.pop(token, None)
        if done is None:
            raise UndoRefused("nothing to undo (already undone, or from before the page was reloaded)")
        try:
            restored = undo(self.config, done, by=f"{by} (undo of {done.action})")
        finally:
            _discard(done.matte)
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


def _discard(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()
