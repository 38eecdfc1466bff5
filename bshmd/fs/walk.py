"""Walking an input tree without ever leaving its root: the one walker of input folders.

The daemon's rescans and ``bshmd process`` both walk with these rules, so a folder gives the
same files to either. Symlinked folders are never entered (they could lead anywhere, or
loop); a symlinked file is taken only when its resolved target is a regular file inside the
root. Which names count (extensions, ignore patterns, excluded folders) is the caller's
filter: this layer knows no picture formats.

Each folder is listed, sorted by name, before its files are yielded: files in name order, then
each subfolder in name order, depth first (the order ``os.walk`` would give), and no folder
stays open while the caller works on a file.
"""

from __future__ import annotations

import logging
import os
import stat as stat_module
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from bshmd.fs.paths import is_within

log = logging.getLogger("bshmd.fs.walk")


class WalkFilter(Protocol):
    """Which folders to enter and which files to offer (bshmd.ingest.filters.PathFilter)."""

    def accepts_dir(self, path: Path) -> bool: ...

    def accepts_file(self, path: Path) -> bool: ...


def walk(root: Path, path_filter: WalkFilter, start: Path | None = None) -> Iterator[tuple[Path, os.stat_result]]:
    """Every candidate file below ``start`` (default: the root), with its stat.

    Raises OSError only when ``start`` itself cannot be listed; unreadable subfolders are
    skipped with a log line (a rescan tries them again).
    """
    root_real = os.path.realpath(root)
    first = Path(start or root)
    stack = [first]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as exc:
            if folder == first:
                raise
            log.info("cannot list %r: %s", str(folder), exc.strerror or exc)
            continue
        subfolders: list[Path] = []
        for entry in entries:
            try:
                path = Path(entry.path)
                if entry.is_dir(follow_symlinks=False):
                    if path_filter.accepts_dir(path):
                        subfolders.append(path)
                    continue
                if not path_filter.accepts_file(path):
                    continue
                if entry.is_symlink():
                    target = os.path.realpath(path)
                    if not is_within(target, root_real, follow_links=False):
                        log.debug("skipping %r: symlink leads outside %s", entry.path, root)
                        continue
                    st = os.stat(target)
                else:
                    st = entry.stat(follow_symlinks=False)
                if stat_module.S_ISREG(st.st_mode):
                    yield path, st
            except OSError as exc:
                log.debug("skipping %r: %s", entry.path, exc)
        stack.extend(reversed(subfolders))  # the first name is taken next
