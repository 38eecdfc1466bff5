"""An input's XMP sidecar follows it when the input leaves its folder (quarantine, on_success: move)."""

from __future__ import annotations

import logging
from pathlib import Path

from bshmd.decode.sidecar import follow_name
from bshmd.fs.atomic import safe_move

log = logging.getLogger("bshmd.sidecars")


def move_with_sidecar(source: Path, moved: Path, sidecar: Path | None, *, root: Path) -> Path | None:
    """Move ``sidecar`` (bshmd.decode.sidecar.sidecar_of, before ``source`` moved) beside ``moved``.

    Returns where it went. A sidecar that cannot follow is logged and left in place: the
    photo's move stands.
    """
    if sidecar is None:
        return None
    try:
        placed = safe_move(sidecar, follow_name(sidecar, source, moved), root=root)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("%s moved to %s, but its sidecar %s could not follow: %s", source, moved, sidecar, exc)
        return None
    log.debug("sidecar %s followed %s to %s", sidecar, source, placed)
    return placed

