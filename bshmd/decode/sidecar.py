"""XMP sidecars: the ``.xmp`` file a raw developer or DAM writes beside a photo.

Two namings are in use: ``IMG_1.xmp`` (Adobe: the photo's stem) and ``IMG_1.CR2.xmp``
(darktable, digiKam: the photo's full name); the extension may be upper case. A stem
sidecar describes every photo of that stem (a RAW and its JPEG), so it belongs to one photo
only while no other photo of that stem lies beside it.

``read_sidecar_xmp`` gives the sidecar's bytes for the metadata step to merge into outputs;
``sidecar_of`` and ``follow_name`` let the photo's moves (quarantine, ``on_success: move``)
take its sidecar along.
"""

from __future__ import annotations

import os
from pathlib import Path

from bshmd.decode.names import IMAGE_LOOKING_EXTENSIONS, extension_of

SIDECAR_EXTENSION = ".xmp"
MAX_SIDECAR_BYTES = 16 * 1024 * 1024  # XMP packets are kilobytes; refuse to read a stray huge file


def _names_beside(photo: Path) -> list[str]:
    try:
        with os.scandir(photo.parent) as entries:
            return sorted(entry.name for entry in entries if entry.is_file(follow_symlinks=False))
    except OSError:
        return []


def find_sidecar(photo: Path) -> Path | None:
    """The XMP sidecar of ``photo``, full-name form first, then stem form; None if it has none."""
    photo = Path(photo)
    names = {name.lower(): name for name in _names_beside(photo)}
    full = names.get(photo.name.lower() + SIDECAR_EXTENSION)
    if full is not None:
        return photo.with_name(full)
    stem = names.get(os.path.splitext(photo.name)[0].lower() + SIDECAR_EXTENSION)
    return photo.with_name(stem) if stem is not None else None


def sidecar_of(photo: Path) -> Path | None:
    """The sidecar that belongs to ``photo`` alone, so it moves with it (see the module docstring)."""
    sidecar = find_sidecar(photo)
    if sidecar is None or sidecar.name.lower() == photo.name.lower() + SIDECAR_EXTENSION:
        return sidecar
    stem = os.path.splitext(photo.name)[0].lower()
    for name in _names_beside(photo):
        if (name != photo.name and os.path.splitext(name)[0].lower() == stem
                and extension_of(name) in IMAGE_LOOKING_EXTENSIONS):
            return None  # shared with another photo of the shot: it stays with that one
    return sidecar


def follow_name(sidecar: Path, photo: Path, moved: Path) -> Path:
    """Where ``sidecar`` goes once ``photo`` became ``moved`` (which may have a numbered name)."""
    ext = sidecar.name[-len(SIDECAR_EXTENSION):]
    if sidecar.name.lower() == photo.name.lower() + SIDECAR_EXTENSION:
        return moved.with_name(moved.name + ext)
    return moved.with_name(os.path.splitext(moved.name)[0] + ext)


def read_sidecar_xmp(photo: Path) -> bytes | None:
    """The XMP packet of ``photo``'s sidecar (full-name form first), or None without one."""
    sidecar = find_sidecar(Path(photo))
    if sidecar is None:
        return None
    try:
        with open(sidecar, "rb") as handle:
            data = handle.read(MAX_SIDECAR_BYTES + 1)
    except OSError:
        return None
    return data if 0 < len(data) <= MAX_SIDECAR_BYTES else None
