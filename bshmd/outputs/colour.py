"""Colour spaces: what the network sees, and what ``outputs.color`` puts into the results.

- The network was trained on sRGB photos, so an input tagged with another RGB profile (Adobe
  RGB, ProPhoto, Display P3) is converted to sRGB for it; untagged and sRGB inputs go as they
  are, at no cost.
- ``outputs.color: keep`` (the default): results carry the photo's own pixels and its own ICC
  profile, byte for byte, so every colour-managed program shows the colours the photographer
  saw. An untagged input gives untagged results (untagged means sRGB).
- ``outputs.color: srgb``: results carry sRGB pixels (the same conversion the network saw) and
  an sRGB profile, for web shops whose pipelines ignore profiles.

Conversions are LittleCMS's, through Pillow's ImageCms, with the perceptual intent. Transforms
are built once per profile and kept: building one costs more than converting a small photo.
"""

from __future__ import annotations

import functools
import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


@functools.lru_cache(maxsize=1)
def srgb_profile_bytes() -> bytes:
    """The sRGB profile results carry under ``outputs.color: srgb`` (LittleCMS's built-in)."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@functools.lru_cache(maxsize=32)
def is_srgb(icc: bytes | None) -> bool:
    """True for no profile (untagged means sRGB) and for profiles that describe sRGB.

    Compared by what the profile says it is (its description), then, for any other profile,
    by its primaries and white point: a camera's "sRGB IEC61966-2.1" and LittleCMS's own
    sRGB differ in bytes but not in colours.
    """
    if icc is None:
        return True
    profile = _profile(icc)
    description = (profile.profile.profile_description or "").lower()
    if "srgb" in description.replace(" ", ""):
        return True
    return _colorants(profile) == _colorants(_profile(srgb_profile_bytes()))


def _colorants(profile: Any) -> tuple[Any, ...] | None:
    inner = profile.profile
    try:
        return tuple(
            tuple(round(v, 3) for v in xyz)
            for xyz in (inner.red_colorant[0], inner.green_colorant[0], inner.blue_colorant[0],
                        inner.media_white_point[0])
        )
    except (TypeError, AttributeError, IndexError):
        return None


@functools.lru_cache(maxsize=32)
def _profile(icc: bytes) -> Any:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(io.BytesIO(icc))


@functools.lru_cache(maxsize=16)
def _to_srgb_transform(icc: bytes) -> Any:
    from PIL import ImageCms

    return ImageCms.buildTransform(_profile(icc), _profile(srgb_profile_bytes()), "RGB", "RGB",
                                   renderingIntent=ImageCms.Intent.PERCEPTUAL)


def to_srgb(rgb: np.ndarray, icc: bytes | None) -> np.ndarray:
    """``rgb`` (uint8 H×W×3 in the colour space of ``icc``) in sRGB; the same array when it is sRGB."""
    if is_srgb(icc):
        return rgb
    import numpy as np
    from PIL import Image, ImageCms

    assert icc is not None
    converted = ImageCms.applyTransform(Image.fromarray(rgb, "RGB"), _to_srgb_transform(icc))
    assert converted is not None
    return np.asarray(converted, dtype=np.uint8)
