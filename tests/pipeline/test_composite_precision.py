"""Integer compositing and masking give today's float results on the real photo and matte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bshmd.config import OutputsConfig
from bshmd.outputs.render import composite, cutout_pixels


def float_composite(rgb: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The float32 formula bshmd used before compositing moved to integers (the reference)."""
    a = alpha.astype(np.float32)[:, :, None] / 255.0
    mixed = rgb.astype(np.float32) * a + background.astype(np.float32) * (1.0 - a)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


@pytest.fixture
def studio_rgb(studio_png: Path) -> np.ndarray:
    with Image.open(studio_png) as image:
        return np.asarray(image.convert("RGB")).copy()


@pytest.mark.parametrize("colour", ["#ffffff", "#000000", "#3a7f21"])
def test_composite_on_a_colour_is_within_one_level(studio_rgb: np.ndarray, studio_matte: np.ndarray,
                                                   colour: str) -> None:
    background = np.empty_like(studio_rgb)
    background[:] = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    new = composite(studio_rgb, studio_matte, OutputsConfig(background=colour)).astype(int)
    old = float_composite(studio_rgb, studio_matte, background).astype(int)
    assert np.abs(new - old).max() <= 1
    assert np.count_nonzero(new != old) < 0.001 * new.size  # only exact halves round differently
    # Where the matte is 0 or 255 the result is exactly the background or the photo.
    np.testing.assert_array_equal(new[studio_matte == 255], studio_rgb[studio_matte == 255])
    np.testing.assert_array_equal(new[studio_matte == 0], background[studio_matte == 0])


def test_composite_on_an_image_is_within_one_level(tmp_path: Path, shared_testdata: Path,
                                                   studio_rgb: np.ndarray, studio_matte: np.ndarray) -> None:
    backdrop = tmp_path / "backdrop.png"
    height, width = studio_matte.shape
    with Image.open(shared_testdata / "no-person-rocket.jpg") as image:
        image.convert("RGB").resize((width, height)).save(backdrop)
    with Image.open(backdrop) as image:
        background = np.asarray(image).copy()
    new = composite(studio_rgb, studio_matte, OutputsConfig(background_image=backdrop)).astype(int)
    old = float_composite(studio_rgb, studio_matte, background).astype(int)
    assert np.abs(new - old).max() <= 1


@pytest.mark.parametrize("clear", [True, False])
def test_cutout_pixels_match_the_boolean_mask(studio_rgb: np.ndarray, studio_matte: np.ndarray, clear: bool) -> None:
    expected = np.dstack([studio_rgb, studio_matte])
    if clear:
        expected[studio_matte == 0, :3] = 0
    np.testing.assert_array_equal(cutout_pixels(studio_rgb, studio_matte, clear), expected)
