"""Polling a tree that gives no events (NFS, SMB, FUSE) by its folders, not by its files.

A folder's mtime changes when an entry is created, removed or renamed in it, so one ``stat``
per folder and poll finds every new file: only folders whose mtime (or ctime) changed are
listed again, and only names whose inode changed are nominated. watchdog's PollingObserver
stats every file at every poll instead; with 100,000 finished files in 10,000 folders that
is ten times the calls. What a folder's mtime cannot show (a file rewritten in place under
the same name) the settle tracker sees for files still settling and the full rescan
(``rescan_seconds``) sees for the rest.
"""

from __future__ import annotations

import logging
import os
import stat as stat_module
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("bshmd.ingest.watch")

Nominate = Callable[[Path, bool], None]


class FolderPoller(threading.Thread):
    """Started like a watchdog observer; ``stop()`` then ``join()``."""

    def __init__(self, root: Path, interval: float, nominate: Nominate, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.root = str(root)
        self.interval = interval
        self.nominate = nominate
        self._stopping = threading.Event()
        # folder -> ((mtime_ns, ctime_ns), {name: (inode, is_dir)})
        self._folders: dict[str, tuple[tuple[int, int], dict[str, tuple[int, bool]]]] = {}
        self._learn(self.root)  # the first listing: what exists now is what the rescan handles

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.poll()
            except Exception:  # one bad poll must not end the watch
                log.exception("polling %s failed; continuing", self.root)

    def poll(self) -> None:
        for folder in list(self._folders):
            if self._stopping.is_set():
                return
            try:
                st = os.stat(folder, follow_symlinks=False)
            except OSError:
                self._forget(folder)
                self.nominate(Path(folder), True)
                continue
            if (st.st_mtime_ns, st.st_ctime_ns) != self._folders[folder][0]:
                self._relist(folder, st)

    def _relist(self, folder: str, st: os.stat_result) -> None:
        old = self._folders[folder][1]
        new = self._listing(folder)
        self._folders[folder] = ((st.st_mtime_ns, st.st_ctime_ns), new)
        for name, entry in new.items():
            if old.get(name) == entry:
                continue
            path = os.path.join(folder, name)
            if entry[1]:
                self._learn(path)
            self.nominate(Path(path), entry[1])
        for name, (_inode, is_dir) in old.items():
            if name not in new:
                path = os.path.join(folder, name)
                if is_dir:
                    self._forget(path)
                self.nominate(Path(path), is_dir)

    def _learn(self, top: str) -> None:
        """Record ``top`` and every folder below it (symlinked folders are not followed)."""
        pending = [top]
        while pending:
            folder = pending.pop()
            try:
                st = os.stat(folder, follow_symlinks=False)
            except OSError:
                continue
            if not stat_module.S_ISDIR(st.st_mode):
                continue
            listing = self._listing(folder)
            self._folders[folder] = ((st.st_mtime_ns, st.st_ctime_ns), listing)
            pending.extend(os.path.join(folder, name) for name, (_, is_dir) in listing.items() if is_dir)

    def _forget(self, top: str) -> None:
        prefix = top.rstrip("/") + "/"
        for folder in [f for f in self._folders if f == top or f.startswith(prefix)]:
            del self._folders[folder]

    @staticmethod
    def _listing(folder: str) -> dict[str, tuple[int, bool]]:
        try:
            with os.scandir(folder) as entries:
                return {e.name: (e.inode(), e.is_dir(follow_symlinks=False)) for e in entries}
        except OSError:
            return {}
