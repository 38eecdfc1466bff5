"""What each result format carries of the input's profile and metadata, and in which container field.

``result_meta`` decides once per input what goes into its results (``outputs.color`` picks
the profile, ``outputs.metadata: strip`` drops all but the profile); the per-format functions
below only say where each block goes:

==========  =====  =====  ===========  =====  ===========================================
format      ICC    EXIF   XMP          IPTC   resolution
==========  =====  =====  ===========  =====  ===========================================
PNG         iCCP   eXIf   iTXt         zTXt   pHYs (and EXIF)
JPEG        APP2   APP1   APP1 ≤ 64 K  APP13  JFIF (and EXIF; EXIF only with RGB components)
WebP, AVIF  ICC    EXIF   XMP          —      EXIF
TIFF        tag    IFD0   tag 700      tag    XResolution/YResolution
PSD         res.   res.   resource     res.   ResolutionInfo
==========  =====  =====  ===========  =====  ===========================================

IPTC in PNG is ImageMagick's "Raw profile type iptc" text chunk, which exiftool and
ImageMagick read. TIFF carries EXIF's IFD0 fields (artist, copyright, camera) as its own tags;
the camera's exposure sub-IFD is not written there (tifffile writes no sub-IFDs). Nothing here
touches pixels: every block is a few KiB, so carrying them costs microseconds per result.
"""

from __future__ import annotations

import struct
import zlib
from typing import TYPE_CHECKING, Any

from bshmd.decode.record import PhotoMeta

if TYPE_CHECKING:
    from bshmd.config import OutputsConfig

_EXIF_PREFIX = b"Exif\x00\x00"
_JPEG_SEGMENT = 65533  # bytes of payload one JPEG APPn segment holds
_XMP_NS = b"http://ns.adobe.com/xap/1.0/\x00"
_PS3 = b"Photoshop 3.0\x00"
# IFD0 tags TIFF results carry as their own tags (EXIF's IFD0 is a TIFF IFD: same numbers).
_TIFF_TEXT_TAGS = (270, 271, 272, 305, 306, 315, 33432)


def result_meta(meta: PhotoMeta | None, outputs: OutputsConfig) -> PhotoMeta:
    """What the results of an input with ``meta`` carry under ``outputs.color`` and ``outputs.metadata``.

    Made once per input: its EXIF block already holds the resolution (WebP and AVIF hold one
    only there) and, under ``color: srgb``, says sRGB in its ColorSpace field.
    """
    import dataclasses

    from bshmd.outputs.colour import srgb_profile_bytes

    meta = meta or PhotoMeta()
    srgb = outputs.color == "srgb"
    if outputs.metadata == "strip":
        meta = meta.stripped()
    else:
        meta = dataclasses.replace(meta, exif=_result_exif(meta, srgb=srgb))
    if srgb:
        meta = dataclasses.replace(meta, icc=srgb_profile_bytes())
    return meta


def _result_exif(meta: PhotoMeta, *, srgb: bool) -> bytes | None:
    if meta.dpi is None and not (srgb and meta.exif):
        return meta.exif
    from PIL import Image

    try:
        exif = Image.Exif()
        if meta.exif:
            exif.load(_EXIF_PREFIX + meta.exif)
            for tag in (0x8769, 0x8825):  # sub-IFDs as dicts, so tobytes writes them again
                if tag in exif:
                    exif[tag] = dict(exif.get_ifd(tag))
        if meta.dpi is not None:
            exif[0x011A], exif[0x011B], exif[0x0128] = float(meta.dpi[0]), float(meta.dpi[1]), 2
        camera = exif.get(0x8769)
        if srgb and isinstance(camera, dict) and 0xA001 in camera:
            camera[0xA001] = 1  # ColorSpace: sRGB (a camera set to Adobe RGB says "uncalibrated")
        return exif.tobytes().removeprefix(_EXIF_PREFIX)
    except Exception:  # decoding proved the block writable; never fail a result over it
        return meta.exif


# --- PNG ---------------------------------------------------------------------------------------

def png_chunks(meta: PhotoMeta) -> list[tuple[bytes, bytes]]:
    """(chunk type, chunk data) for every block, in an order valid before IDAT."""
    chunks: list[tuple[bytes, bytes]] = []
    if meta.icc:
        chunks.append((b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(meta.icc)))
    if meta.dpi:
        ppm = [max(1, round(value / 0.0254)) for value in meta.dpi]
        chunks.append((b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
    exif = meta.exif
    if exif:
        chunks.append((b"eXIf", exif))
    if meta.xmp:
        chunks.append((b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + meta.xmp))
    if meta.iptc:
        chunks.append((b"zTXt", b"Raw profile type iptc\x00\x00" + zlib.compress(_raw_profile("iptc", meta.iptc))))
    return chunks


def _raw_profile(name: str, data: bytes) -> bytes:
    hexed = data.hex()
    lines = "\n".join(hexed[i:i + 72] for i in range(0, len(hexed), 72))
    return f"\n{name}\n{len(data):8d}\n{lines}\n".encode("ascii")


def add_png_chunks(png: bytes, chunks: list[tuple[bytes, bytes]]) -> bytes:
    """``png`` with ``chunks`` inserted right after IHDR (where iCCP and pHYs must come).

    Lets any PNG encoder (Pillow's, OpenCV's for 16 bits) produce the pixels; an encoder that
    takes the chunks itself makes this copy unnecessary.
    """
    if not chunks:
        return png
    ihdr_end = 8 + 4 + 4 + 13 + 4
    if png[12:16] != b"IHDR":
        raise ValueError("not a PNG: no IHDR chunk first")
    out = [png[:ihdr_end]]
    for kind, data in chunks:
        out.append(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data)))
    out.append(png[ihdr_end:])
    return b"".join(out)


# --- JPEG, WebP, AVIF (Pillow's own writers) -------------------------------------------------

def jpeg_args(meta: PhotoMeta) -> tuple[dict[str, Any], list[str]]:
    """Pillow JPEG save() keyword arguments, and the blocks JPEG cannot hold (with why)."""
    args: dict[str, Any] = {}
    skipped: list[str] = []
    if meta.icc:
        args["icc_profile"] = meta.icc
    exif = meta.exif
    if exif:
        args["exif"] = _EXIF_PREFIX + exif
    if meta.xmp:
        if len(meta.xmp) + len(_XMP_NS) <= _JPEG_SEGMENT:
            args["xmp"] = meta.xmp
        else:  # extended XMP (split over segments) is not something Pillow writes
            skipped.append(f"xmp: {len(meta.xmp)} bytes do not fit a JPEG segment")
    if meta.dpi:
        args["dpi"] = tuple(round(value) for value in meta.dpi)
    if meta.iptc:
        block = _photoshop_iptc(meta.iptc)
        if len(block) <= _JPEG_SEGMENT:
            args["extra"] = b"\xff\xed" + struct.pack(">H", len(block) + 2) + block
        else:
            skipped.append(f"iptc: {len(meta.iptc)} bytes do not fit a JPEG segment")
    return args, skipped


def _photoshop_iptc(iptc: bytes) -> bytes:
    """An APP13 payload: Photoshop's image resource 0x0404 (IPTC-NAA) holding the IIM records."""
    body = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(iptc)) + iptc
    if len(iptc) % 2:
        body += b"\x00"
    return _PS3 + body


def webp_avif_args(meta: PhotoMeta) -> dict[str, Any]:
    """Pillow WebP/AVIF save() keyword arguments (neither format has a place for IPTC)."""
    args: dict[str, Any] = {}
    if meta.icc:
        args["icc_profile"] = meta.icc
    exif = meta.exif
    if exif:
        args["exif"] = _EXIF_PREFIX + exif
    if meta.xmp:
        args["xmp"] = meta.xmp
    return args


# --- TIFF (tifffile) and PSD (psd-tools) -----------------------------------------------------

def tiff_args(meta: PhotoMeta) -> dict[str, Any]:
    """tifffile.imwrite() keyword arguments: profile, resolution and tags."""
    args: dict[str, Any] = {}
    extratags: list[tuple[int, int, int, Any, bool]] = []
    if meta.icc:
        args["iccprofile"] = meta.icc
    if meta.dpi:
        args["resolution"] = meta.dpi
        args["resolutionunit"] = "INCH"
    if meta.exif:
        from PIL import Image

        exif = Image.Exif()
        exif.load(_EXIF_PREFIX + meta.exif)
        for tag in _TIFF_TEXT_TAGS:
            value = exif.get(tag)
            if isinstance(value, str) and value and value.isascii():
                extratags.append((tag, 2, 0, value, True))
    if meta.xmp:
        extratags.append((700, 1, len(meta.xmp), meta.xmp, True))
    if meta.iptc:
        extratags.append((33723, 7, len(meta.iptc), meta.iptc, True))
    if extratags:
        args["extratags"] = extratags
    return args


def psd_resources(meta: PhotoMeta) -> dict[int, Any]:
    """Photoshop image resource id → data, for psd-tools (ResolutionInfo built by the caller)."""
    resources: dict[int, Any] = {}
    if meta.icc:
        resources[1039] = meta.icc  # ICC_PROFILE
    if meta.iptc:
        resources[1028] = meta.iptc  # IPTC_NAA
    if meta.xmp:
        resources[1060] = meta.xmp  # XMP_METADATA
    exif = meta.exif
    if exif:
        resources[1058] = exif  # EXIF_DATA_1
    return resources
