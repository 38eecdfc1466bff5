"""watchdog observers that nominate changed paths; the settle tracker decides what is ready.

Events only make pickup fast. Anything an observer misses (a queue overflow, a file written
by another host) is found by the periodic rescan.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver

log = logging.getLogger("bshmd.ingest.watch")

# Opened/closed-without-write events are left out on purpose: the settle check opens files
# itself and the pipeline reads them, and neither must look like a change. Deletions are
# watched so that the records of files that left the folder are dropped at once.
WATCHED_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileMovedEvent, FileDeletedEvent,
    DirCreatedEvent, DirMovedEvent, DirDeletedEvent,
]

Nominate = Callable[[Path, bool], None]


class NominatingHandler(FileSystemEventHandler):
    """Passes each interesting path (and whether it is a folder to walk) to ``nominate``."""

    def __init__(self, nominate: Nominate) -> None:
        self._nominate = nominate

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            if event.event_type == "moved":
                # The old name is gone: nominated too, so that its record is dropped.
                self._nominate(Path(os.fsdecode(event.src_path)), event.is_directory)
                path = event.dest_path
            elif event.event_type in ("created", "modified", "closed", "deleted"):
                path = event.src_path
            else:
                return
            if event.is_directory and event.event_type == "modified":
                return  # a folder's mtime changes with every file in it; the file events say more
            self._nominate(Path(os.fsdecode(path)), event.is_directory)
        except Exception:
            log.exception("cannot handle %r", event)


def start_observer(root: Path, mode: str, poll_seconds: float, nominate: Nominate, name: str) -> BaseObserver:
    """A started observer watching ``root`` recursively: inotify for 'events', folder polling for 'poll'."""
    observer: BaseObserver
    if mode != "events":
        # Polling by folder mtimes (see dirpoll.py): a stat per folder, not per file.
        from bshmd.ingest.dirpoll import FolderPoller

        poller = FolderPoller(root, poll_seconds, nominate, name)
        poller.start()
        return poller  # type: ignore[return-value] - stopped and joined like an observer
    from watchdog.observers.inotify import InotifyObserver

    observer = InotifyObserver()
    observer.name = name
    try:
        observer.schedule(NominatingHandler(nominate), str(root), recursive=True, event_filter=WATCHED_EVENTS)
        observer.start()
    except BaseException:
        stop_observer(observer)
        raise
    return observer


def stop_observer(observer: BaseObserver, timeout: float = 10.0) -> None:
    try:
        observer.stop()
        if observer.is_alive():
            observer.join(timeout)
    except Exception:
        log.exception("cannot stop observer %s", observer.name)


class OverflowListener(logging.Handler):
    """Calls ``on_overflow`` when watchdog's inotify backend reports a kernel queue overflow.

    watchdog 7 handles IN_Q_OVERFLOW inside inotify_c (rebuilding its watches) and only
    *logs* a warning; no event reaches handlers. Listening for that warning is the only hook.
    If the watchdog logger is silenced above WARNING this sees nothing, and the periodic
    rescan is what catches up.
    """

    LOGGER = "watchdog.observers.inotify_c"

    def __init__(self, on_overflow: Callable[[], None]) -> None:
        super().__init__(level=logging.WARNING)
        self._on_overflow = on_overflow

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if "overflow" in str(record.msg).lower():
                self._on_overflow()
        except Exception:
            self.handleError(record)

    def install(self) -> None:
        logging.getLogger(self.LOGGER).addHandler(self)

    def remove(self) -> None:
        logging.getLogger(self.LOGGER).removeHandler(self)
