"""The composite as JPEG: full-resolution chroma, and a quality that fits a byte limit.

Chroma is kept at full resolution (4:4:4). With the usual 4:2:0, a decoder's chroma
upsampling blends each colour edge into the neighbouring pixels, so a plain background next
to the subject is no longer exactly its colour; with 4:4:4, every 8×8 block that holds only
background decodes back to exactly the background colour (tests check every such pixel for
#ffffff), and soft edges keep their colour.

``outputs.jpeg_max_bytes``: marketplaces cap the file size. The quality starts at
``jpeg_quality`` and goes down by ``QUALITY_STEP`` until the file fits; below
``MIN_QUALITY`` artefacts are plain to see, so an image that still does not fit is refused
(``output_too_large``) instead of published.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from bshmd.errors import InputRejected

if TYPE_CHECKING:
    from PIL import Image

QUALITY_STEP = 5
MIN_QUALITY = 40


def _encode(image: Image.Image, quality: int, metadata: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, subsampling=0, optimize=True, **metadata)
    return buffer.getvalue()


def encode_jpeg(image: Image.Image, quality: int, max_bytes: int | None = None, **metadata: Any) -> bytes:
    """``image`` (RGB) as a 4:4:4 JPEG at ``quality``, or lower until it fits ``max_bytes``;
    ``metadata`` are Pillow's JPEG arguments for the blocks (bshmd.outputs.metadata.jpeg_args),
    counted in the size as they are in the file."""
    blob = _encode(image, quality, metadata)
    if max_bytes is None or len(blob) <= max_bytes:
        return blob
    tried = [(quality, len(blob))]  # (quality, bytes) of each attempt, for the quarantine entry
    while quality - QUALITY_STEP >= MIN_QUALITY:
        quality -= QUALITY_STEP
        blob = _encode(image, quality, metadata)
        if len(blob) <= max_bytes:
            return blob
        tried.append((quality, len(blob)))
    raise InputRejected(
        "output_too_large",
        f"the composite JPEG is {len(blob)} bytes even at quality {quality}; "
        f"outputs.jpeg_max_bytes is {max_bytes}",
        {"jpeg_max_bytes": max_bytes, "smallest_bytes": len(blob), "qualities_tried": [q for q, _ in tried]},
    )
