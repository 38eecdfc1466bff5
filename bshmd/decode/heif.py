"""HEIC/HEIF (phones, some cameras) through pillow-heif, a default dependency.

pillow-heif teaches Pillow the format, so HEIF goes through the same decoding as every other
Pillow format (pixel limit from the header, orientation, mode conversion) in
bshmd.decode.image. Its colour profile stays where Pillow keeps every format's:
``image.info["icc_profile"]`` (an iPhone's Display P3, for instance); ``icc_profile`` reads it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

_lock = threading.Lock()
_registered = False


def register_opener() -> bool:
    """Teach Pillow HEIC/HEIF (once per process); False when pillow-heif is not installed."""
    global _registered
    with _lock:
        if _registered:
            return True
        try:
            import pillow_heif
        except ImportError:
            return False
        pillow_heif.register_heif_opener()
        _registered = True
        return True


def icc_profile(image: Image.Image) -> bytes | None:
    """The embedded ICC profile of an opened image (HEIF or any other format), if it has one."""
    profile = image.info.get("icc_profile")
    return bytes(profile) if profile else None
