"""When a folder's disk counts as full: one threshold for the daemon's health and the doctor."""

from __future__ import annotations

import os
import shutil

# Below this much free space a result or a quarantine entry may no longer fit: a 16-bit TIFF
# or PSD of a large photo runs to a few hundred MiB.
LOW_DISK_BYTES = 256 * 1024 * 1024


def free_bytes(path: str | os.PathLike[str]) -> int:
    """Free space for this user on the filesystem holding ``path``; raises OSError."""
    return shutil.disk_usage(path).free


def is_disk_full(free: int) -> bool:
    return free < LOW_DISK_BYTES
