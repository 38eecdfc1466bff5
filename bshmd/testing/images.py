"""Synthetic photographs for tests and benchmarks: a darker 'person' on a light backdrop."""

from __future__ import annotations

from typing import Any


def synthetic_portrait(width: int, height: int, seed: int = 0, *, noise: float = 2.0) -> Any:
    """uint8 H×W×3 RGB: an ellipse (the subject) on a flat light backdrop, plus Gaussian noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), np.float32)
    image[:] = (225, 228, 222)
    yy, xx = np.mgrid[0:height, 0:width]
    inside = ((xx - width / 2) / (width * 0.28)) ** 2 + ((yy - height * 0.55) / (height * 0.4)) ** 2 <= 1
    image[inside] = (90 + seed % 50, 60, 50)
    image += rng.normal(0, noise, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)
