"""Looking at one candidate file without ever leaving the input root.

Whole trees are walked by bshmd.fs.walk (the one walker, shared with ``bshmd process``);
this is its rule for a single path an observer nominated: a symlinked file is accepted only
when its resolved target is a regular file inside the root, and a path reached through a
symlinked folder not at all.
"""

from __future__ import annotations

import logging
import os
import stat as stat_module
from pathlib import Path

from bshmd.fs.paths import is_within
from bshmd.fs.walk import walk
from bshmd.ingest.filters import PathFilter

log = logging.getLogger("bshmd.ingest.scan")

__all__ = ["stat_candidate", "walk"]


def stat_candidate(root: Path, path: Path, path_filter: PathFilter) -> os.stat_result | None:
    """The stat of ``path`` if it is a candidate image file that stays inside ``root``, else None."""
    if not path_filter.accepts_file(path):
        return None
    try:
        st = os.lstat(path)
        root_real = os.path.realpath(root)
        # An event may name a path reached through a symlinked folder: its parent must resolve inside.
        if not is_within(os.path.realpath(path.parent), root_real, follow_links=False):
            return None
        if stat_module.S_ISLNK(st.st_mode):
            target = os.path.realpath(path)
            if not is_within(target, root_real, follow_links=False):
                log.debug("skipping %r: symlink leads outside %s", str(path), root)
                return None
            st = os.stat(target)
        return st if stat_module.S_ISREG(st.st_mode) else None
    except OSError:
        return None
