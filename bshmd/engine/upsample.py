"""Resizing around the network: area downscaling in, edge-aware (guided) upsampling out.

Images larger than ``model.max_side`` run on a downscaled copy. Bringing that matte back
with plain bilinear interpolation smears every hair edge over ``scale`` pixels; a guided
filter (He, Sun & Tang; the "fast" variant of He & Sun 2015) instead fits, in each small
window of the low-resolution matte, a linear model ``alpha ≈ a · grey + b`` and applies it to
the full-resolution grey image, so the restored edges follow the photo's own edges.
"""

from __future__ import annotations

from typing import Any

DEFAULT_RADIUS = 4  # window radius in low-resolution pixels; must span the matte's soft edge
DEFAULT_EPS = 1e-4  # regularisation on grey in 0..1: lower follows the guide's edges more closely


def fit_long_side(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(height, width) scaled so that the longer side is ``long_side``; each side at least 1."""
    scale = long_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def downscale(image: Any, long_side: int) -> Any:
    """Shrink ``image`` so its long side is ``long_side``, averaging pixels (cv2.INTER_AREA)."""
    import cv2

    height, width = fit_long_side(image.shape[0], image.shape[1], long_side)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _box(values: Any, radius: int) -> Any:
    import cv2

    size = 2 * radius + 1
    return cv2.boxFilter(values, -1, (size, size), normalize=True, borderType=cv2.BORDER_REFLECT)


_STRIP_ROWS = 64  # full-resolution rows finished at a time: float temporaries under 2 MB at 24 MP


def _grey_small(guide_rgb: Any, small_w: int, small_h: int) -> Any:
    """The guide's grey (0..1, float32) area-averaged down to the matte's size.

    Averaged in 16-bit fixed point (grey·256) rather than from a float32 copy of the whole
    frame: 2 bytes a pixel instead of 4, and 1/256 of a level is far below what the matte shows.
    """
    import cv2
    import numpy as np

    grey = cv2.cvtColor(guide_rgb, cv2.COLOR_RGB2GRAY)
    fixed = cv2.resize(np.left_shift(grey, 8, dtype=np.uint16), (small_w, small_h), interpolation=cv2.INTER_AREA)
    return fixed.astype(np.float32) * (1.0 / (255.0 * 256.0))


def guided_upsample(alpha: Any, guide_rgb: Any, *, radius: int = DEFAULT_RADIUS,
                    eps: float = DEFAULT_EPS) -> Any:
    """Bring the uint8 matte ``alpha`` (h×w) up to ``guide_rgb``'s size (H×W×3 uint8 RGB).

    The linear coefficients are computed at the matte's resolution (cheap even for 50 MP
    photos) and interpolated bilinearly; only the final ``a · grey + b`` uses full-res pixels.
    That last step runs a strip of rows at a time: the coefficients are first stretched to
    full width at low height (as cv2.resize does its horizontal pass), then each strip's rows
    are interpolated vertically, so no full-resolution float array is ever made.
    """
    import cv2
    import numpy as np

    height, width = guide_rgb.shape[:2]
    if alpha.shape[:2] == (height, width):
        return alpha
    small_h, small_w = alpha.shape[:2]
    grey = _grey_small(guide_rgb, small_w, small_h)
    matte = alpha.astype(np.float32) * (1.0 / 255.0)

    radius = max(1, min(radius, (min(small_h, small_w) - 1) // 2 or 1))
    mean_grey = _box(grey, radius)
    mean_matte = _box(matte, radius)
    covariance = _box(grey * matte, radius) - mean_grey * mean_matte
    variance = _box(grey * grey, radius) - mean_grey * mean_grey
    slope = covariance / (variance + eps)
    offset = mean_matte - slope * mean_grey

    # The offset is scaled to 0..255 once, at low resolution, and the slope applies to grey in
    # 0..255, instead of scaling every full-resolution pixel.
    slope = _box(slope, radius)
    offset = _box(offset, radius) * 255.0
    # Vertical bilinear weights as cv2.resize computes them (pixel centres aligned, clamped).
    source_y = (np.arange(height, dtype=np.float64) + 0.5) * (small_h / height) - 0.5
    source_y = np.clip(source_y, 0.0, small_h - 1)
    above = np.minimum(np.floor(source_y).astype(np.intp), small_h - 1)
    below = np.minimum(above + 1, small_h - 1)
    weight = (source_y - above).astype(np.float32)[:, None]

    out = np.empty((height, width), np.uint8)
    for top in range(0, height, _STRIP_ROWS):
        rows = slice(top, min(top + _STRIP_ROWS, height))
        w = weight[rows]
        # Vertically at the matte's width (cheap), then cv2 stretches each row to full width;
        # a height kept as it is makes cv2's vertical pass the identity.
        strip_slope = slope[above[rows]]
        strip_slope += (slope[below[rows]] - strip_slope) * w
        strip_offset = offset[above[rows]]
        strip_offset += (offset[below[rows]] - strip_offset) * w
        size = (width, strip_slope.shape[0])
        result = cv2.resize(strip_slope, size, interpolation=cv2.INTER_LINEAR)
        result *= cv2.cvtColor(guide_rgb[rows], cv2.COLOR_RGB2GRAY)
        result += cv2.resize(strip_offset, size, interpolation=cv2.INTER_LINEAR)
        np.maximum(result, 0.0, out=result)
        out[rows] = cv2.convertScaleAbs(result)  # rounds to nearest and saturates at 255 in one pass
    return out
