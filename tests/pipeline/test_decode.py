"""Decoding details beyond the bad-input corpus: header probing, Pillow's global limit, sniffing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bshmd.decode.image import ImageInfo, decode_image, probe_image, sniff_format
from bshmd.errors import InputRejected


def test_real_photos_decode_to_rgb(shared_testdata: Path) -> None:
    studio = decode_image(shared_testdata / "portrait-hopper.png", max_pixels=10**8, max_file_bytes=10**9)
    rocket = decode_image(shared_testdata / "no-person-rocket.jpg", max_pixels=10**8, max_file_bytes=10**9)
    assert studio.shape == (600, 512, 3) and rocket.shape == (427, 640, 3)
    with Image.open(shared_testdata / "portrait-hopper.png") as image:
        np.testing.assert_array_equal(studio, np.asarray(image.convert("RGB")))


def test_probe_reads_the_header_only(shared_testdata: Path) -> None:
    assert probe_image(shared_testdata / "portrait-hopper.png") == ImageInfo(512, 600, "PNG", "RGBA")


def test_pixel_limit_is_exact_and_pillows_global_limit_is_restored(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (100, 50)).save(path)
    before = Image.MAX_IMAGE_PIXELS
    assert decode_image(path, max_pixels=5000, max_file_bytes=10**6).shape == (50, 100, 3)
    with pytest.raises(InputRejected) as caught:
        decode_image(path, max_pixels=4999, max_file_bytes=10**6)
    assert caught.value.reason_code == "too_many_pixels"
    assert caught.value.measured["width"] == 100 and caught.value.measured["height"] == 50
    assert before == Image.MAX_IMAGE_PIXELS


def test_above_pillows_own_bomb_limit_no_warning_is_raised(tmp_path: Path) -> None:
    # Under pytest, warnings are errors: Pillow's DecompressionBombWarning would fail this.
    path = tmp_path / "wide.png"
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    import struct
    import zlib

    # Rewrite IHDR to claim 20000×6000 (120 MP, above Pillow's 89 MP) under a 200 MP limit.
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 20000, 6000, 8, 0, 0, 0, 0)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    with pytest.raises(InputRejected) as caught:
        decode_image(path, max_pixels=200_000_000, max_file_bytes=10**6)
    assert caught.value.reason_code in ("truncated", "corrupt")  # header accepted, pixel data missing


@pytest.mark.parametrize(
    ("head", "kind"),
    [(b"\xff\xd8\xff\xe0", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF89a", "GIF"), (b"BM\x00\x00", "BMP"),
     (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WEBP"),
     (b"\x00\x00\x00\x18ftypheic", "HEIF"), (b"<html>", None), (b"", None)],
)
def test_sniff_format(head: bytes, kind: str | None) -> None:
    assert sniff_format(head) == kind


def test_heic_without_pillow_heif_is_unsupported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bshmd.decode.image as decode_module

    monkeypatch.setattr(decode_module, "_register_heif", lambda: False)  # as if it were not installed
    path = tmp_path / "a.heic"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)
    with pytest.raises(InputRejected) as caught:
        decode_image(path, max_pixels=10**8, max_file_bytes=10**6)
    assert caught.value.reason_code == "unsupported"
    assert "pillow-heif" in caught.value.message
