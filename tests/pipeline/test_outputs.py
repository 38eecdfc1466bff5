"""Result files rendered from the real BSHM matte of a real photo, written all-or-nothing."""

from __future__ import annotations

import io
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from PIL import Image

from bshmd.config import OutputsConfig
from bshmd.fs.atomic import UnsafePathError
from bshmd.outputs.files import output_paths, write_outputs
from bshmd.outputs.render import feather, render_outputs

ALL = ("cutout", "alpha", "composite", "webp")


def decode(blob: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(blob))
    image.load()
    return image


def test_names_keep_the_input_extension_so_siblings_never_collide(tmp_path: Path) -> None:
    outputs = OutputsConfig(formats=ALL)
    jpg = output_paths(tmp_path, PurePosixPath("shoot/a.jpg"), outputs)
    png = output_paths(tmp_path, PurePosixPath("shoot/a.png"), outputs)
    assert {k: p.relative_to(tmp_path).as_posix() for k, p in jpg.items()} == {
        "cutout": "shoot/a.jpg.cutout.png",
        "alpha": "shoot/a.jpg.alpha.png",
        "composite": "shoot/a.jpg.composite.jpg",
        "webp": "shoot/a.jpg.cutout.webp",
    }
    assert not set(jpg.values()) & set(png.values())
    as_png = output_paths(tmp_path, PurePosixPath("a.jpg"), OutputsConfig(formats=("composite",), composite_format="png"))
    assert as_png == {"composite": tmp_path / "a.jpg.composite.png"}


@pytest.mark.parametrize("bad", ["../a.jpg", "/etc/a.jpg"])
def test_relpaths_outside_the_tree_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        output_paths(tmp_path, PurePosixPath(bad), OutputsConfig())


def photo_under(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The colour a cut-out carries by default: the photo, black where fully transparent."""
    expected = rgb.copy()
    expected[alpha == 0] = 0
    return expected


def test_cleared_transparent_colour_makes_smaller_cutouts(studio_rgb: np.ndarray, studio_matte: np.ndarray) -> None:
    kept = render_outputs(studio_rgb, studio_matte, OutputsConfig(formats=("cutout", "webp"), webp_quality=100,
                                                                  clear_transparent=False, edges="none"))
    cleared = render_outputs(studio_rgb, studio_matte, OutputsConfig(formats=("cutout", "webp"), webp_quality=100))
    transparent = np.count_nonzero(studio_matte == 0) / studio_matte.size
    assert transparent > 0.3  # the background of the portrait
    for fmt in ("cutout", "webp"):
        pixels = np.asarray(decode(kept[fmt]).convert("RGBA"))
        np.testing.assert_array_equal(pixels[:, :, :3], studio_rgb)  # every colour kept
        np.testing.assert_array_equal(pixels[:, :, 3], studio_matte)
        # The cleared background costs almost nothing: at least half of its share of the bytes goes.
        assert len(cleared[fmt]) < len(kept[fmt]) * (1 - transparent / 2), (fmt, len(cleared[fmt]), len(kept[fmt]))


def test_cutout_carries_the_photo_and_exactly_the_matte(studio_rgb: np.ndarray, studio_matte: np.ndarray) -> None:
    blobs = render_outputs(studio_rgb, studio_matte, OutputsConfig(formats=("cutout", "alpha"), edges="none"))
    cutout = decode(blobs["cutout"])
    assert cutout.mode == "RGBA" and cutout.size == (512, 600)
    pixels = np.asarray(cutout)
    np.testing.assert_array_equal(pixels[:, :, 3], studio_matte)
    np.testing.assert_array_equal(pixels[:, :, :3], photo_under(studio_rgb, studio_matte))
    alpha = decode(blobs["alpha"])
    assert alpha.mode == "L"
    np.testing.assert_array_equal(np.asarray(alpha), studio_matte)


def test_composite_on_a_colour_follows_the_formula(studio_rgb: np.ndarray, studio_matte: np.ndarray) -> None:
    outputs = OutputsConfig(formats=("composite",), composite_format="png", background="#204060", edges="none")
    result = np.asarray(decode(render_outputs(studio_rgb, studio_matte, outputs)["composite"]))
    a = studio_matte.astype(np.float64)[:, :, None] / 255
    expected = np.rint(studio_rgb * a + np.array([0x20, 0x40, 0x60]) * (1 - a))
    assert np.abs(result.astype(int) - expected.astype(int)).max() <= 1
    background_only = studio_matte == 0
    assert (result[background_only] == [0x20, 0x40, 0x60]).all()


def test_composite_jpeg_is_a_jpeg_of_full_size(studio_rgb: np.ndarray, studio_matte: np.ndarray) -> None:
    image = decode(render_outputs(studio_rgb, studio_matte, OutputsConfig(formats=("composite",)))["composite"])
    assert image.format == "JPEG" and image.size == (512, 600) and image.mode == "RGB"


def test_composite_on_a_background_image_covers_and_centres(tmp_path: Path, studio_rgb: np.ndarray,
                                                             studio_matte: np.ndarray) -> None:
    # A 200×100 background, left half red, right half blue: covering a 512×600 frame scales it
    # by 6 and crops the sides, so the frame's left edge is red and its right edge blue.
    background = np.zeros((100, 200, 3), np.uint8)
    background[:, :100] = (255, 0, 0)
    background[:, 100:] = (0, 0, 255)
    Image.fromarray(background).save(tmp_path / "bg.png")
    outputs = OutputsConfig(formats=("composite",), composite_format="png", background_image=tmp_path / "bg.png")
    result = np.asarray(decode(render_outputs(studio_rgb, np.zeros_like(studio_matte), outputs)["composite"]))
    assert result.shape == (600, 512, 3)
    assert tuple(result[300, 5]) == (255, 0, 0) and tuple(result[300, 506]) == (0, 0, 255)


def test_feather_softens_every_format_the_same_way(studio_rgb: np.ndarray, studio_matte: np.ndarray) -> None:
    outputs = OutputsConfig(formats=("cutout", "alpha", "webp"), feather_px=3, webp_quality=100)
    blobs = render_outputs(studio_rgb, studio_matte, outputs)
    softened = feather(studio_matte, 3)
    assert not np.array_equal(softened, studio_matte)
    assert np.count_nonzero((softened > 12) & (softened < 243)) > np.count_nonzero(
        (studio_matte > 12) & (studio_matte < 243))
    np.testing.assert_array_equal(np.asarray(decode(blobs["alpha"])), softened)
    np.testing.assert_array_equal(np.asarray(decode(blobs["cutout"]))[:, :, 3], softened)
    np.testing.assert_array_equal(np.asarray(decode(blobs["webp"]))[:, :, 3], softened)


def test_webp_is_lossless_at_quality_100_and_smaller_below(studio_rgb: np.ndarray, studio_matte: np.ndarray) -> None:
    lossless = render_outputs(studio_rgb, studio_matte, OutputsConfig(formats=("webp",), webp_quality=100,
                                                                  edges="none"))["webp"]
    pixels = np.asarray(decode(lossless))
    np.testing.assert_array_equal(pixels[:, :, 3], studio_matte)
    np.testing.assert_array_equal(pixels[:, :, :3], photo_under(studio_rgb, studio_matte))
    lossy = render_outputs(studio_rgb, studio_matte, OutputsConfig(formats=("webp",), webp_quality=60))["webp"]
    assert decode(lossy).mode == "RGBA" and len(lossy) < len(lossless)


def test_png_compression_level_is_used(studio_rgb: np.ndarray, studio_matte: np.ndarray) -> None:
    fast = render_outputs(studio_rgb, studio_matte, OutputsConfig(png_compression=0))["cutout"]
    small = render_outputs(studio_rgb, studio_matte, OutputsConfig(png_compression=9))["cutout"]
    assert len(fast) > len(small)
    assert np.array_equal(np.asarray(decode(fast)), np.asarray(decode(small)))


def test_mismatched_matte_is_a_programming_error(studio_rgb: np.ndarray) -> None:
    with pytest.raises(ValueError, match="matte"):
        render_outputs(studio_rgb, np.zeros((10, 10), np.uint8), OutputsConfig())


def test_write_outputs_writes_every_format_with_mode(tmp_path: Path, studio_rgb: np.ndarray,
                                                     studio_matte: np.ndarray) -> None:
    outputs = OutputsConfig(formats=ALL, file_mode="0640")
    paths = output_paths(tmp_path, PurePosixPath("s/a.jpg"), outputs)
    write_outputs(paths, render_outputs(studio_rgb, studio_matte, outputs), output_root=tmp_path,
                  file_mode=outputs.file_mode, group=None)
    for path in paths.values():
        assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == sorted(p.name for p in paths.values())


def test_write_outputs_is_all_or_nothing(tmp_path: Path) -> None:
    root = tmp_path / "out"
    (root / "s").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "t").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    paths = {"cutout": root / "s" / "a.jpg.cutout.png", "alpha": root / "t" / "a.jpg.alpha.png"}
    with pytest.raises(UnsafePathError):
        write_outputs(paths, {"cutout": b"1", "alpha": b"2"}, output_root=root, file_mode=0o644, group=None)
    assert list((root / "s").iterdir()) == []  # the first file, written, was removed again
    assert list((tmp_path / "elsewhere").iterdir()) == []
