"""Which filesystem a folder lives on, read from /proc/self/mountinfo.

inotify only reports changes made through the local kernel. Files written by another host
to an NFS or SMB share, or through most FUSE filesystems, never raise an event here, so
those folders are polled instead.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")

# Filesystems whose contents can change without the local kernel knowing.
NETWORK_FS_TYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "afs", "lustre",
    "gpfs", "beegfs", "ocfs2", "gfs2", "davfs", "sshfs", "vboxsf", "virtiofs", "ncpfs",
    "coda", "fuse",
})

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    mount_point: str
    fs_type: str
    source: str


def unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\040, \\011, \\012, \\134."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """Parse mountinfo lines: ``id parent maj:min root mountpoint opts [optional...] - type source superopts``."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        left_fields = left.split(" ")
        right_fields = right.split(" ")
        if len(left_fields) < 5 or not right_fields:
            continue
        mounts.append(Mount(
            mount_point=unescape(left_fields[4]),
            fs_type=right_fields[0],
            source=unescape(right_fields[1]) if len(right_fields) > 1 else "",
        ))
    return mounts


def mount_for(path: str | os.PathLike[str], mounts: list[Mount]) -> Mount | None:
    """The mount holding ``path``: the longest mount point that is a prefix of it (last one wins on ties)."""
    target = os.path.normpath(os.fspath(path))
    best: Mount | None = None
    for mount in mounts:
        point = mount.mount_point
        inside = target == point or point == "/" or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best.mount_point)):
            best = mount
    return best


def is_network_fs(fs_type: str) -> bool:
    # fuseblk is a local block device behind FUSE (ntfs-3g, exfat): local writes raise events.
    return fs_type in NETWORK_FS_TYPES or fs_type.startswith("fuse.")


def existing_ancestor(path: Path) -> Path:
    """The path itself, resolved, or its nearest existing parent (a folder not yet created)."""
    current = Path(os.path.abspath(path))
    while not current.exists() and current.parent != current:
        current = current.parent
    return current.resolve()


def mode_for(path: str | os.PathLike[str], requested: str, mounts: list[Mount]) -> str:
    """'events' or 'poll' for an (already resolved) path, given the mount table."""
    if requested in ("events", "poll"):
        return requested
    mount = mount_for(path, mounts)
    if mount is None:
        return "poll"  # cannot tell: polling is slower but never misses a file
    return "poll" if is_network_fs(mount.fs_type) else "events"


def is_mount_point(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` (symlinks resolved) is where a filesystem is mounted.

    Another device than its parent's tells at once; a bind mount of a folder from the same
    filesystem shares the device, so the mount table is asked as well. Raises OSError when
    ``path`` does not exist.
    """
    real = os.path.realpath(path)
    st = os.stat(real)
    parent = os.stat(os.path.join(real, ".."))
    if st.st_dev != parent.st_dev or st.st_ino == parent.st_ino:
        return True
    try:
        text = MOUNTINFO.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return False
    return any(mount.mount_point == real for mount in parse_mountinfo(text))


def watch_mode_for(path: Path, requested: str) -> str:
    """'events' or 'poll' for a folder whose configured ``watch`` is auto, events or poll."""
    if requested in ("events", "poll"):
        return requested
    try:
        text = MOUNTINFO.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return "poll"
    return mode_for(existing_ancestor(path), requested, parse_mountinfo(text))
