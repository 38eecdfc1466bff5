"""Finding candidate files on disk without ever leaving the input root.

The walk uses ``os.scandir`` without following symlinks: symlinked folders are never
entered (they could lead anywhere, or loop), and a symlinked file is accepted only when
its resolved target is a regular file inside the root.
"""

from __future__ import annotations

import logging
import os
import stat as stat_module
from collections.abc import Iterator
from pathlib import Path

from bshmd.fs.paths import is_within
from bshmd.ingest.filters import PathFilter

log = logging.getLogger("bshmd.ingest.scan")


def stat_candidate(root: Path, path: Path, path_filter: PathFilter) -> os.stat_result | None:
    """The stat of ``path`` if it is a candidate image file that stays inside ``root``, else None."""
    if not path_filter.accepts_file(path):
        return None
    try:
        st = os.lstat(path)
        root_real = os.path.realpath(root)
        # An event may name a path reached through a symlinked folder: its parent must resolve inside.
        if not is_within(os.path.realpath(path.parent), root_real):
            return None
        if stat_module.S_ISLNK(st.st_mode):
            target = os.path.realpath(path)
            if not is_within(target, root_real):
                log.debug("skipping %r: symlink leads outside %s", str(path), root)
                return None
            st = os.stat(target)
        return st if stat_module.S_ISREG(st.st_mode) else None
    except OSError:
        return None


def walk(root: Path, path_filter: PathFilter, start: Path | None = None) -> Iterator[tuple[Path, os.stat_result]]:
    """Every candidate file below ``start`` (default: the root), with its stat.

    Raises OSError only when ``start`` itself cannot be listed; unreadable subfolders are
    skipped with a log line (they are retried at the next rescan).
    """
    root_real = os.path.realpath(root)
    first = Path(start or root)
    stack = [first]
    while stack:
        folder = stack.pop()
        try:
            entries = os.scandir(folder)
        except OSError as exc:
            if folder == first:
                raise
            log.info("cannot list %r: %s", str(folder), exc.strerror or exc)
            continue
        with entries:
            for entry in entries:
                try:
                    path = Path(entry.path)
                    if entry.is_dir(follow_symlinks=False):
                        if path_filter.accepts_dir(path):
                            stack.append(path)
                        continue
                    if not path_filter.accepts_file(path):
                        continue
                    if entry.is_symlink():
                        target = os.path.realpath(path)
                        if not is_within(target, root_real):
                            log.debug("skipping %r: symlink leads outside %s", entry.path, root)
                            continue
                        st = os.stat(target)
                    else:
                        st = entry.stat(follow_symlinks=False)
                    if stat_module.S_ISREG(st.st_mode):
                        yield path, st
                except OSError as exc:
                    log.debug("skipping %r: %s", entry.path, exc)
