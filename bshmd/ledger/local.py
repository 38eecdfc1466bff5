"""Where the SQLite ledger may live: on a local disk, never on a network or FUSE mount.

SQLite's locking is not safe over NFS or SMB (a ledger shared that way gets corrupted);
hosts that share folders share one PostgreSQL ledger instead. The daemon refuses to start
on a problem found here, and ``bshmd doctor`` reports the same problem in the same words.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bshmd.fs.mounts import Mount, network_mount
from bshmd.ledger import ledger_url, state_dir

if TYPE_CHECKING:
    from bshmd.config import Config


def state_dir_problem(config: Config, mounts: list[Mount] | None = None,
                      environ: dict[str, str] | None = None) -> str | None:
    """Why the SQLite ledger's folder is unfit, naming the key; None when it is fine or unused.
    ``mounts``: the mount table to judge by (default: this machine's)."""
    if ledger_url(config, environ):
        return None
    folder = state_dir(config, environ)
    mount = network_mount(folder, mounts)
    if mount is None:
        return None
    return (f"state_dir = '{folder}': is on a {mount.fs_type} filesystem ({mount.mount_point}); "
            "expected a local disk (SQLite over a network or FUSE mount corrupts). Hosts that "
            "share folders share one PostgreSQL ledger instead: set ledger.url")
