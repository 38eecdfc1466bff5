"""A studio's photo through the pipeline: every format keeps its profile, metadata and resolution.

The input is a real portrait JPEG tagged by exiftool with Debian's Adobe RGB-compatible
profile, EXIF artist/copyright, XMP creator, IPTC keywords, 300 dpi and GPS; the results are
read back with exiftool, Pillow, tifffile and psd-tools. The engine is the stand-in graph.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageCms

from bshmd.config import Config
from bshmd.ledger.keys import FileKey
from bshmd.pipeline.job import Job
from bshmd.pipeline.pipeline import Pipeline
from tests.outputs.studio_files import (
    ADOBE_RGB,
    SRGB,
    exiftool_icc,
    exiftool_read,
    field,
    need_tools,
    tag_studio_photo,
)
from tests.support import config as support_config

ALL_FORMATS = ["cutout", "alpha", "composite", "webp", "tiff", "psd", "avif"]
# format → does it have a place for IPTC (see the table in bshmd.outputs.metadata)
HOLDS_IPTC = {"cutout": True, "alpha": True, "composite": True, "webp": False, "tiff": True, "psd": True,
              "avif": False}
# format → does it keep EXIF's sub-IFDs (exposure, GPS); TIFF results keep IFD0's fields only
HOLDS_EXIF_SUB_IFDS = {fmt: fmt != "tiff" for fmt in HOLDS_IPTC}


class RecordingEngine:
    """The stand-in engine, keeping a copy of every image the network was given."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.seen: list[np.ndarray] = []
        self.lock = threading.Lock()

    def predict(self, images: list[np.ndarray]) -> list[Any]:
        with self.lock:
            self.seen.extend(image.copy() for image in images)
        return self.engine.predict(images)


def make_config(tmp: Path, **outputs: Any) -> Config:
    for sub in ("in", "out", "quarantine"):
        (tmp / sub).mkdir(exist_ok=True)
    return support_config.make_config(tmp, batch={"max_size": 4, "max_wait_ms": 20},
                                      pipeline={"decode_workers": 2, "write_workers": 2, "queue_size": 8},
                                      gate={"enabled": False}, outputs=outputs)


def process(config: Config, engine: Any, paths: list[Path]) -> dict[Path, str]:
    """Run ``paths`` through a real Pipeline; input → outcome."""
    outcomes: dict[Path, str] = {}
    pipeline = Pipeline(config, engine, instance_id="test-meta",
                        on_done=lambda job, outcome: outcomes.__setitem__(job.path, str(outcome)))
    pipeline.start()
    try:
        folder = config.folders[0]
        for path in paths:
            assert pipeline.submit(Job(folder=folder, path=path, key=FileKey.of(folder.input, path)), timeout=30)
        assert pipeline.wait_idle(120)
    finally:
        assert pipeline.stop(timeout=30)
    return outcomes


@pytest.fixture
def studio_jpeg(tmp_path: Path, studio_png: Path) -> Path:
    need_tools()
    (tmp_path / "in").mkdir()
    path = tmp_path / "in" / "portrait.jpg"
    with Image.open(studio_png) as image:
        image.convert("RGB").save(path, quality=95)
    tag_studio_photo(path)
    return path


@pytest.fixture
def results(tmp_path: Path, studio_jpeg: Path, engine: Any) -> Iterator[tuple[dict[str, Path], RecordingEngine]]:
    from bshmd.outputs.files import output_paths

    # edges: none, so every pixel the matte shows is the photo's own (soft-edge colour is
    # tests/outputs/test_edges.py's business).
    config = make_config(tmp_path, formats=ALL_FORMATS, composite_format="jpeg", edges="none")
    recording = RecordingEngine(engine)
    assert process(config, recording, [studio_jpeg]) == {studio_jpeg: "processed"}
    yield output_paths(config.folders[0].output, Path("portrait.jpg"), config.outputs), recording


def test_every_format_carries_the_profile_byte_for_byte(results: Any) -> None:
    paths, _ = results
    adobe = ADOBE_RGB.read_bytes()
    for fmt, path in paths.items():
        if fmt == "alpha":  # a grey matte cannot carry an RGB profile
            assert exiftool_icc(path) == b"", fmt
        else:
            assert exiftool_icc(path) == adobe, fmt
    with Image.open(paths["cutout"]) as png, Image.open(paths["webp"]) as webp, Image.open(paths["avif"]) as avif:
        assert png.info["icc_profile"] == webp.info["icc_profile"] == avif.info["icc_profile"] == adobe
        assert avif.mode == "RGBA"
        # AVIF is lossy; its alpha still tells the person from the background.
        matte = np.asarray(png)[:, :, 3].astype(int)
        assert np.abs(np.asarray(avif)[:, :, 3].astype(int) - matte).mean() < 2

    import tifffile
    from psd_tools import PSDImage
    from psd_tools.constants import Resource

    with tifffile.TiffFile(paths["tiff"]) as tif:
        assert tif.pages[0].tags["InterColorProfile"].value == adobe
    assert PSDImage.open(paths["psd"]).image_resources.get_data(Resource.ICC_PROFILE) == adobe


def test_the_pngs_metadata_chunks_are_valid_png(results: Any) -> None:
    import shutil
    import subprocess

    if shutil.which("pngcheck") is None:
        pytest.skip("pngcheck is missing: scripts/setup --dev installs it")
    paths, _ = results
    for fmt in ("cutout", "alpha"):
        check = subprocess.run(["pngcheck", "-v", str(paths[fmt])], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout
        for chunk in ("pHYs", "eXIf", "iTXt", "zTXt", *(("iCCP",) if fmt == "cutout" else ())):
            assert f"chunk {chunk}" in check.stdout, (fmt, chunk)


def test_artist_copyright_creator_keywords_and_dpi_survive(results: Any) -> None:
    paths, _ = results
    for fmt, path in paths.items():
        tags = exiftool_read(path)
        assert "Ann Photographer" in field(tags, "Artist"), fmt
        assert "(c) 2026 Studio North" in field(tags, "Copyright"), fmt
        assert "Ann Photographer" in field(tags, "Creator"), fmt
        if HOLDS_IPTC[fmt]:
            assert {"portrait", "studio"} <= set(field(tags, "Keywords")), fmt
        assert 300 in field(tags, "XResolution") and 300 in field(tags, "YResolution"), fmt
        if HOLDS_EXIF_SUB_IFDS[fmt]:
            assert field(tags, "GPSLatitude"), fmt  # kept: only metadata: strip removes it
            assert field(tags, "ColorSpace") == [65535], fmt
        assert not [w for w in field(tags, "Warning") if "thumbnail" not in str(w).lower()], (fmt, tags)
    with Image.open(paths["cutout"]) as png:
        assert png.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    with Image.open(paths["composite"]) as jpeg:
        # The composite's white background is pinned (RGB components, coefficients rewritten:
        # bshmd.outputs.jpeg); every block above survived that, the resolution in EXIF.
        assert jpeg.info["adobe_transform"] == 0
        assert jpeg.info["dpi"] == (300, 300)


def test_the_network_sees_srgb_and_the_cutout_keeps_the_photos_own_pixels(results: Any, studio_jpeg: Path) -> None:
    paths, recording = results
    with Image.open(studio_jpeg) as photo:
        own = np.asarray(photo.convert("RGB"))
        srgb = ImageCms.profileToProfile(photo.convert("RGB"), ImageCms.getOpenProfile(io.BytesIO(photo.info["icc_profile"])),
                                         ImageCms.createProfile("sRGB"),
                                         renderingIntent=ImageCms.Intent.PERCEPTUAL)
    (seen,) = recording.seen
    srgb = np.asarray(srgb).astype(int)
    assert np.count_nonzero(np.abs(srgb - own) > 2)  # Adobe RGB numbers are not sRGB numbers
    # ±1: LittleCMS rounds a transform built from a serialised profile a hair differently.
    assert np.abs(seen.astype(int) - srgb).max() <= 1
    with Image.open(paths["cutout"]) as cutout:
        rgba = np.asarray(cutout)
    visible = rgba[:, :, 3] > 0
    assert visible.any()
    assert np.array_equal(rgba[:, :, :3][visible], own[visible])


def test_the_psd_is_one_pixel_layer_masked_by_the_matte(results: Any, studio_jpeg: Path) -> None:
    from psd_tools import PSDImage

    paths, _ = results
    with Image.open(paths["alpha"]) as alpha_png:
        matte = np.asarray(alpha_png).astype(int)
    with Image.open(studio_jpeg) as photo:
        own = np.asarray(photo.convert("RGB"))
    document = PSDImage.open(paths["psd"])
    layers = list(document)
    assert len(layers) == 1 and layers[0].kind == "pixel" and layers[0].has_mask()
    layer = layers[0]
    assert layer.bbox == (0, 0, own.shape[1], own.shape[0])
    assert np.array_equal(np.asarray(layer.topil(apply_icc=False).convert("RGB")), own)
    mask = np.asarray(layer.mask.topil()).astype(int)
    assert mask.shape == matte.shape
    assert np.abs(mask - matte).max() <= 1


def test_the_tiff_has_unassociated_alpha_equal_to_the_matte(results: Any) -> None:
    import tifffile

    paths, _ = results
    with Image.open(paths["alpha"]) as alpha_png:
        matte = np.asarray(alpha_png)
    with tifffile.TiffFile(paths["tiff"]) as tif:
        page = tif.pages[0]
        assert page.tags["ExtraSamples"].value == (2,)  # unassociated alpha
        assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        pixels = page.asarray()
    assert pixels.dtype == np.uint8 and pixels.shape == (*matte.shape, 4)
    assert np.array_equal(pixels[:, :, 3], matte)


@pytest.mark.slow
def test_metadata_strip_keeps_only_the_profile(tmp_path: Path, studio_jpeg: Path, engine: Any) -> None:
    from bshmd.outputs.files import output_paths

    config = make_config(tmp_path, formats=ALL_FORMATS, metadata="strip")
    assert process(config, engine, [studio_jpeg]) == {studio_jpeg: "processed"}
    before = exiftool_read(studio_jpeg)
    assert field(before, "GPSLatitude") and field(before, "Artist")
    for fmt, path in output_paths(config.folders[0].output, Path("portrait.jpg"), config.outputs).items():
        tags = exiftool_read(path)
        for name in ("GPSLatitude", "GPSLongitude", "Artist", "Copyright", "Creator", "Keywords"):
            assert not field(tags, name), (fmt, name)
        if fmt != "alpha":
            assert exiftool_icc(path) == ADOBE_RGB.read_bytes(), fmt


def _lab(rgb: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65) of sRGB pixels, by the sRGB and CIE formulas."""
    c = rgb.astype(np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


@pytest.mark.slow
def test_color_srgb_converts_within_delta_e_1_of_littlecms(tmp_path: Path, studio_jpeg: Path, engine: Any) -> None:
    from bshmd.outputs.colour import is_srgb
    from bshmd.outputs.files import output_paths

    config = make_config(tmp_path, formats=["cutout", "tiff", "webp"], color="srgb", webp_quality=100,
                         edges="none")  # every pixel the matte shows is the converted photo's
    assert process(config, engine, [studio_jpeg]) == {studio_jpeg: "processed"}
    # LittleCMS's own conversion, from the input's profile to Debian's sRGB profile file.
    with Image.open(studio_jpeg) as photo:
        reference = np.asarray(ImageCms.profileToProfile(photo.convert("RGB"), str(ADOBE_RGB), str(SRGB),
                                                         renderingIntent=ImageCms.Intent.PERCEPTUAL))
    for fmt, path in output_paths(config.folders[0].output, Path("portrait.jpg"), config.outputs).items():
        icc = exiftool_icc(path)
        assert icc and is_srgb(icc), fmt
        if fmt != "tiff":  # TIFF results keep no EXIF sub-IFD
            assert field(exiftool_read(path), "ColorSpace") == [1], fmt  # EXIF agrees with the profile
        with Image.open(path) as result:
            rgba = np.asarray(result.convert("RGBA"))
        visible = rgba[:, :, 3] > 0
        delta_e = np.linalg.norm(_lab(rgba[:, :, :3][visible]) - _lab(reference[visible]), axis=-1)
        assert delta_e.max() < 1.0, (fmt, float(delta_e.max()))
        assert not np.array_equal(rgba[:, :, :3][visible], np.asarray(Image.open(studio_jpeg).convert("RGB"))[visible])


def test_untagged_inputs_stay_untagged_and_unconverted(tmp_path: Path, engine: Any, studio_png: Path) -> None:
    from bshmd.outputs.files import output_paths

    need_tools()
    config = make_config(tmp_path, formats=["cutout", "tiff"])
    source = tmp_path / "in" / "plain.png"
    with Image.open(studio_png) as image:
        own = np.asarray(image.convert("RGB"))
        Image.fromarray(own).save(source)
    recording = RecordingEngine(engine)
    assert process(config, recording, [source]) == {source: "processed"}
    assert np.array_equal(recording.seen[0], own)
    for path in output_paths(config.folders[0].output, Path("plain.png"), config.outputs).values():
        assert exiftool_icc(path) == b""


def test_a_processed_file_with_no_broken_block_logs_no_warning(tmp_path: Path, studio_jpeg: Path, engine: Any,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bshmd.pipeline")
    config = make_config(tmp_path, formats=["cutout"])
    assert process(config, engine, [studio_jpeg]) == {studio_jpeg: "processed"}
    lines = [r for r in caplog.records if r.getMessage().startswith("processed")]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO and "dropped" not in lines[0].getMessage()


def test_a_greyscale_photo_with_a_grey_profile_is_converted_once_without_warning(
        tmp_path: Path, engine: Any, caplog: pytest.LogCaptureFixture) -> None:
    from bshmd.outputs.files import output_paths
    from tests.outputs.studio_files import ICC_DIR, exiftool_write

    need_tools()
    caplog.set_level(logging.INFO, logger="bshmd.pipeline")
    config = make_config(tmp_path, formats=["cutout"])
    source = tmp_path / "in" / "mono.jpg"
    grey = synthetic_portrait_grey()
    Image.fromarray(grey, "L").save(source, quality=95)
    exiftool_write(source, f"-ICC_Profile<={ICC_DIR / 'Gray.icc'}", "-Artist=Ann Photographer")
    recording = RecordingEngine(engine)
    assert process(config, recording, [source]) == {source: "processed"}
    with Image.open(source) as photo:
        expected = np.asarray(ImageCms.profileToProfile(photo, str(ICC_DIR / "Gray.icc"), ImageCms.createProfile("sRGB"),
                                                        outputMode="RGB"))
    assert np.array_equal(recording.seen[0], expected)
    (line,) = [r for r in caplog.records if r.getMessage().startswith("processed")]
    assert line.levelno == logging.INFO, line.getMessage()
    cutout = output_paths(config.folders[0].output, Path("mono.jpg"), config.outputs)["cutout"]
    assert exiftool_icc(cutout) == b""  # sRGB pixels now, which an untagged file means
    assert "Ann Photographer" in field(exiftool_read(cutout), "Artist")


def synthetic_portrait_grey() -> np.ndarray:
    from bshmd.testing.images import synthetic_portrait

    return np.asarray(Image.fromarray(synthetic_portrait(200, 160, 4)).convert("L"))
