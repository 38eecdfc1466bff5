"""The strip-wise guided upsample gives the matte the full-frame float32 version gave."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from bshmd.engine.upsample import DEFAULT_EPS, DEFAULT_RADIUS, _box, guided_upsample
from bshmd.testing.studio import studio_photo


def full_frame_upsample(alpha: np.ndarray, guide_rgb: np.ndarray) -> np.ndarray:
    """guided_upsample as bshmd computed it before, on full-resolution float32 arrays (the reference)."""
    height, width = guide_rgb.shape[:2]
    grey_full = cv2.cvtColor(guide_rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) * (1.0 / 255.0)
    small_h, small_w = alpha.shape[:2]
    grey = cv2.resize(grey_full, (small_w, small_h), interpolation=cv2.INTER_AREA)
    matte = alpha.astype(np.float32) * (1.0 / 255.0)
    radius = max(1, min(DEFAULT_RADIUS, (min(small_h, small_w) - 1) // 2 or 1))
    mean_grey, mean_matte = _box(grey, radius), _box(matte, radius)
    slope = (_box(grey * matte, radius) - mean_grey * mean_matte) / (
        _box(grey * grey, radius) - mean_grey * mean_grey + DEFAULT_EPS)
    offset = mean_matte - slope * mean_grey
    slope_full = cv2.resize(_box(slope, radius), (width, height), interpolation=cv2.INTER_LINEAR)
    offset_full = cv2.resize(_box(offset, radius), (width, height), interpolation=cv2.INTER_LINEAR)
    result = np.clip(slope_full * grey_full + offset_full, 0.0, 1.0) * 255.0
    return np.rint(result).astype(np.uint8)


@pytest.fixture
def bshm_matte(shared_testdata: Path) -> np.ndarray:
    with Image.open(shared_testdata / "portrait-studio.bshm-alpha.png") as image:
        return np.asarray(image.convert("L")).copy()


@pytest.mark.parametrize(("size", "small"), [
    ((3000, 1688), (948, 533)),     # the real matte as the model made it, 3.2× up
    ((2111, 1187), (700, 394)),     # a scale that is no simple fraction; strips end mid-pixel
    ((1688, 3000), (533, 948)),     # portrait orientation: more rows than columns
])
def test_matte_is_within_one_level_of_the_full_frame_version(shared_testdata: Path, bshm_matte: np.ndarray,
                                                             size: tuple[int, int], small: tuple[int, int]) -> None:
    width, height = size
    matte = bshm_matte if small == (948, 533) else cv2.resize(bshm_matte, small, interpolation=cv2.INTER_AREA)
    if width < height:
        matte = np.ascontiguousarray(np.rot90(cv2.resize(bshm_matte, (small[1], small[0]))))
    guide = studio_photo(shared_testdata / "portrait-studio.png", max(size), min(size))
    if width < height:
        guide = np.ascontiguousarray(np.rot90(guide))
    new = guided_upsample(matte, guide)
    old = full_frame_upsample(matte, guide)
    assert new.shape == old.shape == (height, width)
    difference = np.abs(new.astype(int) - old)
    assert difference.max() <= 1
    assert np.count_nonzero(difference) < 1e-4 * difference.size
    # Not trivially equal: the matte has a soft edge that the guide shapes.
    assert np.count_nonzero((new > 10) & (new < 245)) > 1000


def test_a_matte_at_full_size_is_returned_as_it_is(bshm_matte: np.ndarray) -> None:
    guide = np.zeros((*bshm_matte.shape, 3), np.uint8)
    assert guided_upsample(bshm_matte, guide) is bshm_matte
