"""Whether an output folder can take results now (its share is still mounted)."""

from __future__ import annotations

from pathlib import Path

from bshmd.fs.mounts import is_mount_point


class OutputMount:
    """Whether an output folder can take results: it exists, and if it was ever seen as a
    mount point (a NAS share) it still is one. A share that is unmounted leaves its bare
    folder behind on the local disk, where results would be hidden (and the claim state
    split) once the share comes back. An output folder never seen as a mount point is
    trusted as it is. Called as ``OutputMount(path)()``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._was_mount = False

    def __call__(self) -> bool:
        try:
            mounted = is_mount_point(self.path)
        except OSError:
            return False
        if mounted:
            self._was_mount = True
        return mounted or not self._was_mount
