"""Photos as bytes for the NAS tests: a synthetic portrait the stand-in graph mattes cleanly."""

from __future__ import annotations

import io

from bshmd.testing.images import synthetic_portrait


def photo_bytes(width: int = 160, height: int = 120, fmt: str = "PNG", seed: int = 0) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    options = {"quality": 92} if fmt == "JPEG" else {}
    Image.fromarray(synthetic_portrait(width, height, seed, noise=8.0)).save(buffer, fmt, **options)
    return buffer.getvalue()
