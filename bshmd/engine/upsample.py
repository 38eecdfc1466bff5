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


def guided_upsample(alpha: Any, guide_rgb: Any, *, radius: int = DEFAULT_RADIUS,
                    eps: float = DEFAULT_EPS) -> Any:
    """Bring the uint8 matte ``alpha`` (h×w) up to ``guide_rgb``'s size (H×W×3 uint8 RGB).

    The linear coefficients are computed at the matte's resolution (cheap even for 50 MP
    photos) and interpolated bilinearly; only the final ``a · grey + b`` uses full-res pixels.
    """
    import cv2
    import numpy as np

    height, width = guide_rgb.shape[:2]
    if alpha.shape[:2] == (height, width):
        return alpha
    grey_full = cv2.cvtColor(guide_rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) * (1.0 / 255.0)
    small_h, small_w = alpha.shape[:2]
    grey = cv2.resize(grey_full, (small_w, small_h), interpolation=cv2.INTER_AREA)
    matte = alpha.astype(np.float32) * (1.0 / 255.0)

    radius = max(1, min(radius, (min(small_h, small_w) - 1) // 2 or 1))
    mean_grey = _box(grey, radius)
    mean_matte = _box(matte, radius)
    covariance = _box(grey * matte, radius) - mean_grey * mean_matte
    variance = _box(grey * grey, radius) - mean_grey * mean_grey
    slope = covariance / (variance + eps)
    offset = mean_matte - slope * mean_grey

    slope_full = cv2.resize(_box(slope, radius), (width, height), interpolation=cv2.INTER_LINEAR)
    offset_full = cv2.resize(_box(offset, radius), (width, height), interpolation=cv2.INTER_LINEAR)
    result = slope_full * grey_full
    result += offset_full
    np.clip(result, 0.0, 1.0, out=result)
    result *= 255.0
    return np.rint(result).astype(np.uint8)
