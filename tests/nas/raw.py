"""DNG files built with pidng from a known RGB picture: a real RAW input LibRaw develops."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_dng(path: Path, rgb: Any, *, orientation: int = 1) -> Path:
    """An RGGB Bayer DNG of the uint8 H×W×3 ``rgb`` (12-bit data, neutral white balance).

    ``orientation`` is the TIFF/EXIF orientation tag (6: the camera was turned, rotate 90°).
    """
    import numpy as np
    from pidng.core import RAW2DNG, DNGTags, Tag
    from pidng.defs import CalibrationIlluminant, CFAPattern, DNGVersion, PhotometricInterpretation

    height, width = rgb.shape[:2]
    assert height % 2 == 0 and width % 2 == 0, "a Bayer mosaic needs even sides"
    linear = (rgb.astype(np.float64) / 255.0) ** 2.2 * 4095.0  # sRGB-ish gamma back to linear
    bayer = np.empty((height, width), np.uint16)
    bayer[0::2, 0::2] = linear[0::2, 0::2, 0]
    bayer[0::2, 1::2] = linear[0::2, 1::2, 1]
    bayer[1::2, 0::2] = linear[1::2, 0::2, 1]
    bayer[1::2, 1::2] = linear[1::2, 1::2, 2]
    tags = DNGTags()
    tags.set(Tag.ImageWidth, width)
    tags.set(Tag.ImageLength, height)
    tags.set(Tag.TileWidth, width)
    tags.set(Tag.TileLength, height)
    tags.set(Tag.Orientation, orientation)
    tags.set(Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array)
    tags.set(Tag.SamplesPerPixel, 1)
    tags.set(Tag.BitsPerSample, 16)
    tags.set(Tag.CFARepeatPatternDim, [2, 2])
    tags.set(Tag.CFAPattern, CFAPattern.RGGB)
    tags.set(Tag.BlackLevel, 0)
    tags.set(Tag.WhiteLevel, 4095)
    tags.set(Tag.ColorMatrix1, [[1, 1], [0, 1], [0, 1], [0, 1], [1, 1], [0, 1], [0, 1], [0, 1], [1, 1]])
    tags.set(Tag.CalibrationIlluminant1, CalibrationIlluminant.D65)
    tags.set(Tag.AsShotNeutral, [[1, 1], [1, 1], [1, 1]])
    tags.set(Tag.DNGVersion, DNGVersion.V1_4)
    tags.set(Tag.DNGBackwardVersion, DNGVersion.V1_2)
    tags.set(Tag.Make, "bshmd")
    tags.set(Tag.Model, "test camera")
    converter = RAW2DNG()
    converter.options(tags, path="", compress=False)
    stem = str(path)[: -len(path.suffix)] if path.suffix.lower() == ".dng" else str(path)
    converter.convert(bayer, filename=stem)
    written = Path(stem + ".dng")
    if written != path:
        written.rename(path)
    return path
