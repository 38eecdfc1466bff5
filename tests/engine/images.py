"""Synthetic test pictures for the engine tests."""

from __future__ import annotations

import numpy as np


def subject_on_backdrop(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A reddish block on a plain grey backdrop, with a little sensor noise."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 128, dtype=np.int16)
    top, left = height // 4, width // 4
    image[top: height - top, left: width - left] = (200, 40 + seed % 50, 40)
    image += rng.integers(-2, 3, image.shape, dtype=np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


def disc(height: int, width: int, radius_fraction: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """A sharp bright disc on a dark backdrop, and its true matte (0/255)."""
    rows, cols = np.mgrid[0:height, 0:width]
    radius = radius_fraction * min(height, width)
    inside = (rows - height / 2) ** 2 + (cols - width / 2) ** 2 <= radius**2
    image = np.where(inside[:, :, None], np.uint8(230), np.uint8(30)).astype(np.uint8)
    image = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
    return np.ascontiguousarray(image), inside.astype(np.uint8) * 255
