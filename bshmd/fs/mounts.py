"""Which filesystem a folder lives on, and how it caches attributes, from /proc/self/mountinfo.

inotify only reports changes made through the local kernel. Files written by another host
to an NFS or SMB share, or through most FUSE filesystems, never raise an event here, so
those folders are polled instead.

Network and FUSE clients also cache a file's attributes: for a while, ``stat`` may show the
size and mtime of a moment ago while another host is still writing. ``attribute_cache``
tells for how long, from the mount's options where they show (see its table); the settle
step never declares a file finished in less than that plus ``settle_seconds``.
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
    options: tuple[str, ...] = ()  # the mount's own options, then the filesystem's (super) options


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
        options = left_fields[5].split(",") if len(left_fields) > 5 else []
        if len(right_fields) > 2:
            options += right_fields[2].split(",")
        mounts.append(Mount(
            mount_point=unescape(left_fields[4]),
            fs_type=right_fields[0],
            source=unescape(right_fields[1]) if len(right_fields) > 1 else "",
            options=tuple(unescape(option) for option in options if option),
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


def network_mount(path: Path, mounts: list[Mount] | None = None) -> Mount | None:
    """The network or FUSE mount holding ``path`` (or its nearest existing parent); None when
    it is on a local disk or the mount table cannot be read. ``mounts``: this machine's table."""
    table = mount_table() if mounts is None else mounts
    mount = mount_for(existing_ancestor(path), table or [])
    return mount if mount is not None and is_network_fs(mount.fs_type) else None


def mode_for(path: str | os.PathLike[str], requested: str, mounts: list[Mount]) -> str:
    """'events' or 'poll' for an (already resolved) path, given the mount table: the one rule,
    used by the ingestor to watch a folder and by the doctor to say how it will be watched."""
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
    return any(mount.mount_point == real for mount in mount_table() or ())


# Attribute-cache times of clients whose options do not show them (kernel and libfuse defaults).
NFS_DEFAULT_ACREGMIN = 3.0
NFS_DEFAULT_ACREGMAX = 60.0
CIFS_DEFAULT_ACTIMEO = 1.0
FUSE_DEFAULT_ATTR_TIMEOUT = 1.0
_NFS_TYPES = frozenset({"nfs", "nfs4"})
_CIFS_TYPES = frozenset({"cifs", "smb3", "smbfs"})


def _option_seconds(options: dict[str, str], *names: str) -> tuple[float, str] | None:
    for name in names:
        value = options.get(name)
        if value is not None:
            try:
                return max(float(value), 0.0), f"{name}={value}"
            except ValueError:
                continue
    return None


def attribute_cache(mount: Mount | None) -> tuple[float, str]:
    """(seconds, where that comes from): how long this mount may show stale file attributes.

    ==================  =====================================================================
    nfs, nfs4           ``noac``: 0; else ``actimeo`` or ``acregmax`` as shown. The kernel
                        shows neither at their defaults: then acregmin's default (3 s), because
                        bshmd opens the file before its last look and an NFS open revalidates
                        (close-to-open); with ``nocto``, acregmax's default (60 s).
    cifs, smb3          ``actimeo`` or ``acregmax`` as shown (the kernel shows one); else 1 s.
    fuse, fuse.*        1 s: libfuse's default ``attr_timeout``, which never shows in the
                        mount table (state another with ``folders[].attribute_cache_seconds``).
    other network fs    1 s.
    local               0.
    ==================  =====================================================================
    """
    if mount is None:
        return FUSE_DEFAULT_ATTR_TIMEOUT, "unknown filesystem"
    options: dict[str, str] = {}
    flags: set[str] = set()
    for option in mount.options:
        name, sep, value = option.partition("=")
        if sep:
            options[name] = value
        else:
            flags.add(name)
    kind = mount.fs_type
    if kind in _NFS_TYPES:
        if "noac" in flags:
            return 0.0, f"{kind} mount option noac"
        shown = _option_seconds(options, "actimeo", "acregmax")
        if shown is not None:
            return shown[0], f"{kind} mount option {shown[1]}"
        if "nocto" in flags:
            return NFS_DEFAULT_ACREGMAX, f"{kind} with nocto: default acregmax"
        return NFS_DEFAULT_ACREGMIN, f"{kind} default acregmin (close-to-open)"
    if kind in _CIFS_TYPES:
        shown = _option_seconds(options, "actimeo", "acregmax")
        if shown is not None:
            return shown[0], f"{kind} mount option {shown[1]}"
        return CIFS_DEFAULT_ACTIMEO, f"{kind} default actimeo"
    if kind == "fuse" or kind.startswith("fuse."):
        return FUSE_DEFAULT_ATTR_TIMEOUT, f"{kind}: libfuse default attr_timeout (not shown by the mount)"
    if is_network_fs(kind):
        return FUSE_DEFAULT_ATTR_TIMEOUT, f"{kind}: network filesystem"
    return 0.0, f"local filesystem ({kind})"


def mount_table() -> list[Mount] | None:
    """This machine's mount table; None when it cannot be read."""
    try:
        text = MOUNTINFO.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return None
    return parse_mountinfo(text)


def attribute_cache_for(path: Path) -> tuple[float, str]:
    """``attribute_cache`` of the mount holding ``path`` (or its nearest existing parent)."""
    mounts = mount_table()
    if mounts is None:
        return FUSE_DEFAULT_ATTR_TIMEOUT, "mount table unreadable"
    return attribute_cache(mount_for(existing_ancestor(path), mounts))


def watch_mode_for(path: Path, requested: str) -> str:
    """'events' or 'poll' for a folder whose configured ``watch`` is auto, events or poll."""
    if requested in ("events", "poll"):
        return requested
    mounts = mount_table()
    if mounts is None:
        return "poll"
    return mode_for(existing_ancestor(path), requested, mounts)
