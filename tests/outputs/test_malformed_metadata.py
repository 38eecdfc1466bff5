"""Broken metadata never costs a photo: each case is processed, its broken block dropped and named.

Every case is a real file whose pixels are fine and whose profile, EXIF, XMP or IPTC block is
damaged the way cameras, scripts and half-finished exports damage them. They all go through a
real Pipeline (stand-in engine) in one run.
"""

from __future__ import annotations

import io
import logging
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from bshmd.testing.images import synthetic_portrait
from tests.outputs.studio_files import ADOBE_RGB, ICC_DIR, exiftool_read, field, need_tools
from tests.outputs.test_studio_outputs import make_config, process

RNG = np.random.default_rng(11)
NOISE = RNG.integers(0, 256, 4096, dtype=np.uint8).tobytes()


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _jpeg(*segments: bytes) -> bytes:
    """A plain JPEG with ``segments`` spliced in right after SOI, as a camera would place them."""
    buffer = io.BytesIO()
    Image.fromarray(synthetic_portrait(160, 120, 7)).save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    return data[:2] + b"".join(segments) + data[2:]


def _tiff_exif(entries: list[tuple[int, int, int, bytes]], extra: bytes = b"", next_ifd: int = 0) -> bytes:
    """A little-endian TIFF header and IFD0 of raw (tag, type, count, value-or-offset) entries."""
    body = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        body += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00")[:4]
    return b"II*\x00" + struct.pack("<I", 8) + body + struct.pack("<I", next_ifd) + extra


def _exif(tiff: bytes) -> bytes:
    return _segment(0xE1, b"Exif\x00\x00" + tiff)


def _icc_segment(profile: bytes, seq: int = 1, total: int = 1) -> bytes:
    return _segment(0xE2, b"ICC_PROFILE\x00" + bytes([seq, total]) + profile)


def _xmp_segment(xmp: bytes) -> bytes:
    return _segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + xmp)


def _iptc_segment(resource: bytes) -> bytes:
    return _segment(0xED, b"Photoshop 3.0\x00" + resource)


def _png(chunks: list[tuple[bytes, bytes]] = (), *, pnginfo: PngImagePlugin.PngInfo | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(synthetic_portrait(160, 120, 8)).save(buffer, "PNG", pnginfo=pnginfo)
    data = buffer.getvalue()
    extra = b"".join(struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d)) for t, d in chunks)
    return data[:33] + extra + data[33:]


def _tiff(**tags: Any) -> bytes:
    import tifffile

    buffer = io.BytesIO()
    extratags = [(tag, 7, len(value), value, True) for tag, value in tags.pop("extratags", [])]
    tifffile.imwrite(buffer, synthetic_portrait(160, 120, 9), photometric="rgb", metadata=None,
                     extratags=extratags, **tags)
    return buffer.getvalue()


def _webp(**args: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(synthetic_portrait(160, 120, 10)).save(buffer, "WEBP", quality=90, **args)
    return buffer.getvalue()


ADOBE = ADOBE_RGB.read_bytes()
ASCII = 2
# name → (suffix, file bytes, the block the broken part is in; None when Pillow itself
# already discards it while reading and nothing reaches the results to drop)
CASES: dict[str, tuple[str, bytes, str | None]] = {
    "exif-truncated": (".jpg", _jpeg(_exif(_tiff_exif([(0x013B, ASCII, 40, struct.pack("<I", 26))])[:20])), "exif"),
    "exif-bad-byte-order": (".jpg", _jpeg(_segment(0xE1, b"Exif\x00\x00XX*\x00\x08\x00\x00\x00" + NOISE[:64])), "exif"),
    "exif-huge-entry-count": (".jpg", _jpeg(_exif(b"II*\x00\x08\x00\x00\x00\xff\xff" + NOISE[:32])), "exif"),
    "exif-ifd-past-end": (".jpg", _jpeg(_exif(b"II*\x00\xff\xff\xff\x7f")), "exif"),
    "exif-value-past-end": (".jpg", _jpeg(_exif(_tiff_exif([(0x013B, ASCII, 100, struct.pack("<I", 0x10000))]))),
                            "exif"),
    # The loop is cut (no sub-IFD pointer is copied) and nothing else was in the block.
    "exif-ifd-loop": (".jpg", _jpeg(_exif(_tiff_exif([(0x8769, 4, 1, struct.pack("<I", 8))]))), None),
    "exif-gps-pointer-garbage": (".jpg", _jpeg(_exif(_tiff_exif([(0x8825, 4, 1, struct.pack("<I", 0xFFFFFF00))]))),
                                 "exif"),
    "exif-unknown-type": (".jpg", _jpeg(_exif(_tiff_exif([(0x013B, 99, 4, b"abcd")]))), "exif"),
    "exif-zero-denominator-dpi": (".jpg", _jpeg(_exif(_tiff_exif(
        [(0x011A, 5, 1, struct.pack("<I", 38)), (0x0128, 3, 1, struct.pack("<H", 2))],
        extra=struct.pack("<II", 300, 0)))), None),
    "exif-absurd-dpi": (".jpg", _jpeg(_exif(_tiff_exif(
        [(0x011A, 5, 1, struct.pack("<I", 50)), (0x011B, 5, 1, struct.pack("<I", 50)),
         (0x0128, 3, 1, struct.pack("<H", 2))], extra=b"\x00" * 12 + struct.pack("<II", 10**9, 1)))), "dpi"),
    "exif-absurd-orientation": (".jpg", _jpeg(_exif(_tiff_exif([(0x0112, 3, 1, struct.pack("<H", 99))]))), None),
    "exif-header-only": (".jpg", _jpeg(_segment(0xE1, b"Exif\x00\x00")), None),
    "icc-random-bytes": (".jpg", _jpeg(_icc_segment(NOISE[:600])), "icc"),
    "icc-truncated": (".jpg", _jpeg(_icc_segment(ADOBE[:len(ADOBE) // 2])), "icc"),
    "icc-grey-profile-on-rgb": (".jpg", _jpeg(_icc_segment((ICC_DIR / "Gray.icc").read_bytes())), "icc"),
    "icc-bad-chunk-sequence": (".jpg", _jpeg(_icc_segment(ADOBE, seq=2, total=1)), None),
    "icc-header-without-tags": (".jpg", _jpeg(_icc_segment(ADOBE[:128] + b"\x00\x00\x00\x00")), "icc"),
    "icc-absurd-declared-size": (".jpg", _jpeg(_icc_segment(struct.pack(">I", 1 << 30) + ADOBE[4:])), "icc"),
    "xmp-not-xml": (".jpg", _jpeg(_xmp_segment(NOISE[:2000])), "xmp"),
    "xmp-not-utf8": (".jpg", _jpeg(_xmp_segment(b"<x:xmpmeta>\xff\xfe\xfa</x:xmpmeta>")), "xmp"),
    "iptc-garbage": (".jpg", _jpeg(_iptc_segment(b"8BIM\x04\x04\x00\x00" + struct.pack(">I", 200) + NOISE[:200])),
                     "iptc"),
    "iptc-resource-truncated": (".jpg", _jpeg(_iptc_segment(b"8BIM\x04\x04\x00\x00" + struct.pack(">I", 5000)
                                                            + b"\x1c\x02\x19\x00\x04abcd")), None),
    "iptc-dataset-past-end": (".jpg", _jpeg(_iptc_segment(b"8BIM\x04\x04\x00\x00" + struct.pack(">I", 8)
                                                          + b"\x1c\x02\x19\xff\x00abc")), "iptc"),
    "png-exif-garbage": (".png", _png([(b"eXIf", NOISE[:300])]), "exif"),
    "png-iccp-bad-zlib": (".png", _png([(b"iCCP", b"ICC\x00\x00" + NOISE[:300])]), None),
    "png-iccp-garbage-profile": (".png", _png([(b"iCCP", b"ICC\x00\x00" + zlib.compress(NOISE[:900]))]), "icc"),
    "png-iptc-not-hex": (".png", _png([(b"zTXt", b"Raw profile type iptc\x00\x00" + zlib.compress(b"\niptc\n 4\nzzzz\n"))]),
                         "iptc"),
    "png-zero-resolution": (".png", _png([(b"pHYs", struct.pack(">IIB", 0, 0, 1))]), None),
    "png-huge-xmp": (".png", _png([(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00<x:xmpmeta>"
                                   + b" " * (3 << 20) + b"</x:xmpmeta>")]), "xmp"),
    "tiff-icc-garbage": (".tif", _tiff(iccprofile=NOISE[:700]), "icc"),
    "tiff-xmp-garbage": (".tif", _tiff(extratags=[(700, NOISE[:500])]), "xmp"),
    "tiff-iptc-garbage": (".tif", _tiff(extratags=[(33723, NOISE[:500])]), "iptc"),
    "webp-icc-garbage": (".webp", _webp(icc_profile=NOISE[:700]), "icc"),
    "webp-exif-garbage": (".webp", _webp(exif=b"Exif\x00\x00" + NOISE[:400]), "exif"),
}


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory, engine: Any) -> dict[str, Any]:
    """Every case through one Pipeline run: name → (outcome, its log line, its input path)."""
    need_tools()
    tmp = tmp_path_factory.mktemp("malformed")
    config = make_config(tmp, formats=["cutout", "composite", "tiff", "webp"])
    paths = {}
    for name, (suffix, data, _) in CASES.items():
        paths[name] = tmp / "in" / f"{name}{suffix}"
        paths[name].write_bytes(data)
    handler = _Lines()
    logger = logging.getLogger("bshmd.pipeline")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        outcomes = process(config, engine, list(paths.values()))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return {"outcomes": outcomes, "lines": handler.lines, "paths": paths, "config": config}


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[str, logging.LogRecord] = {}

    def emit(self, record: logging.LogRecord) -> None:
        path = getattr(record, "bshmd_file", None)
        if path is not None and record.getMessage().startswith(("processed", "quarantined")):
            self.lines[path] = record


def test_there_are_thirty_cases_or_more() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", list(CASES))
def test_a_malformed_block_neither_quarantines_nor_crashes(outcome: dict[str, Any], name: str) -> None:
    path = outcome["paths"][name]
    assert outcome["outcomes"][path] == "processed"
    record = outcome["lines"][str(path)]
    block = CASES[name][2]
    if block is None:
        assert record.levelno == logging.INFO, record.getMessage()
    else:
        assert record.levelno == logging.WARNING, name
        assert f"metadata dropped: {block}:" in record.getMessage() or f"; {block}:" in record.getMessage(), \
            record.getMessage()
    from bshmd.outputs.files import output_paths

    results = output_paths(outcome["config"].folders[0].output, Path(path.name), outcome["config"].outputs)
    for fmt, result in results.items():
        tags = exiftool_read(result)
        assert not [w for w in field(tags, "Warning") if "ICC" in str(w) or "IFD" in str(w)], (fmt, tags)
    assert not any(outcome["config"].folders[0].quarantine.rglob("*.reason.json"))
