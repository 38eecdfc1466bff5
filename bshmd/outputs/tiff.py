"""The ``tiff`` result: RGBA with unassociated alpha, 8 or 16 bits, deflate-compressed (tifffile).

Unassociated alpha (ExtraSamples = 2) means the colour channels hold the photo's own colour
and alpha says how much of it shows: Photoshop, GIMP and Lightroom read it as transparency.
Associated (premultiplied) alpha would darken the hair edges for a retoucher who paints on it.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from bshmd.decode.record import PhotoMeta
from bshmd.outputs.metadata import tiff_args

if TYPE_CHECKING:
    import numpy as np


def encode_tiff(rgba: np.ndarray, meta: PhotoMeta, *, compression: str, level: int = 6) -> bytes:
    """``rgba`` (H×W×4, uint8 or uint16) as a TIFF carrying ``meta``; ``compression`` deflate or none."""
    import tifffile

    buffer = io.BytesIO()
    deflate = compression == "deflate"
    tifffile.imwrite(buffer, rgba, photometric="rgb", extrasamples=("unassalpha",), planarconfig="contig",
                     compression="zlib" if deflate else None,
                     compressionargs={"level": level} if deflate else None,
                     predictor=deflate, metadata=None, **tiff_args(meta))
    return buffer.getvalue()
