"""16-bit inputs under bit_depth: keep, and EXIF that must not be copied as it was (orientation, thumbnail)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bshmd.testing.images import synthetic_portrait
from tests.outputs.studio_files import (
    ADOBE_RGB,
    exiftool_icc,
    exiftool_read,
    exiftool_write,
    field,
    need_tools,
)
from tests.outputs.test_studio_outputs import make_config, process


def _photo16(seed: int = 3) -> np.ndarray:
    """A 16-bit portrait whose low bytes matter: an 8-bit copy cannot reproduce it."""
    rng = np.random.default_rng(seed)
    base = synthetic_portrait(240, 180, seed).astype(np.uint16) * 257
    return (base + rng.integers(0, 257, base.shape, dtype=np.uint16)).astype(np.uint16)


@pytest.fixture
def tiff16(tmp_path: Path) -> tuple[Path, np.ndarray]:
    import tifffile

    need_tools()
    (tmp_path / "in").mkdir()
    path = tmp_path / "in" / "scan.tif"
    pixels = _photo16()
    tifffile.imwrite(path, pixels, photometric="rgb", iccprofile=ADOBE_RGB.read_bytes(),
                     resolution=(300, 300), resolutionunit="INCH", metadata=None)
    exiftool_write(path, "-Artist=Ann Photographer")
    return path, pixels


def test_bit_depth_keep_gives_16_bit_tiff_and_png_with_the_inputs_own_values(tmp_path: Path, tiff16: Any,
                                                                             engine: Any) -> None:
    import cv2
    import tifffile

    from bshmd.outputs.files import output_paths

    source, pixels = tiff16
    config = make_config(tmp_path, formats=["tiff", "cutout", "alpha"], bit_depth="keep")
    assert process(config, engine, [source]) == {source: "processed"}
    paths = output_paths(config.folders[0].output, Path("scan.tif"), config.outputs)
    with Image.open(paths["alpha"]) as alpha_png:
        matte = np.asarray(alpha_png)

    with tifffile.TiffFile(paths["tiff"]) as tif:
        page = tif.pages[0]
        result = page.asarray()
        assert page.tags["ExtraSamples"].value == (2,)
        assert page.tags["InterColorProfile"].value == ADOBE_RGB.read_bytes()
    assert result.dtype == np.uint16 and result.shape == (*pixels.shape[:2], 4)
    assert np.array_equal(result[:, :, :3], pixels)
    assert np.array_equal(result[:, :, 3], matte.astype(np.uint16) * 257)
    assert "Ann Photographer" in field(exiftool_read(paths["tiff"]), "Artist")

    png = cv2.imread(str(paths["cutout"]), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16 and png.shape == (*pixels.shape[:2], 4)
    rgba = cv2.cvtColor(png, cv2.COLOR_BGRA2RGBA)
    visible = rgba[:, :, 3] > 0
    assert np.array_equal(rgba[:, :, :3][visible], pixels[visible])
    assert exiftool_icc(paths["cutout"]) == ADOBE_RGB.read_bytes()
    tags = exiftool_read(paths["cutout"])
    assert field(tags, "BitDepth") == [16] and 300 in field(tags, "XResolution")


def test_bit_depth_8_is_the_default_even_for_16_bit_inputs(tmp_path: Path, tiff16: Any, engine: Any) -> None:
    import tifffile

    from bshmd.outputs.files import output_paths

    source, pixels = tiff16
    config = make_config(tmp_path, formats=["tiff"])
    assert process(config, engine, [source]) == {source: "processed"}
    result = tifffile.imread(output_paths(config.folders[0].output, Path("scan.tif"), config.outputs)["tiff"])
    assert result.dtype == np.uint8
    assert np.abs(result[:, :, :3].astype(int) - np.rint(pixels / 257)).max() <= 1


def test_orientation_is_applied_once_and_the_thumbnail_is_not_copied(tmp_path: Path, engine: Any) -> None:
    from bshmd.outputs.files import output_paths

    need_tools()
    (tmp_path / "in").mkdir()
    source = tmp_path / "in" / "turned.jpg"
    Image.fromarray(synthetic_portrait(240, 160, 5)).save(source, quality=95)
    thumb = tmp_path / "thumb.jpg"
    Image.fromarray(synthetic_portrait(60, 40, 5)).save(thumb)
    exiftool_write(source, "-Orientation#=6", "-XMP-tiff:Orientation#=6", "-Artist=Ann Photographer",
                   "-ExifImageWidth=240", "-ExifImageHeight=160", f"-ThumbnailImage<={thumb}")
    before = exiftool_read(source)
    assert field(before, "Orientation") == [6, 6] and field(before, "ThumbnailLength")

    config = make_config(tmp_path, formats=["cutout", "composite", "webp", "psd"])
    assert process(config, engine, [source]) == {source: "processed"}
    for fmt, path in output_paths(config.folders[0].output, Path("turned.jpg"), config.outputs).items():
        tags = exiftool_read(path)
        assert not field(tags, "Orientation"), fmt  # applied to the pixels: tagging it again would turn twice
        assert not field(tags, "ThumbnailLength") and not field(tags, "ThumbnailImage"), fmt
        assert "Ann Photographer" in field(tags, "Artist"), fmt
        assert field(tags, "ImageWidth")[0] == 160 and field(tags, "ImageHeight")[0] == 240, fmt
        assert (field(tags, "ExifImageWidth"), field(tags, "ExifImageHeight")) == ([160], [240]), fmt


def test_a_float_matte_gives_16_bit_alpha_of_its_own_precision(tiff16: Any) -> None:
    import tifffile

    from bshmd.config import OutputsConfig
    from bshmd.decode.image import decode_photo
    from bshmd.outputs.render import render_outputs

    source, pixels = tiff16
    photo = decode_photo(source, max_pixels=10**8, max_file_bytes=10**9, keep_16bit=True)
    assert np.array_equal(photo.rgb16, pixels)
    height, width = pixels.shape[:2]
    matte = np.tile(np.linspace(0.0, 1.0, width, dtype=np.float32), (height, 1))
    blobs = render_outputs(photo.rgb, matte, OutputsConfig(formats=("tiff", "alpha"), bit_depth="keep"),
                           photo=photo)
    alpha = tifffile.imread(io.BytesIO(blobs["tiff"]))[:, :, 3]
    assert np.array_equal(alpha, np.rint(matte * 65535).astype(np.uint16))
    assert np.count_nonzero(alpha % 257)  # not an 8-bit matte widened
    with Image.open(io.BytesIO(blobs["alpha"])) as grey:
        assert np.array_equal(np.asarray(grey), np.rint(matte * 255).astype(np.uint8))
