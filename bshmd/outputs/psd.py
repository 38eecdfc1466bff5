"""The ``psd`` result: the photo as one pixel layer whose layer mask is the matte (psd-tools).

A retoucher opens it in Photoshop and paints the mask (a stray hair back in, a background
patch out) without ever having lost a pixel of the photo: the layer holds the whole image,
the mask only hides. The profile, EXIF, XMP, IPTC and resolution go into the document's
image resources, where Photoshop keeps them.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from bshmd.decode.record import PhotoMeta
from bshmd.outputs.metadata import psd_resources

if TYPE_CHECKING:
    import numpy as np

LAYER_NAME = "Photo"


def encode_psd(rgb: np.ndarray, alpha: np.ndarray, meta: PhotoMeta) -> bytes:
    """An 8-bit RGB document: ``rgb`` (uint8 H×W×3) as a layer masked by ``alpha`` (uint8 H×W)."""
    from PIL import Image
    from psd_tools import PSDImage
    from psd_tools.constants import Resource
    from psd_tools.psd.image_resources import ImageResource, ResoulutionInfo

    height, width = alpha.shape
    document = PSDImage.new("RGB", (width, height), depth=8)
    layer = document.create_pixel_layer_from_array(rgb, name=LAYER_NAME)
    layer.create_mask(Image.fromarray(alpha, "L"))
    resources = document.image_resources
    for key, data in psd_resources(meta).items():
        resources[Resource(key)] = ImageResource(key=Resource(key), data=data)
    if meta.dpi:
        # 16.16 fixed-point pixels per inch; units 1 = pixels per inch, shown in inches.
        x, y = (round(value * 65536) for value in meta.dpi)
        resources[Resource.RESOLUTION_INFO] = ImageResource(
            key=Resource.RESOLUTION_INFO, data=ResoulutionInfo(x, 1, 1, y, 1, 1))
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
