"""Whether one path lies inside another: the one containment test of the daemon.

Both paths are resolved first (``os.path.realpath``: every symlink followed, ``..`` applied),
so a link that leads out of a root counts as outside it, and a folder reached through a link
counts where it really is (the rule the review page's ids always had; the input scan's was
the same on paths it had resolved itself). A caller that must not touch the disk, because a
stat on a share whose server is down can hang, asks for the comparison of the paths as
written with ``follow_links=False``: the configuration's folder checks, which run at start and
on SIGHUP, and the health check that skips unavailable folders.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path


def is_within(path: str | os.PathLike[str], root: str | os.PathLike[str], *, follow_links: bool = True) -> bool:
    """True when ``path`` is ``root`` or lies below it."""
    if follow_links:
        inner, outer = os.path.realpath(path), os.path.realpath(root)
    else:
        inner, outer = os.path.normpath(os.path.abspath(path)), os.path.normpath(os.path.abspath(root))
    # Compare whole components: /srv/in2 is not inside /srv/in.
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def mode_and_owner(path: Path) -> str:
    """``mode 0750, owner root``: what a sentence about a folder one cannot use should name."""
    st = path.stat()
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    return f"mode {stat.S_IMODE(st.st_mode):04o}, owner {owner}"
