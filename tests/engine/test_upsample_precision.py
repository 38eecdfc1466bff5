"""The strip-wise guided upsample gives the matte the full-frame float32 version gave."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

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


@pytest.mark.parametrize(("up", "down", "transpose"), [
    (3.2, 1.0, False),    # the real matte as the network made it, 3.2× up
    (3.0, 0.737, False),  # a scale that is no simple fraction; strips end mid-pixel
    (3.2, 1.0, True),     # the other orientation: rows and columns swap roles
])
def test_matte_is_within_one_level_of_the_full_frame_version(studio_png: Path, studio_matte: np.ndarray,
                                                             up: float, down: float, transpose: bool) -> None:
    matte = studio_matte
    if down != 1.0:
        size = (round(matte.shape[1] * down), round(matte.shape[0] * down))
        matte = cv2.resize(matte, size, interpolation=cv2.INTER_AREA)
    height, width = round(matte.shape[0] * up), round(matte.shape[1] * up)
    guide = studio_photo(studio_png, width, height)
    if transpose:
        matte, guide = np.ascontiguousarray(matte.T), np.ascontiguousarray(guide.transpose(1, 0, 2))
    new = guided_upsample(matte, guide)
    old = full_frame_upsample(matte, guide)
    assert new.shape == old.shape == guide.shape[:2]
    difference = np.abs(new.astype(int) - old)
    assert difference.max() <= 1
    assert np.count_nonzero(difference) < 1e-4 * difference.size
    # Not trivially equal: the matte has a soft edge that the guide shapes.
    assert np.count_nonzero((new > 10) & (new < 245)) > 1000


def test_a_matte_at_full_size_is_returned_as_it_is(studio_matte: np.ndarray) -> None:
    guide = np.zeros((*studio_matte.shape, 3), np.uint8)
    assert guided_upsample(studio_matte, guide) is studio_matte
