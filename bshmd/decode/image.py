"""Turn one input file into a ``Decoded`` (8-bit RGB, 16-bit where kept, colour and metadata),
or say precisely why it cannot be.

Every refusal is an ``InputRejected`` with a stable reason code (the quarantine filters on
it) and ``measured`` holding what was found. The order of the checks is the point: cheap
checks on the file first (size, signature), then the header (pixel count) before anything is
decoded, so a 30,000 × 30,000 "image" of 200 bytes is refused without allocating 2.7 GB.

Conversions, so BSHM always gets the photograph as the photographer saw it:

- EXIF orientation is applied (a portrait shot with the camera turned stays upright).
- CMYK (including Adobe's inverted CMYK JPEGs, which Pillow recognises by their APP14
  marker), greyscale, palette and YCbCr images become RGB.
- 16-bit images (PNG, TIFF) are scaled 0..65535 → 0..255 with rounding. Pillow reads 48-bit
  RGB by keeping the high byte only, so those are decoded with OpenCV instead.
- An alpha channel (RGBA, LA, PA, palette transparency) is dropped: BSHM mattes the photo, and
  what lies under transparent pixels is whatever the exporting program left there.
- Multi-frame files (animated GIF/WebP, multi-page TIFF) give their first frame; the frame
  count is in ``measured``.
- The ICC profile, EXIF, XMP, IPTC and resolution are read from the same opened header
  (bshmd.decode.meta); a broken block is dropped with its reason, never the photo. Pixels stay
  in the file's own colour space: converting for the network is the caller's business.
- Camera RAW files (by extension) are developed by bshmd.decode.raw; HEIC/HEIF is opened
  through Pillow once bshmd.decode.heif has registered pillow-heif.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bshmd.decode.heif import register_opener as _register_heif
from bshmd.decode.raw import decode_raw, is_raw
from bshmd.decode.record import Decoded
from bshmd.errors import InputRejected

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

# (offset, bytes) that start each format Pillow (or pillow-heif) can decode for us.
_SIGNATURES: tuple[tuple[str, int, bytes], ...] = (
    ("JPEG", 0, b"\xff\xd8\xff"),
    ("PNG", 0, b"\x89PNG\r\n\x1a\n"),
    ("GIF", 0, b"GIF87a"),
    ("GIF", 0, b"GIF89a"),
    ("BMP", 0, b"BM"),
    ("TIFF", 0, b"II*\x00"),
    ("TIFF", 0, b"MM\x00*"),
    ("TIFF", 0, b"II+\x00"),  # BigTIFF
    ("TIFF", 0, b"MM\x00+"),
)
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif")
_CONVERTIBLE_MODES = {
    "1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV",
    "I", "I;16", "I;16L", "I;16B", "I;16N", "F",
}


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str
    mode: str


def sniff_format(head: bytes) -> str | None:
    """The image format named by the first bytes of a file, or None when it is not an image."""
    for name, offset, magic in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "HEIF"
    return None


# Pillow's own decompression-bomb check warns (an error under pytest) or raises for images
# above Image.MAX_IMAGE_PIXELS, a process-wide setting. decode_image applies its own,
# configured limit from the header before decoding, so Pillow's is switched off while any
# decode is in progress and restored when the last one finishes.
_bomb_lock = threading.Lock()
_bomb_users = 0
_bomb_saved: int | None = None


@contextlib.contextmanager
def own_pixel_limit() -> Iterator[None]:
    """Pillow's own pixel limit off while the block runs: the caller checks the configured one.

    Every opener of a picture whose size bshmd has checked itself (the decoder, review's
    thumbnails and tiles) goes through this one switch, so the process-wide setting is
    restored only when the last of them finishes.
    """
    from PIL import Image

    global _bomb_users, _bomb_saved
    with _bomb_lock:
        if _bomb_users == 0:
            _bomb_saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
        _bomb_users += 1
    try:
        yield
    finally:
        with _bomb_lock:
            _bomb_users -= 1
            if _bomb_users == 0:
                Image.MAX_IMAGE_PIXELS = _bomb_saved


def _read_file(path: Path, max_file_bytes: int) -> bytes:
    """The whole file, refusing empty, oversized, vanished and non-regular files.

    O_NONBLOCK: a FIFO named like a photo must not hang a decode worker on open().
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise InputRejected("unreadable", f"{path.name}: the file vanished before it was read",
                            {"error": "ENOENT"}) from exc
    except OSError as exc:
        raise InputRejected("unreadable", f"{path.name}: cannot open: {exc.strerror or exc}",
                            {"error": errno.errorcode.get(exc.errno or 0, str(exc.errno))}) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputRejected("unreadable", f"{path.name}: not a regular file",
                                {"file_type": stat.filemode(info.st_mode)[0]})
        size = info.st_size
        if size == 0:
            raise InputRejected("empty", f"{path.name}: the file is empty (0 bytes)", {"bytes": 0})
        if size > max_file_bytes:
            raise InputRejected(
                "file_too_large",
                f"{path.name}: {size} bytes is more than limits.max_file_bytes ({max_file_bytes})",
                {"bytes": size, "max_file_bytes": max_file_bytes},
            )
        chunks = []
        remaining = max_file_bytes + 1  # the file may grow after fstat; never read past the limit
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        raise InputRejected("unreadable", f"{path.name}: read error: {exc.strerror or exc}",
                            {"error": errno.errorcode.get(exc.errno or 0, str(exc.errno))}) from exc
    finally:
        os.close(fd)
    if len(data) > max_file_bytes:
        raise InputRejected("file_too_large", f"{path.name}: grew beyond limits.max_file_bytes while read",
                            {"bytes": len(data), "max_file_bytes": max_file_bytes})
    if not data:
        raise InputRejected("empty", f"{path.name}: the file is empty (0 bytes)", {"bytes": 0})
    return data


def _jpeg_complete(data: bytes) -> bool:
    """A JPEG ends with EOI (FF D9); libjpeg silently invents one for a cut-off file.

    Some cameras append a trailer after EOI, and an embedded EXIF thumbnail has an EOI of its
    own, so accept an EOI anywhere after the last start-of-scan marker.
    """
    body = data.rstrip(b"\x00")
    if body.endswith(b"\xff\xd9"):
        return True
    last_sos = body.rfind(b"\xff\xda")
    last_eoi = body.rfind(b"\xff\xd9")
    return last_sos != -1 and last_eoi > last_sos


def _png_bit_depth(data: bytes) -> int | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 26:
        return data[24]
    return None


def _is_16bit_colour(img: Image.Image, data: bytes) -> bool:
    """Pillow decodes 48/64-bit RGB(A) to 8 bits by dropping the low byte."""
    if img.mode not in ("RGB", "RGBA"):
        return False
    if img.format == "PNG":
        return _png_bit_depth(data) == 16
    if img.format == "TIFF":
        bits = getattr(img, "tag_v2", {}).get(258)
        return bool(bits) and max(bits if isinstance(bits, tuple) else (bits,)) == 16
    return False


def _scale16(array: np.ndarray) -> np.ndarray:
    import numpy as np

    wide = array.astype(np.uint32)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """EXIF orientation tag 1..8 applied to an H×W×C array (as ImageOps.exif_transpose does)."""
    import numpy as np

    if orientation == 2:
        array = array[:, ::-1]
    elif orientation == 3:
        array = array[::-1, ::-1]
    elif orientation == 4:
        array = array[::-1]
    elif orientation == 5:
        array = np.swapaxes(array, 0, 1)
    elif orientation == 6:
        array = np.rot90(array, k=-1)
    elif orientation == 7:
        array = np.rot90(array, k=1)[::-1]
    elif orientation == 8:
        array = np.rot90(array, k=1)
    return np.ascontiguousarray(array)


def _decode_16bit_with_cv2(data: bytes, name: str, measured: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    """(8-bit RGB, the 16-bit RGB it was scaled from or None when the file held 8 bits after all)."""
    import cv2
    import numpy as np

    raw = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.ndim != 3 or raw.shape[2] not in (3, 4):
        raise InputRejected("corrupt", f"{name}: cannot decode the 16-bit image", measured)
    rgb = cv2.cvtColor(raw[:, :, :3], cv2.COLOR_BGR2RGB)
    if rgb.dtype == np.uint16:
        return _scale16(rgb), rgb
    return rgb.astype(np.uint8), None


def _to_rgb8(img: Image.Image, name: str, measured: dict[str, Any]) -> np.ndarray:
    import numpy as np

    mode = img.mode
    if mode not in _CONVERTIBLE_MODES:
        raise InputRejected("unsupported", f"{name}: pixel mode {mode} cannot be converted to RGB", measured)
    if mode.startswith("I;16") or mode == "I":
        grey = np.asarray(img)
        if mode == "I" and grey.size and int(grey.max()) > 65535:
            grey = grey.astype(np.float64) * (255.0 / float(grey.max()))
            grey8 = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
        else:
            grey8 = _scale16(np.clip(grey, 0, 65535))
        return np.ascontiguousarray(np.repeat(grey8[:, :, None], 3, axis=2))
    if mode == "F":
        grey = np.asarray(img, dtype=np.float64)
        top = 1.0 if grey.size and float(np.nanmax(grey)) <= 1.0 else 255.0
        grey8 = np.clip(np.rint(np.nan_to_num(grey) * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey8[:, :, None], 3, axis=2))
    if mode == "P":
        # Palette images with transparency must go through RGBA, else Pillow warns.
        img = img.convert("RGBA")
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy()


def probe_image(path: Path) -> ImageInfo:
    """Width, height, format and mode from the header only (nothing is decoded)."""
    from PIL import Image, UnidentifiedImageError

    if sniff_format(_head(path)) == "HEIF":
        _register_heif()
    try:
        with own_pixel_limit(), Image.open(path) as img:
            return ImageInfo(img.width, img.height, img.format or "?", img.mode)
    except UnidentifiedImageError as exc:
        raise InputRejected("not_an_image", f"{path.name}: not an image Pillow can identify") from exc


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read(32)
    except OSError:
        return b""


def decode_image(path: Path, *, max_pixels: int, max_file_bytes: int) -> np.ndarray:
    """The image at ``path`` as a contiguous uint8 H×W×3 RGB array, EXIF orientation applied.

    For callers that want the pixels alone (backgrounds, previews, thumbnails); results are
    made from ``decode_photo``, which also keeps the colour profile and metadata.
    """
    return decode_photo(path, max_pixels=max_pixels, max_file_bytes=max_file_bytes).rgb


def decode_photo(path: Path, *, max_pixels: int, max_file_bytes: int, keep_16bit: bool = False) -> Decoded:
    """The image at ``path`` with its metadata; ``keep_16bit`` also keeps a 16-bit input's
    uint16 pixels (``Decoded.rgb16``), for ``outputs.bit_depth: keep``."""
    from PIL import Image, UnidentifiedImageError

    from bshmd.decode.meta import collect_warnings, grey_to_srgb, read_meta, read_orientation

    path = Path(path)
    name = path.name
    data = _read_file(path, max_file_bytes)
    measured: dict[str, Any] = {"bytes": len(data)}
    if is_raw(path):  # camera RAW goes by its extension: bshmd.decode.raw
        return decode_raw(data, name, max_pixels=max_pixels, measured=measured)
    kind = sniff_format(data[:32])
    if kind is None:
        raise InputRejected("not_an_image", f"{name}: no known image signature at the start of the file",
                            {**measured, "head": data[:8].hex()})
    measured["format"] = kind
    if kind == "HEIF" and not _register_heif():
        raise InputRejected("unsupported", f"{name}: HEIF/HEIC needs the pillow-heif package", measured)
    if kind == "JPEG" and not _jpeg_complete(data):
        raise InputRejected("truncated", f"{name}: the JPEG data ends without its end-of-image marker",
                            measured)

    with own_pixel_limit():
        try:
            with collect_warnings() as opening:
                img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError as exc:
            # The signature said image, the header disagrees: damaged, or cut off inside it.
            code = "truncated" if kind == "PNG" and len(data) < 33 else "corrupt"
            raise InputRejected(code, f"{name}: starts like {kind} but its header cannot be read",
                                measured) from exc
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
            # Errors in the header itself: a file cut off inside its header reads as EOF.
            code = "truncated" if _looks_truncated(exc) else "corrupt"
            raise InputRejected(code, f"{name}: cannot read the {kind} header: {exc}", measured) from exc
        with img:
            measured.update(width=img.width, height=img.height, mode=img.mode)
            if img.width < 1 or img.height < 1:
                raise InputRejected("corrupt", f"{name}: the header gives an empty size", measured)
            pixels = img.width * img.height
            if pixels > max_pixels:
                raise InputRejected(
                    "too_many_pixels",
                    f"{name}: {img.width}×{img.height} = {pixels} pixels is more than "
                    f"limits.max_pixels ({max_pixels}); refused before decoding",
                    {**measured, "pixels": pixels, "max_pixels": max_pixels},
                )
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                measured["frames"] = frames
            orientation = read_orientation(img)
            if orientation != 1:
                measured["orientation"] = orientation
            meta = read_meta(img, orientation=orientation, opening=[str(w.message) for w in opening])
            rgb16 = None
            try:
                if _is_16bit_colour(img, data):
                    measured["bits"] = 16
                    rgb, rgb16 = _decode_16bit_with_cv2(data, name, measured)
                elif meta.icc is not None and meta.icc[16:20] == b"GRAY":
                    img.load()
                    rgb = _to_rgb8(grey_to_srgb(img, meta.icc), name, measured)
                    meta = dataclasses.replace(meta, icc=None)  # now sRGB, which untagged means
                else:
                    img.load()
                    rgb = _to_rgb8(img, name, measured)
            except InputRejected:
                raise
            except (OSError, SyntaxError, ValueError, EOFError, IndexError, Image.DecompressionBombError,
                    MemoryError) as exc:
                code = "truncated" if _looks_truncated(exc) else "corrupt"
                raise InputRejected(code, f"{name}: cannot decode the {kind} data: {exc}", measured) from exc
    rgb = _apply_orientation(rgb, orientation)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputRejected("unsupported", f"{name}: decoded to an unexpected shape {rgb.shape}", measured)
    if rgb16 is not None:
        rgb16 = _apply_orientation(rgb16, orientation) if keep_16bit else None
    return Decoded(rgb, rgb16, meta)


def _looks_truncated(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, EOFError) or "truncated" in text or "end of file" in text or "premature" in text
