"""XMP sidecars: the ``.xmp`` file a raw developer or DAM writes beside a photo.

Two namings are in use: ``IMG_1.xmp`` (Adobe: the photo's stem) and ``IMG_1.CR2.xmp``
(darktable, digiKam: the photo's full name); the extension may be upper case. A stem
sidecar describes every photo of that stem (a RAW and its JPEG), so it belongs to one photo
only while no other photo of that stem lies beside it.

``read_sidecar_xmp`` gives the sidecar's bytes for the metadata step to merge into outputs;
``sidecar_of`` names the sidecar that is the photo's alone, so its moves (quarantine,
``on_success: move``) take it along (bshmd.fs.sidecars).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from bshmd.decode.names import IMAGE_LOOKING_EXTENSIONS, extension_of

if TYPE_CHECKING:
    from bshmd.decode.record import Decoded

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


def with_sidecar_xmp(photo: Decoded, path: Path) -> Decoded:
    """``photo`` (decoded from ``path``) with its sidecar's XMP in place of the embedded one.

    The sidecar is what a raw developer or DAM last wrote: it wins over the embedded XMP,
    cleaned by the same checks (meta_from_blocks) as an embedded packet. The pipeline and an
    accepted quarantine entry both decode through this, so their results carry the same
    metadata.
    """
    import dataclasses

    from bshmd.decode.meta import meta_from_blocks

    sidecar = read_sidecar_xmp(path)
    if sidecar is None:
        return photo
    return dataclasses.replace(photo, meta=photo.meta.with_xmp(meta_from_blocks(xmp=sidecar).xmp))
