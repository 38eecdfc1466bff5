"""The encoded bytes of every result format for one input, from its photo and its matte.

Every result has the input's full resolution, unless ``outputs.layout`` places the subject on
a canvas. ``feather_px`` softens the matte, ``edges`` decontaminates the subject's soft edges
(bshmd.outputs.edges) and ``layout`` trims and places it (bshmd.outputs.layout), once,
before any format is rendered, so all formats of one input agree. Colour profile and metadata
come from the decoded photo (bshmd.outputs.colour, bshmd.outputs.metadata); ``bit_depth: keep``
makes the cutout PNG and the TIFF 16-bit for 16-bit inputs kept at their own framing. The
results' names and how they are written are bshmd.outputs.files.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from bshmd.outputs.edges import clean_edges
from bshmd.outputs.jpeg import BackgroundPixels, encode_jpeg
from bshmd.outputs.layout import apply_layout

if TYPE_CHECKING:
    import numpy as np

    from bshmd.config import OutputsConfig
    from bshmd.decode.record import Decoded, PhotoMeta

log = logging.getLogger("bshmd.outputs")


def _background_rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _cover(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize to cover height×width keeping the aspect ratio, then crop the centre."""
    import cv2

    src_h, src_w = image.shape[:2]
    scale = max(height / src_h, width / src_w)
    new_h, new_w = max(height, round(src_h * scale)), max(width, round(src_w * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return resized[top:top + height, left:left + width]


def load_background(path: Path) -> np.ndarray:
    """outputs.background_image as RGB (decoded with the same rules as inputs).

    Cached per (path, size, mtime): decoded once, re-read when someone replaces the file.
    """
    info = os.stat(path)
    return _load_background(str(path), info.st_size, info.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _load_background(path: str, size: int, mtime_ns: int) -> np.ndarray:
    from bshmd.decode.image import decode_image

    image = decode_image(Path(path), max_pixels=200_000_000, max_file_bytes=1 << 30)
    image.setflags(write=False)  # shared between calls
    return image


def feather(alpha: np.ndarray, feather_px: float) -> np.ndarray:
    """The matte blurred with a Gaussian of sigma ``feather_px`` (unchanged at 0)."""
    if feather_px <= 0:
        return alpha
    import cv2

    return cv2.GaussianBlur(alpha, (0, 0), sigmaX=feather_px, sigmaY=feather_px,
                            borderType=cv2.BORDER_REPLICATE)


_STRIP_ROWS = 256  # rows blended at a time: integer temporaries stay a few MB at any size


def composite(rgb: np.ndarray, alpha: np.ndarray, outputs: OutputsConfig) -> np.ndarray:
    """rgb·a + background·(1−a), rounded to uint8.

    In 16-bit integers, a strip of rows at a time: a float32 copy of a 24 MP frame is 290 MB
    per temporary. The result equals the exact rounding of the float formula, which differs
    from float32 rounding by at most 1 level (at exact halves).
    """
    import numpy as np

    height, width = alpha.shape
    if outputs.background_image is not None:
        background: np.ndarray = _cover(load_background(outputs.background_image), height, width)
    else:
        background = np.empty((1, 1, 3), np.uint8)
        background[:] = _background_rgb(outputs.background)
    out = np.empty((height, width, 3), np.uint8)
    for top in range(0, height, _STRIP_ROWS):
        rows = slice(top, top + _STRIP_ROWS)
        a = alpha[rows, :, None].astype(np.uint16)
        behind = background if background.shape[0] == 1 else background[rows]
        mixed = rgb[rows] * a  # uint16: at most 255·255
        mixed += behind * (255 - a)
        # round(x / 255) for 0 <= x <= 255·255, without a division.
        mixed += 128
        mixed += mixed >> 8
        mixed >>= 8
        out[rows] = mixed
    return out


class CutoutStrips:
    """The cut-out's RGBA rows made from the photo and its matte a strip at a time, for
    encode_png: the interleaved 4-channel frame (96 MB at 24 MP) never exists whole."""

    def __init__(self, rgb: np.ndarray, alpha: np.ndarray, clear_transparent: bool) -> None:
        self._rgb, self._alpha, self._clear = rgb, alpha, clear_transparent
        self.shape = (*alpha.shape, 4)

    def rows(self, top: int, bottom: int) -> np.ndarray:
        return cutout_pixels(self._rgb[top:bottom], self._alpha[top:bottom], self._clear)


def cutout_pixels(rgb: np.ndarray, alpha: np.ndarray, clear_transparent: bool) -> np.ndarray:
    """H×W×4 RGBA: the photo with the matte as alpha (black under alpha 0 when asked)."""
    import cv2
    import numpy as np

    if not clear_transparent:
        return np.dstack([rgb, alpha])
    # Colour under alpha 0 is invisible; black there makes a typical cut-out PNG about 5×
    # smaller and 4-10× faster to encode. cv2 masks and interleaves in two passes; numpy's
    # boolean index (rgba[alpha == 0] = 0) took 1.0 CPU-s at 24 MP, this 0.05 s.
    return cv2.merge([cv2.copyTo(rgb, alpha), alpha])


# Raw pixel bytes from which one PNG is deflated on several threads. Below it the threads
# cost more CPU than they save time: on 2 cores a 640×480 cut-out (1.2 MB raw) took 2.6 ms on
# two threads against 2.3 ms on one, a 1280×960 one (4.7 MB) 7.9 ms against 9.5 ms but
# 13.1 CPU-ms against 9.5; and each encode starting threads of its own made a backlog of
# small photos slower still.
PARALLEL_PNG_BYTES = 4 << 20


def png_threads(raw_bytes: int) -> int:
    """Threads the PNG of ``raw_bytes`` of pixels may use: every usable core for a large one,
    so a lone large image is not encoded on one core while the others idle (with a backlog,
    write workers share them); one below PARALLEL_PNG_BYTES."""
    from bshmd.cpus import usable_cpus

    return usable_cpus() if raw_bytes >= PARALLEL_PNG_BYTES else 1


def _check_shapes(rgb: np.ndarray, alpha: np.ndarray) -> None:
    import numpy as np

    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected a uint8 H×W×3 image, got {rgb.dtype} {rgb.shape}")
    if alpha.dtype not in (np.uint8, np.float32) or alpha.shape != rgb.shape[:2]:
        raise ValueError(f"expected a uint8 or float32 H×W matte of the image's size {rgb.shape[:2]}, got "
                         f"{alpha.dtype} {alpha.shape}")


def alpha16(alpha: np.ndarray) -> np.ndarray:
    """The matte as uint16 0..65535: uint8 mattes ×257, float mattes (0..1) rounded, uint16 as is."""
    import numpy as np

    if alpha.dtype == np.uint16:
        return alpha
    if alpha.dtype == np.uint8:
        return alpha.astype(np.uint16) * np.uint16(257)
    return np.rint(np.clip(alpha, 0.0, 1.0) * 65535.0).astype(np.uint16)


def _png(pixels: np.ndarray | CutoutStrips, level: int, chunks: list[tuple[bytes, bytes]]) -> bytes:
    """A PNG of ``pixels`` with metadata ``chunks`` before IDAT: 8 bits by bshmd.outputs.png
    (the fast encoder, on every usable core when large), 16 bits by OpenCV."""
    import numpy as np

    from bshmd.outputs.png import encode_png

    if isinstance(pixels, np.ndarray) and pixels.dtype == np.uint16:
        import cv2

        from bshmd.outputs.metadata import add_png_chunks

        order = cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(pixels, order), [cv2.IMWRITE_PNG_COMPRESSION, level])
        if not ok:
            raise ValueError("OpenCV could not encode the 16-bit PNG")
        return add_png_chunks(encoded.tobytes(), chunks)
    return encode_png(pixels, level=level, chunks=chunks, threads=png_threads(math.prod(pixels.shape)))


def render_outputs(rgb: np.ndarray, alpha: np.ndarray, outputs: OutputsConfig, *,
                   photo: Decoded | None = None, notes: list[str] | None = None) -> dict[str, bytes]:
    """format → encoded file, for every format in ``outputs.formats``.

    ``rgb`` is what the network saw (sRGB); ``photo`` the decoded input, whose own pixels,
    16-bit pixels and metadata the results carry as ``outputs.color``, ``metadata`` and
    ``bit_depth`` say. Without ``photo``, ``rgb`` is the photo and results carry no metadata.
    ``alpha`` is uint8, or float32 in 0..1 (then 16-bit results take their alpha from it).
    Blocks a format cannot hold are named in ``notes`` (for the file's log line).
    """
    import dataclasses

    import numpy as np
    from PIL import Image

    from bshmd.outputs import metadata
    from bshmd.outputs.colour import is_srgb

    _check_shapes(rgb, alpha)
    notes = notes if notes is not None else []
    meta: PhotoMeta = metadata.result_meta(photo.meta if photo is not None else None, outputs)
    pixels = rgb if photo is None or outputs.color == "srgb" else photo.rgb
    _check_shapes(pixels, alpha)
    pixels16 = None
    if outputs.bit_depth == "keep" and photo is not None and photo.rgb16 is not None:
        if outputs.color == "keep" or is_srgb(photo.meta.icc):
            pixels16 = photo.rgb16
        else:  # LittleCMS through Pillow converts 8-bit RGB only
            notes.append("bit_depth: 16-bit input converted to sRGB is written with 8 bits")
    precise = None
    if alpha.dtype != np.uint8:
        # A float matte (0..1) as upsampling computes it: 16-bit results keep its precision
        # instead of widening an 8-bit copy.
        precise = np.clip(feather(alpha, outputs.feather_px), 0.0, 1.0)
        alpha = np.rint(precise * 255.0).astype(np.uint8)
    else:
        alpha = feather(alpha, outputs.feather_px)
    # The retoucher's formats (tiff, psd) keep the photo's own colour at the edges, as their
    # 16-bit pixels do; what shows the subject over something new gets the cleaned colour.
    photo_pixels = pixels
    pixels = clean_edges(pixels, alpha, outputs.edges)
    if outputs.layout is not None:
        if {"tiff", "psd"} & set(outputs.formats):
            photo_pixels, _ = apply_layout(photo_pixels, alpha, outputs.layout)
        framed = alpha
        pixels, alpha = apply_layout(pixels, alpha, outputs.layout)
        if alpha is not framed:  # placed on a canvas, resampled in 8 bits
            precise = None
            if pixels16 is not None:
                pixels16 = None
                notes.append("bit_depth: a layout canvas is written with 8 bits")
    no_icc = dataclasses.replace(meta, icc=None)  # a grey matte cannot carry an RGB profile
    level = outputs.png_compression
    blobs: dict[str, bytes] = {}
    rgba = None
    if {"webp", "avif"} & set(outputs.formats):
        rgba = cutout_pixels(pixels, alpha, outputs.clear_transparent)
    for fmt in outputs.formats:
        buffer = io.BytesIO()
        if fmt == "cutout":
            if pixels16 is not None:
                rgba16 = np.dstack([pixels16, alpha16(alpha if precise is None else precise)])
                if outputs.clear_transparent:
                    rgba16[alpha == 0, :3] = 0
                blobs[fmt] = _png(rgba16, level, metadata.png_chunks(meta))
            else:
                blobs[fmt] = _png(CutoutStrips(pixels, alpha, outputs.clear_transparent), level,
                                  metadata.png_chunks(meta))
            continue
        if fmt == "alpha":
            blobs[fmt] = _png(alpha, level, metadata.png_chunks(no_icc))
            continue
        if fmt == "composite":
            flat = composite(pixels, alpha, outputs)
            if outputs.composite_format == "jpeg":
                args, skipped = metadata.jpeg_args(meta)
                notes.extend(f"composite {why}" for why in skipped)
                # Where alpha is 0 the composite is the plain colour exactly; the JPEG keeps it so.
                plain = (None if outputs.background_image is not None or outputs.jpeg_background == "plain"
                         else BackgroundPixels(alpha == 0, _background_rgb(outputs.background)))
                buffer.write(encode_jpeg(Image.fromarray(flat, "RGB"), outputs.jpeg_quality,
                                         outputs.jpeg_max_bytes, plain, **args))
            else:
                blobs[fmt] = _png(flat, level, metadata.png_chunks(meta))
                continue
        elif fmt == "webp":
            lossless = outputs.webp_quality == 100
            # Lossless: "quality" is encoder effort; 100 is several times slower for ~2 % smaller.
            # exact=True keeps the colour under fully transparent pixels as the PNG cut-out has it.
            Image.fromarray(rgba, "RGBA").save(buffer, "WEBP", quality=50 if lossless else outputs.webp_quality,
                                               lossless=lossless, exact=True, **metadata.webp_avif_args(meta))
        elif fmt == "avif":
            Image.fromarray(rgba, "RGBA").save(buffer, "AVIF", quality=outputs.avif_quality,
                                               **metadata.webp_avif_args(meta))
        elif fmt == "tiff":
            from bshmd.outputs.tiff import encode_tiff

            # The retoucher's format: the photo's colour stays under transparent pixels too.
            tiff_rgba = (np.dstack([pixels16, alpha16(alpha if precise is None else precise)]) if pixels16 is not None
                         else np.dstack([photo_pixels, alpha]))
            blobs[fmt] = encode_tiff(tiff_rgba, meta, compression=outputs.tiff_compression)
            continue
        elif fmt == "psd":
            from bshmd.outputs.psd import encode_psd

            blobs[fmt] = encode_psd(photo_pixels, alpha, meta)
            continue
        else:  # the config model allows no other value
            raise ValueError(f"unknown output format {fmt!r}")
        blobs[fmt] = buffer.getvalue()
    return blobs
