"""bshmd.outputs.png writes standard PNGs: Pillow, OpenCV and pngcheck read them back exactly."""

from __future__ import annotations

import io
import shutil
import subprocess
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from bshmd.outputs.png import _adler32_combine, encode_png
from bshmd.testing.studio import studio_matte as scaled_matte
from bshmd.testing.studio import studio_photo


@pytest.fixture
def cutout(studio_png: Path, studio_matte: np.ndarray) -> np.ndarray:
    """A real cut-out, 2400 px on its long side, tall enough for many strips: the test
    portrait scaled up with grain, its real matte scaled alike."""
    height, width = studio_matte.shape
    scale = 2400 / max(height, width)
    width, height = round(width * scale), round(height * scale)
    rgb = studio_photo(studio_png, width, height)
    return np.dstack([rgb, scaled_matte(studio_matte, width, height)])


def pillow(blob: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(blob)) as image:
        return np.asarray(image)


def opencv(blob: bytes) -> np.ndarray:
    decoded = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded.ndim == 3:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA if decoded.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return decoded


def pngcheck(tmp_path: Path, blob: bytes) -> str:
    if shutil.which("pngcheck") is None:
        pytest.fail("pngcheck is not installed (scripts/setup --dev installs it)")
    path = tmp_path / "check.png"
    path.write_bytes(blob)
    result = subprocess.run(["pngcheck", "-v", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("level", [0, 2, 9])
def test_cutout_reads_back_exactly_in_every_reader(tmp_path: Path, cutout: np.ndarray, level: int,
                                                   threads: int) -> None:
    blob = encode_png(cutout, level=level, threads=threads)
    np.testing.assert_array_equal(pillow(blob), cutout)
    np.testing.assert_array_equal(opencv(blob), cutout)
    report = pngcheck(tmp_path, blob)
    height, width = cutout.shape[:2]
    assert f"{width} x {height} image, 32-bit RGB+alpha" in report
    assert "No errors detected" in report


def test_threads_change_nothing_in_the_file(cutout: np.ndarray) -> None:
    assert encode_png(cutout, level=2, threads=1) == encode_png(cutout, level=2, threads=4)


@pytest.mark.parametrize("channels", [None, 3])
def test_grey_and_rgb(tmp_path: Path, cutout: np.ndarray, channels: int | None) -> None:
    pixels = np.ascontiguousarray(cutout[:, :, 3] if channels is None else cutout[:, :, :3])
    blob = encode_png(pixels, level=2, threads=2)
    np.testing.assert_array_equal(pillow(blob), pixels)
    np.testing.assert_array_equal(opencv(blob), pixels)
    assert ("8-bit grayscale" if channels is None else "24-bit RGB") in pngcheck(tmp_path, blob)


def test_as_small_as_libpng_at_level_1(cutout: np.ndarray) -> None:
    ok, libpng = cv2.imencode(".png", cv2.cvtColor(cutout, cv2.COLOR_RGBA2BGRA), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    assert ok
    assert len(encode_png(cutout, level=2)) <= 1.10 * len(libpng)


def test_extra_chunks_come_before_the_image_data(tmp_path: Path, cutout: np.ndarray) -> None:
    # pHYs: 300 dpi = 11811 pixels per metre on both axes, unit metre.
    phys = (11811).to_bytes(4, "big") * 2 + b"\x01"
    text = b"Comment\x00made by bshmd"
    blob = encode_png(cutout[:40], level=2, chunks=[(b"pHYs", phys), (b"tEXt", text)])
    with Image.open(io.BytesIO(blob)) as image:
        assert image.info["dpi"] == pytest.approx((300, 300), abs=0.01)
        assert image.info["Comment"] == "made by bshmd"
    report = pngcheck(tmp_path, blob)
    assert report.index("pHYs") < report.index("tEXt") < report.index("IDAT")


@pytest.mark.parametrize(("pixels", "match"), [
    (np.zeros((4, 4), np.uint16), "uint8"),
    (np.zeros((4, 4, 2), np.uint8), "H×W×4"),
    (np.zeros((0, 4, 3), np.uint8), "cannot be"),
])
def test_unsupported_arrays_are_refused(pixels: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        encode_png(pixels)


@pytest.mark.parametrize(("chunk", "match"), [((b"IDAT", b""), "written by the encoder"), ((b"ab1c", b""), "four")])
def test_bad_chunks_are_refused(chunk: tuple[bytes, bytes], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        encode_png(np.zeros((2, 2), np.uint8), chunks=[chunk])


def test_adler32_combine_matches_zlib() -> None:
    rng = np.random.default_rng(1)
    first, second = rng.bytes(100_003), rng.bytes(7)
    assert _adler32_combine(zlib.adler32(first), zlib.adler32(second), len(second)) == zlib.adler32(first + second)


@pytest.mark.parametrize("clear", [True, False])
def test_a_cutout_made_strip_by_strip_is_the_same_file(cutout: np.ndarray, clear: bool) -> None:
    from bshmd.outputs.render import CutoutStrips, cutout_pixels

    rgb, alpha = np.ascontiguousarray(cutout[:, :, :3]), np.ascontiguousarray(cutout[:, :, 3])
    whole = encode_png(cutout_pixels(rgb, alpha, clear), level=2)
    assert encode_png(CutoutStrips(rgb, alpha, clear), level=2, threads=3) == whole


def test_only_large_images_are_deflated_on_several_threads() -> None:
    from bshmd.cpus import usable_cpus
    from bshmd.outputs.render import PARALLEL_PNG_BYTES, png_threads

    assert png_threads(640 * 480 * 4) == 1  # a thread start costs more than it saves here
    assert png_threads(PARALLEL_PNG_BYTES) == usable_cpus()
    assert png_threads(6528 * 3672 * 4) == usable_cpus()  # a lone 24 MP cut-out uses every core
