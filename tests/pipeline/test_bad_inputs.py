"""A corpus of awkward and broken inputs, made from real photographs and by hand.

Each kind either decodes to the right pixels or is refused with its own reason code, and a
refused file goes to quarantine with a record carrying that code.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import unicodedata
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from PIL import Image

from bshmd.config import FolderConfig
from bshmd.decode.image import decode_image
from bshmd.errors import InputRejected
from bshmd.pipeline.gate import check_input
from bshmd.quarantine.store import quarantine_input
from tests.support.testdata import PORTRAIT

MAX_PIXELS = 50_000_000
MAX_BYTES = 20 * 1024 * 1024


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def huge_png_header(width: int = 30_000, height: int = 30_000) -> bytes:
    """A valid-looking PNG of width×height whose pixel data is absent: a few dozen bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def photo(request: pytest.FixtureRequest) -> np.ndarray:
    """A 96×128 crop of a real portrait: real texture, small enough to keep tests fast."""
    with Image.open(PORTRAIT) as image:
        rgb = np.asarray(image.convert("RGB"))
    return np.ascontiguousarray(rgb[150:246, 190:318])  # the face


def _save(path: Path, image: Image.Image, fmt: str, **params: object) -> Path:
    image.save(path, fmt, **params)
    return path


def _encoded(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


# --- kinds that must decode: builder → (path, check of the decoded array) -------------------

Check = Callable[[np.ndarray], None]


def equal_to(expected: np.ndarray) -> Check:
    def check(decoded: np.ndarray) -> None:
        assert decoded.dtype == np.uint8 and decoded.shape == expected.shape
        np.testing.assert_array_equal(decoded, expected)
    return check


def close_to(expected: np.ndarray, mean_tolerance: float) -> Check:
    def check(decoded: np.ndarray) -> None:
        assert decoded.dtype == np.uint8 and decoded.shape == expected.shape
        difference = np.abs(decoded.astype(int) - expected.astype(int)).mean()
        assert difference < mean_tolerance, f"mean difference {difference:.2f}"
    return check


def decodable_kinds(tmp: Path, rgb: np.ndarray) -> dict[str, tuple[Path, Check]]:
    image = Image.fromarray(rgb, "RGB")
    grey = np.asarray(image.convert("L"))
    kinds: dict[str, tuple[Path, Check]] = {}

    kinds["tiff"] = (_save(tmp / "photo.tif", image, "TIFF"), equal_to(rgb))
    kinds["webp_lossless"] = (_save(tmp / "photo.webp", image, "WEBP", lossless=True), equal_to(rgb))
    kinds["bmp"] = (_save(tmp / "photo.bmp", image, "BMP"), equal_to(rgb))
    kinds["greyscale_png"] = (_save(tmp / "grey.png", image.convert("L"), "PNG"),
                              equal_to(np.repeat(grey[:, :, None], 3, axis=2)))

    # RGBA: the alpha channel (here a gradient) is dropped, the colour kept exactly.
    rgba = np.dstack([rgb, np.tile(np.linspace(0, 255, rgb.shape[1]).astype(np.uint8), (rgb.shape[0], 1))])
    kinds["rgba_png"] = (_save(tmp / "rgba.png", Image.fromarray(rgba, "RGBA"), "PNG"), equal_to(rgb))

    # Palette with a transparent index: the palette colours come back, transparency dropped.
    palette = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    palette.info["transparency"] = 0
    expected_palette = np.asarray(palette.convert("RGB"))
    kinds["palette_png_transparency"] = (_save(tmp / "palette.png", palette, "PNG", transparency=0),
                                         equal_to(expected_palette))

    # A GIF renamed .png: decoded by its content, not its name.
    gif_bytes = _encoded(palette.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=64), "GIF")
    (tmp / "really-a-gif.png").write_bytes(gif_bytes)
    with Image.open(io.BytesIO(gif_bytes)) as reread:
        expected_gif = np.asarray(reread.convert("RGB"))
    kinds["gif_named_png"] = (tmp / "really-a-gif.png", equal_to(expected_gif))

    # 16-bit RGB (48-bit PNG): Pillow alone would keep only the high byte; v·255/65535 rounded.
    rgb16 = (rgb.astype(np.uint16) * 257 + np.arange(rgb.size, dtype=np.uint16).reshape(rgb.shape) % 200)
    import cv2

    assert cv2.imwrite(str(tmp / "deep.png"), rgb16[:, :, ::-1])
    expected16 = ((rgb16.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    kinds["png_16bit_rgb"] = (tmp / "deep.png", equal_to(expected16))

    grey16 = grey.astype(np.uint16) * 257
    _save(tmp / "grey16.png", Image.fromarray(grey16), "PNG")
    kinds["png_16bit_grey"] = (tmp / "grey16.png", equal_to(np.repeat(grey[:, :, None], 3, axis=2)))

    # CMYK JPEG (Pillow writes Adobe CMYK): colours must come back close, not inverted.
    kinds["cmyk_jpeg"] = (_save(tmp / "cmyk.jpg", image.convert("CMYK"), "JPEG", quality=95),
                          close_to(rgb, 6.0))

    # EXIF orientation 6 (camera turned right): the decoded array is the stored one rotated 90° clockwise.
    exif = Image.Exif()
    exif[0x0112] = 6
    _save(tmp / "rotated.jpg", image, "JPEG", quality=95, exif=exif)
    with Image.open(tmp / "rotated.jpg") as stored:
        stored_rgb = np.asarray(stored.convert("RGB"))
    kinds["exif_orientation_6"] = (tmp / "rotated.jpg", equal_to(np.ascontiguousarray(np.rot90(stored_rgb, k=-1))))

    # Spaces and a decomposed (NFD) Unicode name, as macOS clients write them.
    nfd = unicodedata.normalize("NFD", "Zoë Müller portrait.png")
    kinds["unicode_nfd_spaces"] = (_save(tmp / nfd, image, "PNG"), equal_to(rgb))
    return kinds


DECODABLE = ["tiff", "webp_lossless", "bmp", "greyscale_png", "rgba_png", "palette_png_transparency",
             "gif_named_png", "png_16bit_rgb", "png_16bit_grey", "cmyk_jpeg", "exif_orientation_6",
             "unicode_nfd_spaces"]


@pytest.mark.parametrize("kind", DECODABLE)
def test_decodes_to_the_right_pixels(kind: str, tmp_path: Path, photo: np.ndarray) -> None:
    path, check = decodable_kinds(tmp_path, photo)[kind]
    decoded = decode_image(path, max_pixels=MAX_PIXELS, max_file_bytes=MAX_BYTES)
    assert decoded.flags.c_contiguous
    check(decoded)


def test_exif_rotation_changes_the_shape(tmp_path: Path, photo: np.ndarray) -> None:
    path, _ = decodable_kinds(tmp_path, photo)["exif_orientation_6"]
    decoded = decode_image(path, max_pixels=MAX_PIXELS, max_file_bytes=MAX_BYTES)
    assert decoded.shape == (photo.shape[1], photo.shape[0], 3)  # portrait from a landscape-stored file


# --- kinds that must be refused: builder → expected reason code ------------------------------


def refused_kinds(tmp: Path, rgb: np.ndarray, shared: Path) -> dict[str, tuple[Path, str]]:
    jpeg = (shared / "no-person-rocket.jpg").read_bytes()
    png = (shared / "portrait-hopper.png").read_bytes()
    kinds: dict[str, tuple[Path, str]] = {}

    (tmp / "empty.jpg").write_bytes(b"")
    kinds["zero_bytes"] = (tmp / "empty.jpg", "empty")
    (tmp / "cut.jpg").write_bytes(jpeg[: len(jpeg) * 6 // 10])
    kinds["truncated_jpeg"] = (tmp / "cut.jpg", "truncated")
    (tmp / "cut.png").write_bytes(png[: len(png) // 2])
    kinds["truncated_png"] = (tmp / "cut.png", "truncated")
    (tmp / "notes.jpg").write_text("These are the notes for Saturday's shoot.\n", encoding="utf-8")
    kinds["text_named_jpg"] = (tmp / "notes.jpg", "not_an_image")
    (tmp / "huge.png").write_bytes(huge_png_header())
    kinds["huge_header_png"] = (tmp / "huge.png", "too_many_pixels")
    # A JPEG whose frame header is overwritten with zeros: signature and EOI intact.
    (tmp / "damaged.jpg").write_bytes(jpeg[:2] + b"\xff\xc0" + b"\x00" * 200 + jpeg[204:])
    kinds["corrupt_jpeg_header"] = (tmp / "damaged.jpg", "corrupt")
    big = _encoded(Image.fromarray(rgb, "RGB"), "BMP")
    (tmp / "big.bmp").write_bytes(big)
    kinds["larger_than_max_file_bytes"] = (tmp / "big.bmp", "file_too_large")
    os.mkfifo(tmp / "pipe.jpg")
    kinds["fifo_named_jpg"] = (tmp / "pipe.jpg", "unreadable")
    return kinds


REFUSED = ["zero_bytes", "truncated_jpeg", "truncated_png", "text_named_jpg", "huge_header_png",
           "corrupt_jpeg_header", "larger_than_max_file_bytes", "fifo_named_jpg"]


@pytest.mark.parametrize("kind", REFUSED)
def test_refused_with_its_reason_and_quarantined(kind: str, hot: dict[str, Path], photo: np.ndarray,
                                                  folder: FolderConfig, shared_testdata: Path) -> None:
    sub = hot["in"] / "shoot"
    sub.mkdir()
    path, code = refused_kinds(sub, photo, shared_testdata)[kind]
    max_bytes = 10_000 if kind == "larger_than_max_file_bytes" else MAX_BYTES
    with pytest.raises(InputRejected) as caught:
        decode_image(path, max_pixels=MAX_PIXELS, max_file_bytes=max_bytes)
    assert caught.value.reason_code == code, caught.value.message
    assert path.name in caught.value.message

    relpath = PurePosixPath("shoot", path.name)
    moved = quarantine_input(folder, path, relpath, caught.value, instance_id="test-1")
    assert not os.path.lexists(path)
    assert moved == hot["quarantine"] / "shoot" / path.name
    assert os.path.lexists(moved)
    record = json.loads((moved.parent / (moved.name + ".reason.json")).read_text("utf-8"))
    assert record["reason"] == code
    assert record["relpath"] == str(relpath)
    assert record["status"] == "quarantined"
    assert record["matte"] is None


def test_one_pixel_image_decodes_then_fails_the_input_gate(hot: dict[str, Path], folder: FolderConfig) -> None:
    from bshmd.config import GateConfig

    path = hot["in"] / "dot.png"
    Image.new("RGB", (1, 1), (12, 34, 56)).save(path)
    decoded = decode_image(path, max_pixels=MAX_PIXELS, max_file_bytes=MAX_BYTES)
    assert decoded.shape == (1, 1, 3) and tuple(decoded[0, 0]) == (12, 34, 56)
    with pytest.raises(InputRejected) as caught:
        check_input(decoded, GateConfig())
    assert caught.value.reason_code == "too_small"
    moved = quarantine_input(folder, path, PurePosixPath("dot.png"), caught.value, instance_id="t")
    assert json.loads(moved.with_name("dot.png.reason.json").read_text())["reason"] == "too_small"


def test_huge_header_is_refused_without_allocating_the_image(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "bomb.png"
    path.write_bytes(huge_png_header())
    assert path.stat().st_size < 200
    tracemalloc.start()
    try:
        with pytest.raises(InputRejected) as caught:
            decode_image(path, max_pixels=100_000_000, max_file_bytes=MAX_BYTES)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.reason_code == "too_many_pixels"
    assert caught.value.measured["pixels"] == 900_000_000
    assert peak < 50 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_vanished_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(InputRejected) as caught:
        decode_image(tmp_path / "gone.jpg", max_pixels=MAX_PIXELS, max_file_bytes=MAX_BYTES)
    assert caught.value.reason_code == "unreadable"


def test_directory_named_like_a_photo_is_unreadable(tmp_path: Path) -> None:
    (tmp_path / "folder.jpg").mkdir()
    with pytest.raises(InputRejected) as caught:
        decode_image(tmp_path / "folder.jpg", max_pixels=MAX_PIXELS, max_file_bytes=MAX_BYTES)
    assert caught.value.reason_code == "unreadable"


_UNREADABLE_SCRIPT = """
import ctypes, os, sys
from pathlib import Path
from bshmd.errors import InputRejected
from bshmd.decode.image import decode_image


def drop_dac_override():
    # Root reads anything: give up only the two capabilities that let it, and stay root, so
    # the owner's mode 000 on the file stands in the way while the code this process imports
    # later (lazily) stays readable, wherever the checkout lives (a 0700 home too).
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    libc = ctypes.CDLL(None, use_errno=True)
    header, data = Header(0x20080522, 0), (Data * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    dac = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
    data[0].effective &= ~dac
    data[0].permitted &= ~dac
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


if os.geteuid() == 0:
    drop_dac_override()
try:
    decode_image(Path(sys.argv[1]), max_pixels=10**8, max_file_bytes=10**9)
except InputRejected as exc:
    print(exc.reason_code, exc.measured.get("error"))
else:
    print("decoded")
"""


def test_file_without_read_permission_is_unreadable(tmp_path: Path, photo: np.ndarray) -> None:
    # The file's own mode 000 is the only thing in the way: the error is EACCES on the file.
    # Under root the child keeps its uid and drops only the capabilities that read past a
    # file's mode (a checkout in a 0700 folder stays importable for it).
    path = tmp_path / "locked.jpg"
    Image.fromarray(photo).save(path, "JPEG")
    os.chmod(path, 0o000)
    result = subprocess.run([sys.executable, "-c", _UNREADABLE_SCRIPT, str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["unreadable", "EACCES"]
