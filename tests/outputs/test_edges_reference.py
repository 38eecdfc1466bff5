"""The window-wise estimator against the per-pixel one it replaced, kept here as the reference.

Both take the same smooth means (smooth_means); they sample them differently (cv2.resize of a
window vs remap at each band pixel, 1/32-pixel steps) and round once each, so they may differ
by one level, never more.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bshmd.outputs.edges import WORK_SIDE, _correct, estimate_foreground, smooth_means


def reference_foreground(rgb: np.ndarray, alpha: np.ndarray, work_side: int = WORK_SIDE) -> np.ndarray:
    """bshmd 0.1's estimator: the band's pixels gathered into (N, 3) arrays, corrected, put back."""
    import cv2

    height, width = alpha.shape
    band = cv2.findNonZero(cv2.inRange(alpha, 1, 254))
    if band is None:
        return rgb
    band = band.reshape(-1, 2)
    xs, ys = band[:, 0], band[:, 1]
    factor, mean_fg, mean_bg = smooth_means(rgb, alpha, work_side)
    small_h, small_w = mean_fg.shape[:2]
    crop_w, crop_h = min(width, small_w * factor), min(height, small_h * factor)
    if factor > 1:
        map_x = ((xs.astype(np.float32) + 0.5) * (small_w / crop_w) - 0.5)[None, :]
        map_y = ((ys.astype(np.float32) + 0.5) * (small_h / crop_h) - 0.5)[None, :]
        sample = [cv2.remap(m, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[0]
                  for m in (mean_fg, mean_bg)] if xs.size < 32767 else None
        if sample is None:  # remap's output side must stay under 32767
            rows = -(-xs.size // 4096)
            pad = rows * 4096 - xs.size
            grid_x = np.pad(map_x[0], (0, pad)).reshape(rows, 4096)
            grid_y = np.pad(map_y[0], (0, pad)).reshape(rows, 4096)
            sample = [cv2.remap(m, grid_x, grid_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                      .reshape(-1, 3)[:xs.size] for m in (mean_fg, mean_bg)]
        band_fg, band_bg = sample
    else:
        band_fg, band_bg = mean_fg[ys, xs], mean_bg[ys, xs]
    band_a = alpha[ys, xs].astype(np.float32)[:, None] / 255.0
    corrected = _correct(rgb[ys, xs].astype(np.float32), band_a, band_fg, band_bg)
    foreground = rgb.copy()
    foreground[ys, xs] = np.rint(corrected).astype(np.uint8)
    return foreground


def scaled_portrait(rgb: np.ndarray, matte: np.ndarray, scale: int, extra: tuple[int, int]) -> tuple[Any, Any]:
    """The portrait and its matte ``scale`` times larger plus ``extra`` (rows, columns), with grain."""
    import cv2

    height, width = matte.shape
    size = (scale * width + extra[1], scale * height + extra[0])
    big = cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC).astype(np.float32)
    big += np.random.default_rng(0).normal(0, 3, big.shape).astype(np.float32)
    return np.clip(big, 0, 255).astype(np.uint8), cv2.resize(matte, size, interpolation=cv2.INTER_LINEAR)


@pytest.mark.parametrize(("scale", "extra", "divisor"), [(1, (0, 0), 1), (3, (2, 1), 4), (3, (0, 0), 3),
                                                         (2, (5, 3), 7)])
def test_strips_match_the_per_pixel_estimator_within_one_level(
        studio_rgb: np.ndarray, studio_matte: np.ndarray, scale: int, extra: tuple[int, int], divisor: int) -> None:
    # divisor 1 works at full resolution; the others on a copy 1/divisor of the long side
    # (some with the size-mod-factor rows and columns that stay out of the copy).
    rgb, alpha = scaled_portrait(studio_rgb[:, :, :3], studio_matte, scale, extra)
    work_side = -(-max(alpha.shape) // divisor)
    expected = reference_foreground(rgb, alpha, work_side)
    actual = estimate_foreground(rgb, alpha, work_side=work_side)
    soft = (alpha > 0) & (alpha < 255)
    assert soft.mean() > 0.02  # the band is what is compared
    np.testing.assert_array_equal(actual[~soft], rgb[~soft])
    assert np.abs(actual.astype(np.int16) - expected).max() <= 1
    assert np.count_nonzero(actual != expected) < 0.01 * actual.size  # off by one only on rounding ties


def test_windows_hold_every_soft_pixel_once_and_little_else(studio_matte: np.ndarray) -> None:
    # The portrait's matte 3x larger (about 2800 px wide: runs longer than a window's limit
    # are cut), plus lone soft pixels far from its band, in the last partial tile column and
    # row, and a fully soft strip across the bottom.
    import cv2

    from bshmd.outputs.edges import _band_windows

    height, width = studio_matte.shape
    alpha = cv2.resize(studio_matte, (3 * width + 5, 3 * height + 7), interpolation=cv2.INTER_LINEAR)
    alpha[np.where(alpha == 255)[0][0], np.where(alpha == 255)[1][0]] = 200
    alpha[0, 0] = alpha[-1, -1] = alpha[40, -1] = alpha[-1, 3] = 1
    alpha[-20:-12] = 128
    expected = cv2.inRange(alpha, 1, 254)
    covered = np.zeros(alpha.shape, np.uint8)
    area = 0
    for rows, cols, soft in _band_windows(alpha):
        np.testing.assert_array_equal(soft, expected[rows, cols])
        assert not covered[rows, cols].any(), "windows overlap"
        covered[rows, cols] = 255
        area += soft.size
    assert not np.count_nonzero(expected & ~covered), "soft pixels outside every window"
    assert area < 2.5 * np.count_nonzero(expected), (area, np.count_nonzero(expected))
