"""The page's actions on entries: accept, requeue, reject and undo, one at a time.

Each action is done for real at once, through bshmd.quarantine.actions (the same functions as
``bshmd quarantine``), after a copy of the matte is kept for undo (bshmd.review.undo). The
reply says, in words for the page, what happened, and carries the token that takes it back.
The entry's cached thumbnails and tiles are dropped once it left the quarantine.
"""

from __future__ import annotations

import copy
import logging
import threading
from typing import TYPE_CHECKING, Any

from bshmd.errors import InputRejected
from bshmd.quarantine import actions
from bshmd.quarantine.entries import find_entry
from bshmd.review import ids
from bshmd.review.undo import Done, UndoBook, UndoRefused

if TYPE_CHECKING:
    from bshmd.config import Config
    from bshmd.review.thumbnails import ThumbnailCache
    from bshmd.review.tiles import TileCache

log = logging.getLogger("bshmd.review")

ACTIONS = ("accept", "requeue", "reject")


class Desk:
    """Where the page's decisions are carried out; ``lock`` keeps two clicks from racing on a file."""

    def __init__(self, config: Config, thumbnails: ThumbnailCache, tiles: TileCache) -> None:
        self.config = config
        self.thumbnails = thumbnails
        self.tiles = tiles
        self.undo_book = UndoBook(config)
        self.lock = threading.Lock()

    def act(self, action: str, entry_id: str, *, by: str = "review") -> dict[str, Any]:
        """Apply one action to one entry; the result says what happened, for the page to show."""
        with self.lock:
            try:
                entry = ids.resolve(self.config.folders, entry_id)
            except ids.BadEntryId as exc:
                log.info("review: %s of %s refused: %s", action, entry_id, exc)
                return {"id": entry_id, "ok": False, "message": "not in quarantine any more, or not an entry"}
            name = entry.path.name
            thumbs_key = self.thumbnails.key(entry)
            before = copy.deepcopy(entry.record)
            matte_copy = self.undo_book.keep_matte(entry) if action in ("accept", "requeue") else None
            done = Done(action, entry.folder, entry.relpath, before, matte=matte_copy)
            try:
                if action == "accept":
                    accepted = actions.accept(entry, self.config, by=by)
                    message = f"{name}: accepted; wrote {', '.join(p.name for p in accepted.outputs)}"
                    done.outputs, done.place = accepted.outputs, accepted.input
                elif action == "requeue":
                    done.place = actions.requeue(entry, by=by)
                    message = f"{name}: back in the hot folder as {done.place.name}, to be processed again"
                else:
                    done.place = moved = actions.reject(entry, by=by)
                    message = f"{name}: rejected; kept in {moved.parent}"
            except (InputRejected, OSError, ValueError) as exc:
                log.warning("review: %s of %s failed: %s", action, entry.path, exc)
                if matte_copy is not None:
                    matte_copy.unlink(missing_ok=True)
                return {"id": entry_id, "ok": False, "message": f"{name}: {action} failed: {exc}"}
            self.thumbnails.forget(entry, thumbs_key)
            self.tiles.forget(entry, thumbs_key)
            log.info("review: %s %s (by %s)", action, entry.path, by)
            return {"id": entry_id, "ok": True, "message": message, "undo": self.undo_book.record(done)}

    def undo(self, token: str, *, by: str = "review") -> dict[str, Any]:
        """Take back one earlier action of this page: the entry is in quarantine again."""
        with self.lock:
            try:
                restored = self.undo_book.undo(token, by=by)
            except UndoRefused as exc:
                log.warning("review: undo refused: %s", exc)
                return {"id": token, "ok": False, "message": f"cannot undo: {exc}"}
            entry = find_entry(self.config.folders, restored)
            return {"id": token, "ok": True, "entry": ids.entry_id(self.config.folders, entry),
                    "message": f"{restored.name}: back in quarantine"}

