"""Read an opened image's colour profile and metadata into a PhotoMeta, dropping what is broken.

A studio's photo carries an ICC profile, EXIF (artist, copyright, camera, GPS), XMP and IPTC
(keywords, captions) and a resolution. Each is checked on its own; a block that is corrupt or
absurd is left out with a reason in ``PhotoMeta.dropped`` and never fails the photo: losing a
caption is better than losing the cut-out.

Only the header is read here (Pillow parses these blocks when it opens the file), so this
costs microseconds to a few milliseconds whatever the pixel count.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import threading
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from bshmd.decode.record import PhotoMeta

if TYPE_CHECKING:
    from PIL import Image

MAX_BLOCK_BYTES = 1 << 20  # XMP/IPTC larger than 1 MiB is not a caption: dropped as absurd
MAX_ICC_BYTES = 4 << 20  # the largest real RGB profiles (LUT-based) are a few hundred KiB
DPI_RANGE = (1.0, 100_000.0)

_ORIENTATION = 0x0112
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_INTEROP_IFD = 0xA005
_MAKER_NOTE = 0x927C
_PIXEL_X, _PIXEL_Y = 0xA002, 0xA003
# XMP's copy of the orientation: results are upright, and Lightroom would turn them again.
# One whitespace character before the attribute, not \s+: XMP carries kilobytes of padding,
# and \s+ would retry from every space of it.
_XMP_ORIENTATION = re.compile(rb'\stiff:Orientation\s*=\s*["\'][^"\']*["\']'
                              rb'|<tiff:Orientation>[^<]*</tiff:Orientation>')
# IFD0 tags that describe the input file's own layout (a TIFF input's getexif() returns them
# all) or blocks carried separately: written into a result they would describe the wrong file.
_STRUCTURE_TAGS = frozenset({
    0x00FE, 0x0100, 0x0101, 0x0102, 0x0103, 0x0106, 0x0107, 0x0108, 0x0109, 0x010A, 0x0111,
    0x0112, 0x0115, 0x0116, 0x0117, 0x0118, 0x0119, 0x011C, 0x0122, 0x0123, 0x0124, 0x0125,
    0x013D, 0x0140, 0x0142, 0x0143, 0x0144, 0x0145, 0x014A, 0x0152, 0x0153, 0x0154, 0x0155,
    0x0156, 0x0200, 0x0201, 0x0202, 0x0211, 0x0212, 0x0213, 0x0214, 0x02BC, 0x828D, 0x828E,
    0x83BB, 0x8649, 0x8773, 0x935C, 0xC612, 0xC614,
})
_RESOLUTION_TAGS = (0x011A, 0x011B, 0x0128)

# warnings.catch_warnings swaps the process-wide filter list, so decode threads take turns.
_warnings_lock = threading.Lock()


@contextlib.contextmanager
def collect_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Pillow warns (rather than raises) on many broken EXIF blocks, some while it opens the
    file; collect those as reasons instead of letting them reach stderr (or fail a test run)."""
    with _warnings_lock, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def meta_from_blocks(*, icc: bytes | None = None, exif: bytes | None = None, xmp: bytes | None = None,
                     dpi: tuple[float, float] | None = None) -> PhotoMeta:
    """A PhotoMeta from raw blocks, checked and cleaned exactly as read_meta does, for decoders
    that do not go through Pillow (camera RAW): ``exif`` TIFF-structured, with or without the
    ``Exif\\0\\0`` prefix; ``dpi`` in pixels per inch."""
    from PIL import Image

    # A 1×1 image carrying the blocks in ``info`` is how Pillow's own readers hand them over,
    # so the same checks apply without a second implementation of them.
    carrier = Image.new("RGB", (1, 1))
    for key, value in (("icc_profile", icc), ("exif", exif), ("xmp", xmp), ("dpi", dpi)):
        if value is not None:
            carrier.info[key] = value
    return read_meta(carrier)


def grey_to_srgb(img: Image.Image, icc: bytes) -> Image.Image:
    """A greyscale ``img`` with grey profile ``icc`` as sRGB RGB (LittleCMS): results are RGB,
    and an RGB result cannot carry a grey profile, so the conversion happens once, here."""
    from PIL import ImageCms

    converted = ImageCms.profileToProfile(img.convert("L"), ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                          ImageCms.createProfile("sRGB"), outputMode="RGB")
    assert converted is not None
    return converted


def read_orientation(img: Image.Image) -> int:
    """EXIF orientation 1..8 (1 when absent, broken or absurd: the photo is shown as stored)."""
    try:
        with collect_warnings():
            value = int(img.getexif().get(_ORIENTATION, 1) or 1)
    except Exception:  # a broken EXIF block is no reason to refuse the photo
        return 1
    return value if 1 <= value <= 8 else 1


def read_meta(img: Image.Image, *, orientation: int = 1, opening: list[str] = ()) -> PhotoMeta:
    """The colour profile and metadata of the opened ``img``; ``orientation`` is the EXIF
    orientation decoding applies (5..8 swap the axes, so the resolution's axes swap too);
    ``opening`` the warnings Pillow gave while opening the file (each about a broken block)."""
    # Pillow parses a JPEG's EXIF as it opens the file; what it warned about then is in there.
    exif_warnings = [m for m in opening if "exif" in m.lower() or "tag" in m.lower()]
    dropped = [f"exif: {m}" for m in exif_warnings[:1]]
    dropped += [f"header: {m}" for m in opening if m not in exif_warnings]
    # A greyscale photo's grey profile is kept for decoding to convert with (see grey_to_srgb).
    icc = _icc(img.info.get("icc_profile"), dropped, b"GRAY" if img.mode in ("L", "LA") else b"RGB ")
    exif, exif_dpi = (None, None) if exif_warnings else _exif(img, dropped, turned=orientation in (5, 6, 7, 8))
    xmp = _xmp(img, dropped)
    iptc = _iptc(img, dropped)
    dpi = _dpi(img.info.get("dpi"), dropped) or exif_dpi
    if dpi is not None and orientation in (5, 6, 7, 8):
        dpi = (dpi[1], dpi[0])
    return PhotoMeta(icc=icc, exif=exif, xmp=xmp, iptc=iptc, dpi=dpi, dropped=tuple(dropped))


def check_icc(icc: Any, *, space: bytes = b"RGB ") -> str | None:
    """Why ``icc`` cannot be used as the profile of pixels in colour ``space`` (the ICC header's
    4-byte name: ``b"RGB "``, or ``b"GRAY"`` for a greyscale photo), or None when it can."""
    if not isinstance(icc, bytes | bytearray) or not icc:
        return "not a profile"
    if len(icc) > MAX_ICC_BYTES:
        return f"{len(icc)} bytes is more than {MAX_ICC_BYTES}"
    if len(icc) < 128 or icc[36:40] != b"acsp":
        return "no ICC header"
    declared = int.from_bytes(icc[:4], "big")
    if declared != len(icc):
        return f"its header says {declared} bytes, it holds {len(icc)}"
    if icc[16:20] != space:
        return (f"a {icc[16:20].decode('latin-1').strip() or '?'} profile, not "
                f"{space.decode().strip()} (pixels taken as sRGB)")
    return _lcms_check(bytes(icc), "L" if space == b"GRAY" else "RGB")


@functools.lru_cache(maxsize=32)
def _lcms_check(icc: bytes, mode: str) -> str | None:
    """LittleCMS must read the profile and build a transform from it to sRGB: some profiles
    open but describe nothing usable (a header without tags), and those fail only here."""
    from PIL import ImageCms

    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        ImageCms.buildTransform(profile, ImageCms.createProfile("sRGB"), mode, "RGB")
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError) as exc:
        return f"LittleCMS cannot use it ({exc})"
    return None


def _icc(icc: Any, dropped: list[str], space: bytes) -> bytes | None:
    if icc is None:
        return None
    problem = check_icc(icc, space=space)
    if problem is not None:
        dropped.append(f"icc: {problem}")
        return None
    return bytes(icc)


def _exif(img: Image.Image, dropped: list[str], *, turned: bool = False) -> tuple[bytes | None,
                                                                                  tuple[float, float] | None]:
    """The EXIF block cleaned for results, and the resolution it states (a fallback for dpi);
    ``turned``: decoding swaps the axes, so the stated pixel dimensions swap too."""
    from PIL import Image as PILImage

    try:
        with collect_warnings() as caught:
            exif = img.getexif()
            parsed = len(exif)
            ifd0 = {tag: value for tag, value in exif.items() if tag not in _STRUCTURE_TAGS}
            sub_ifds = {tag: dict(exif.get_ifd(tag)) for tag in (_EXIF_IFD, _GPS_IFD) if tag in exif}
        problems = [str(w.message) for w in caught]
    except Exception as exc:  # a broken block is never the photo's end
        dropped.append(f"exif: cannot be read ({type(exc).__name__}: {exc})")
        return None, None
    if problems:
        dropped.append(f"exif: {problems[0]}")
        return None, None
    dpi = _exif_dpi(ifd0, dropped)
    for tag in _RESOLUTION_TAGS:  # PhotoMeta.dpi is the one resolution; writers put it back
        ifd0.pop(tag, None)
    raw = img.info.get("exif")
    if not ifd0 and not any(sub_ifds.values()):
        if not parsed and isinstance(raw, bytes) and len(raw.removeprefix(b"Exif\x00\x00")) > 8:
            # Pillow reads nothing from a block with a bad byte order or only unknown types.
            dropped.append(f"exif: nothing readable in its {len(raw)} bytes")
        return None, dpi
    for values in sub_ifds.values():
        for tag in (_EXIF_IFD, _GPS_IFD, _INTEROP_IFD):  # offsets Pillow does not rewrite (or loops)
            values.pop(tag, None)
    camera = sub_ifds.get(_EXIF_IFD, {})
    camera.pop(_MAKER_NOTE, None)  # its offsets point into the old file
    if turned and _PIXEL_X in camera and _PIXEL_Y in camera:
        camera[_PIXEL_X], camera[_PIXEL_Y] = camera[_PIXEL_Y], camera[_PIXEL_X]
    try:
        clean = PILImage.Exif()
        for tag, value in ifd0.items():
            if tag not in (_EXIF_IFD, _GPS_IFD):
                clean[tag] = value
        for tag, values in sub_ifds.items():
            if values:
                clean[tag] = values  # Exif.tobytes writes a dict value as that sub-IFD
        with collect_warnings():
            data = clean.tobytes()
        # Written and read back: what cannot survive the round trip would fail at encode time.
        with collect_warnings() as caught:
            PILImage.Exif().load(data)
        if caught:
            raise ValueError(str(caught[0].message))
    except Exception as exc:
        dropped.append(f"exif: cannot be rewritten ({type(exc).__name__}: {exc})")
        return None, dpi
    if len(data) > 65000:  # a JPEG APP1 segment holds 64 KiB; one rule for every format
        dropped.append(f"exif: {len(data)} bytes is more than a JPEG segment holds")
        return None, dpi
    return data.removeprefix(b"Exif\x00\x00"), dpi


def _exif_dpi(ifd0: dict[int, Any], dropped: list[str]) -> tuple[float, float] | None:
    try:
        unit = int(ifd0.get(0x0128, 2))
        x, y = float(ifd0[0x011A]), float(ifd0[0x011B])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    if unit == 3:  # centimetres
        x, y = x * 2.54, y * 2.54
    elif unit != 2:
        return None
    return _dpi((x, y), dropped)


def _dpi(value: Any, dropped: list[str]) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        x, y = (float(v) for v in value)
    except (TypeError, ValueError, ZeroDivisionError):
        dropped.append(f"dpi: {value!r} is not a resolution")
        return None
    low, high = DPI_RANGE
    if not (low <= x <= high and low <= y <= high):
        if x or y:  # JFIF's "no unit" header reads as (0, 0) or (1, 1): absent, not broken
            dropped.append(f"dpi: {x:g}×{y:g} is outside {low:g}..{high:g}")
        return None
    return round(x, 4), round(y, 4)


def _xmp(img: Image.Image, dropped: list[str]) -> bytes | None:
    value = img.info.get("xmp", img.info.get("XML:com.adobe.xmp"))
    if value is None and hasattr(img, "tag_v2"):
        value = img.tag_v2.get(700)
    if value is None:
        return None
    data = value.encode("utf-8") if isinstance(value, str) else value
    if isinstance(data, tuple):  # a TIFF tag of the wrong type reads as a tuple of ints
        try:
            data = bytes(data)
        except (TypeError, ValueError):
            data = None
    if not isinstance(data, bytes | bytearray):
        dropped.append("xmp: not a block of text")
        return None
    data = bytes(data).rstrip(b"\x00")
    if len(data) > MAX_BLOCK_BYTES:
        dropped.append(f"xmp: {len(data)} bytes is more than {MAX_BLOCK_BYTES}")
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        dropped.append("xmp: not UTF-8")
        return None
    if "xmpmeta" not in text and "rdf:RDF" not in text:
        dropped.append("xmp: no x:xmpmeta or rdf:RDF element")
        return None
    return _XMP_ORIENTATION.sub(b"", data) if b"tiff:Orientation" in data else data


def _iptc(img: Image.Image, dropped: list[str]) -> bytes | None:
    value: Any = None
    photoshop = img.info.get("photoshop")
    if isinstance(photoshop, dict):
        value = photoshop.get(0x0404)
    if value is None and hasattr(img, "tag_v2"):
        value = img.tag_v2.get(33723)
    if value is None and "Raw profile type iptc" in img.info:
        value = _raw_profile(img.info["Raw profile type iptc"])
        if value is None:
            dropped.append("iptc: the PNG raw profile is not hex text")
            return None
    if value is None:
        return None
    try:
        data = bytes(value) if not isinstance(value, bytes) else value
    except (TypeError, ValueError):
        dropped.append("iptc: not a block of bytes")
        return None
    data = data.rstrip(b"\x00")
    if len(data) > MAX_BLOCK_BYTES:
        dropped.append(f"iptc: {len(data)} bytes is more than {MAX_BLOCK_BYTES}")
        return None
    problem = _check_iim(data)
    if problem is not None:
        dropped.append(f"iptc: {problem}")
        return None
    return data


def _check_iim(data: bytes) -> str | None:
    """Walk the IIM datasets (0x1C, record, dataset, 2-byte length, value) to their end."""
    at = 0
    if not data:
        return "empty"
    while at < len(data):
        if data[at] != 0x1C or at + 5 > len(data):
            return f"no dataset marker at byte {at}"
        length = int.from_bytes(data[at + 3:at + 5], "big")
        if length & 0x8000:
            return "extended datasets are not supported"
        at += 5 + length
        if at > len(data):
            return "a dataset runs past the end of the block"
    return None


def _raw_profile(text: Any) -> bytes | None:
    """ImageMagick's "Raw profile type NAME" text: "\\nNAME\\n  LENGTH\\nHEX…"; None if malformed."""
    if not isinstance(text, str):
        return None
    parts = text.strip().split(None, 2)
    if len(parts) != 3:
        return None
    try:
        length = int(parts[1])
        data = bytes.fromhex("".join(parts[2].split()))
    except ValueError:
        return None
    return data if len(data) == length else None
