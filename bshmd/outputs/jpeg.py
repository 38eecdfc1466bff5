"""The composite as JPEG: an exact plain background, full-resolution colour, a byte limit.

Marketplaces ask for exactly #ffffff around the product, and JPEG's 8×8 block transform does
not give it on its own: a background pixel that shares a block with the subject's edge decodes
a few levels off (246..254 next to the test portrait's edge at quality 92), because quantising
the block's coefficients rings across the whole block.

What keeps it exact is the decoder's clipping. After the inverse transform every decoder clips
each component to 0..255, so a component aimed past 255 (or below 0) still decodes to exactly
255 (or 0), however the quantisation moves it. With the usual YCbCr components this cannot be
used: white is Y 255 with Cb and Cr at exactly 128, a value in the middle of their range that
the quantised chroma of an edge block misses by several levels, and keeping it would cost the
subject its colour in every edge block. So when each channel of the background is 0 or 255
(white, black, the pure primaries) and the composite shows some of it, the JPEG is written with
RGB components (Adobe colour transform 0, which libjpeg-based decoders, browsers and Pillow
honour), and the coefficients of every block holding background pixels are then set so that
those pixels decode ``HEADROOM`` levels past the clip point (``_BackgroundBlocks.pin``): the
subject's pixels keep their own values as targets, only the background's are raised.
Whole-background blocks become flat; in edge blocks the background's targets are raised by
what the last quantisation left them short, a few rounds, and what is still short then is
made up by raising the block's DC coefficient (which lifts every pixel of the block by the DC
step / 8). Coefficients are read and written with jpeglib (libjpeg's own coefficient access,
no second lossy pass); the APPn blocks (EXIF, ICC, XMP, IPTC) are carried over.

Exact in libjpeg's integer and float inverse transforms (Pillow, OpenCV, browsers) up to
quality 95 on the hardest texture; from 96 on the DC step is 1 and baseline JPEG's DC range
leaves little room past the clip point, so a few pixels of such texture can end 1 level off.

RGB components cost bytes, as colour is quantised as finely as brightness: 1.36× the YCbCr
file at the same quality on the smooth test portrait, 2.2-2.6× on grainy photo-like content
(bench/bench_jpeg_background.py), with higher fidelity. Other background colours keep YCbCr; there
every block holding only background decodes to the colour, and edge blocks come within a few
levels of it (README, "Layout").

Chroma stays at full resolution (4:4:4): 4:2:0 upsampling would blend each colour edge into
the neighbouring pixels, and soft edges keep their colour.

``outputs.jpeg_max_bytes``: marketplaces cap the file size. The quality starts at
``jpeg_quality`` and goes down by ``QUALITY_STEP`` until the file (background pinned, blocks
counted) fits; below ``MIN_QUALITY`` artefacts are plain to see, so an image that still does
not fit is refused (``output_too_large``) instead of published.
"""

from __future__ import annotations

import io
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bshmd.errors import InputRejected

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

QUALITY_STEP = 5
MIN_QUALITY = 40
PIN_QUALITY = 40  # the lowest quality whose background is pinned (see encode_jpeg)
# Levels past the clip point a background pixel is aimed at: decoders' inverse transforms
# (integer, float, SIMD) differ from the exact one by about a level; three leave room.
HEADROOM = 3.0
_ROUNDS = 6  # rounds of aiming the short background pixels higher, before lifting the block
# Baseline JPEG codes a DC difference between neighbouring blocks in at most 11 bits (2047).
# The DC values of 8-bit pixels run from -1024 (black) to 1016 (white) at DC step 1, and one
# component's background is either 0 or 255, so a pinned white may go up to 1023 and a pinned
# black down to -1031. AC values take at most 10 bits.
_DC_DIFFERENCE = 2047
_DC_BLACK, _DC_WHITE = -1024, 1016
_AC_LIMIT = 1023


@dataclass(frozen=True)
class BackgroundPixels:
    """The pixels of a composite that show nothing but a plain background colour."""

    mask: np.ndarray  # bool H×W: True where the composite is exactly ``colour`` (alpha 0)
    colour: tuple[int, int, int]

    @property
    def clips(self) -> bool:
        """Whether every channel is at an end of the range, where decoders' clipping keeps it exact."""
        return all(channel in (0, 255) for channel in self.colour)


def _encode(image: Image.Image, quality: int, metadata: dict[str, Any], *, rgb: bool) -> bytes:
    buffer = io.BytesIO()
    # RGB components are pinned and written again (with optimised Huffman tables then).
    image.save(buffer, "JPEG", quality=quality, subsampling=0, optimize=not rgb, keep_rgb=rgb, **metadata)
    return buffer.getvalue()


def encode_jpeg(image: Image.Image, quality: int, max_bytes: int | None = None,
                background: BackgroundPixels | None = None, **metadata: Any) -> bytes:
    """``image`` (RGB) as a 4:4:4 JPEG at ``quality``, or lower until it fits ``max_bytes``.

    ``background``: pixels to decode to exactly their colour (see the module docstring);
    ``metadata`` are Pillow's JPEG arguments for the blocks (bshmd.outputs.metadata.jpeg_args),
    counted in the size as they are in the file.
    """
    pinned = background is not None and background.clips and bool(background.mask.any())

    all_metadata = metadata
    if pinned:
        # Pillow writes a JFIF header for a resolution, and JFIF means YCbCr: decoders would
        # read RGB components as YCbCr. The resolution stays in the EXIF block (result_meta).
        metadata = {key: value for key, value in metadata.items() if key != "dpi"}

    def attempt(at: int) -> bytes:
        # Below PIN_QUALITY the lifts are large enough to overflow libjpeg's fast integer
        # transform (`-dct fast`), which then decodes background pixels far off, even black;
        # a file a few levels off is the lesser harm, so the plain YCbCr file is written.
        pin = pinned and at >= PIN_QUALITY
        blob = _encode(image, at, metadata if pin else all_metadata, rgb=pin)
        if pin:
            import numpy as np

            assert background is not None  # for the type checker: pinned says so
            blob = pin_background(blob, np.asarray(image), background)
        return blob

    blob = attempt(quality)
    if max_bytes is None or len(blob) <= max_bytes:
        return blob
    tried = [(quality, len(blob))]  # (quality, bytes) of each attempt, for the quarantine entry
    while quality - QUALITY_STEP >= MIN_QUALITY:
        quality -= QUALITY_STEP
        blob = attempt(quality)
        if len(blob) <= max_bytes:
            return blob
        tried.append((quality, len(blob)))
    raise InputRejected(
        "output_too_large",
        f"the composite JPEG is {len(blob)} bytes even at quality {quality}; "
        f"outputs.jpeg_max_bytes is {max_bytes}",
        {"jpeg_max_bytes": max_bytes, "smallest_bytes": len(blob), "qualities_tried": [q for q, _ in tried]},
    )


def pin_background(blob: bytes, pixels: np.ndarray, background: BackgroundPixels) -> bytes:
    """``blob`` (a JPEG of ``pixels`` with RGB components) with the background's pixels decoding exactly.

    Every channel of ``background.colour`` must be 0 or 255. Only the coefficients of blocks
    holding background pixels change; the file's other segments are carried over.
    """
    import jpeglib

    if not background.clips:
        raise ValueError(f"background {background.colour}: only channels of 0 or 255 decode exactly")
    blocks = _BackgroundBlocks.of(background.mask)
    with tempfile.TemporaryDirectory(prefix="bshmd-jpeg-") as folder:
        source, target = Path(folder, "encoded.jpg"), Path(folder, "pinned.jpg")
        source.write_bytes(blob)
        jpeg = jpeglib.read_dct(str(source))
        if jpeg.jpeg_color_space != jpeglib.JCS_RGB:
            raise ValueError(f"not a JPEG with RGB components: {jpeg.jpeg_color_space}")
        components = [jpeg.Y, jpeg.Cb, jpeg.Cr]  # R, G, B here
        for index, value in enumerate(background.colour):
            blocks.pin(components[index], jpeg.get_component_qt(index), pixels[:, :, index], value)
        jpeg.Y, jpeg.Cb, jpeg.Cr = components
        # libjpeg writes its own Adobe segment (colour transform 0) for RGB components.
        jpeg.markers = [marker for marker in jpeg.markers if marker.type != jpeglib.MarkerType.JPEG_APP14]
        jpeg.write_dct(str(target), flags=["+optimize_coding"])
        return target.read_bytes()


def _transform() -> np.ndarray:
    """64×64: pixel (y·8 + x) of coefficient (v·8 + u) at 1, JPEG's orthonormal 8×8 DCT."""
    import numpy as np

    n = np.arange(8)
    basis = np.sqrt(2.0 / 8.0) * np.cos((2 * n[None, :] + 1) * n[:, None] * np.pi / 16.0)  # [frequency, sample]
    basis[0] /= np.sqrt(2.0)
    return np.einsum("vy,ux->yxvu", basis, basis).reshape(64, 64)


@dataclass(frozen=True)
class _BackgroundBlocks:
    """Which 8×8 blocks hold background pixels, found once for the three components."""

    whole: np.ndarray  # bool rows × cols: every pixel of the block on the image is background
    at: tuple[np.ndarray, np.ndarray]  # block rows, block columns of the edge blocks (some background)
    rows: np.ndarray  # n × 8 × 1 pixel rows of each edge block, clipped to the image (its padding)
    cols: np.ndarray  # n × 1 × 8 pixel columns, likewise
    outside: np.ndarray  # bool n × 64: background pixels of each edge block (padding: False)

    @classmethod
    def of(cls, mask: np.ndarray) -> _BackgroundBlocks:
        import numpy as np

        height, width = mask.shape
        rows, cols = -(-height // 8), -(-width // 8)
        padded = np.zeros((rows * 8, cols * 8), np.uint8)
        padded[:height, :width] = mask
        # Counts per block in uint8 (at most 64): a tenth of the time of a boolean reduction.
        count = padded.reshape(rows, 8, cols * 8).sum(axis=1, dtype=np.uint8)
        count = count.reshape(rows, cols, 8).sum(axis=2, dtype=np.uint8)
        # The encoder pads the image to whole blocks; padding pixels are nobody's.
        on_image = np.outer(np.minimum(8, height - 8 * np.arange(rows)), np.minimum(8, width - 8 * np.arange(cols)))
        whole = (count > 0) & (count == on_image)
        at = np.nonzero((count > 0) & ~whole)
        eight = np.arange(8)
        pixel_rows = (at[0][:, None] * 8 + eight)[:, :, None]
        pixel_cols = (at[1][:, None] * 8 + eight)[:, None, :]
        real = (pixel_rows < height) & (pixel_cols < width)
        pixel_rows, pixel_cols = np.minimum(pixel_rows, height - 1), np.minimum(pixel_cols, width - 1)
        outside = (mask[pixel_rows, pixel_cols] & real).reshape(-1, 64)
        return cls(whole, at, pixel_rows, pixel_cols, outside)

    def pin(self, coefficients: np.ndarray, table: np.ndarray, channel: np.ndarray, value: int) -> None:
        """Set ``coefficients`` (rows × cols × 8 × 8, quantised by ``table``) in place so that every
        background pixel decodes at least ``HEADROOM`` past ``value`` (0 or 255)."""
        import numpy as np

        # In "towards the clip" units: level-shifted, and negated for 0, so that the aim is
        # always "at least ``bound``" and the clip point itself is 127 (255) or 128 (0).
        sign = 1.0 if value == 255 else -1.0
        bound = (127.0 if value == 255 else 128.0) + HEADROOM
        steps = table.astype(np.float64).reshape(64)

        # The DC range in these units: the far end is what the other blocks' DC values allow.
        low, high = (_DC_BLACK, _DC_BLACK + _DC_DIFFERENCE) if sign > 0 else (-_DC_WHITE, _DC_DIFFERENCE - _DC_WHITE)
        flat = min(math.ceil(bound * 8.0 / steps[0]), high)
        # Near quality 100 (DC step 1 or 2) the DC range caps a flat block just past the clip
        # point: the aim is no higher there, and that quantisation is too fine to need more.
        bound = min(bound, flat * steps[0] / 8.0)
        coefficients[self.whole] = 0
        coefficients[self.whole, 0, 0] = int(sign) * flat
        if self.outside.shape[0] == 0:
            return
        basis = _transform()
        outside = self.outside
        # Baseline JPEG's value ranges bound each coefficient (they bind only near quality 100,
        # on the hardest texture); the rounds below see the bounded values and make up for them.

        def quantise(aim: np.ndarray) -> np.ndarray:
            quantised = np.rint(aim @ basis / steps)
            quantised[:, 0] = quantised[:, 0].clip(low, high)
            quantised[:, 1:] = quantised[:, 1:].clip(-_AC_LIMIT, _AC_LIMIT)
            return quantised

        # The subject's pixels are aimed at their own values, the background's at the bound.
        target = sign * (channel[self.rows, self.cols].reshape(-1, 64).astype(np.float64) - 128.0)
        target[outside] = bound
        for _ in range(_ROUNDS):
            quantised = quantise(target)
            decoded = (quantised * steps) @ basis.T
            short = np.where(outside, bound - decoded, 0.0).clip(min=0.0)
            if not short.any():
                break
            # A background pixel that made it is aimed at what it decoded to (the least change
            # to the block); one that fell short is aimed higher by what it missed.
            target = np.where(outside & (short == 0.0), decoded, target + short)
        # Raising the DC coefficient by one lifts every pixel of the block by a DC step / 8:
        # enough of them lift the shortest background pixel past the bound (and the block's
        # subject by as much: a fraction of a level to a few).
        quantised[:, 0] = (quantised[:, 0] + np.ceil(short.max(axis=1) * 8.0 / steps[0])).clip(low, high)
        coefficients[self.at] = (sign * quantised).reshape(-1, 8, 8).astype(coefficients.dtype)
