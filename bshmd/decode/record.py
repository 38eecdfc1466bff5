"""What decoding hands the rest of bshmd: the photo's pixels and its colour and metadata, read once.

Every decoder (Pillow's formats in bshmd.decode.image, camera RAW and HEIC beside it)
returns a ``Decoded``. The output writers take the metadata from here and nowhere else, so a
format never goes back to the input file for it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class PhotoMeta:
    """The blocks of an input worth carrying into its results; None where the input had none.

    ``exif`` is a TIFF-structured EXIF block (no ``Exif\\0\\0`` prefix) already cleaned for
    results: no orientation (decoding applied it), no thumbnail, no maker note, no image-
    structure tags. ``iptc`` is IPTC-IIM (the records, not Photoshop's 8BIM wrapping). ``dpi`` is
    (horizontal, vertical) in pixels per inch. ``dropped`` says, per block that was broken and
    left out, why: the file is processed all the same and its log line lists them.
    """

    icc: bytes | None = None
    exif: bytes | None = None
    xmp: bytes | None = None
    iptc: bytes | None = None
    dpi: tuple[float, float] | None = None
    dropped: tuple[str, ...] = ()

    def stripped(self) -> PhotoMeta:
        """``outputs.metadata: strip``: the colour profile only (it is what the pixels mean)."""
        return PhotoMeta(icc=self.icc, dropped=self.dropped)

    def with_xmp(self, xmp: bytes | None) -> PhotoMeta:
        """This record with ``xmp`` in place of the embedded XMP (e.g. a sidecar's, which wins)."""
        return dataclasses.replace(self, xmp=xmp)


@dataclass(frozen=True)
class Decoded:
    """One decoded photo: ``rgb`` uint8 H×W×3 as stored in the file (its own colour space, EXIF
    orientation applied); ``rgb16`` the same in uint16 when the input had 16 bits per channel
    and the caller asked to keep them, else None."""

    rgb: np.ndarray
    rgb16: np.ndarray | None = None
    meta: PhotoMeta = field(default_factory=PhotoMeta)
