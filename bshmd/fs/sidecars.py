"""An input's XMP sidecar follows it when the input leaves its folder (quarantine, on_success: move).

Which file is a photo's own sidecar is a question about pictures (bshmd.decode.sidecar's
``sidecar_of``, asked before the photo moves); where it goes once the photo moved is a
question of names alone, answered here.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from bshmd.fs.atomic import safe_move

log = logging.getLogger("bshmd.sidecars")

_SIDECAR_EXTENSION = ".xmp"


def follow_name(sidecar: Path, photo: Path, moved: Path) -> Path:
    """Where ``sidecar`` goes once ``photo`` became ``moved`` (which may have a numbered name).

    A full-name sidecar (``IMG_1.CR2.xmp``) takes the moved photo's full name, a stem sidecar
    (``IMG_1.xmp``) its stem; the extension keeps its case.
    """
    ext = sidecar.name[-len(_SIDECAR_EXTENSION):]
    if sidecar.name.lower() == photo.name.lower() + _SIDECAR_EXTENSION:
        return moved.with_name(moved.name + ext)
    return moved.with_name(os.path.splitext(moved.name)[0] + ext)


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
