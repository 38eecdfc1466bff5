"""Clean edges: the subject's own colour where the matte is soft, without the old backdrop.

A photo pixel at a soft edge (hair, chiffon, motion blur) is a mix ``I = a·F + (1−a)·B`` of
the subject's colour F and the backdrop's B. A cut-out that keeps I, or a composite
``a·I + (1−a)·W`` on a new background W, carries ``a·(1−a)·B`` of the old backdrop along: a
green fringe on white. Estimating F and using it instead removes that fringe.

The estimator is blur-fusion foreground estimation (Forte & Pitié, "Approximate fast
foreground colour estimation", ICIP 2021, the two-pass variant ``r = 90`` then ``r = 6``):
box-blurred, alpha-weighted means of the photo give smooth estimates of F and B, and one
correction step per pixel makes ``a·F + (1−a)·B`` match the photo again. It is a handful of
box blurs (OpenCV), so no new dependency; multi-level estimation (Germer et al. 2020, in
pymatting) is of similar quality but needs numba, whose JIT start-up and LLVM runtime the
daemon would carry for one function.

Where it is cheap: only pixels with ``0 < alpha < 255`` need F (opaque pixels are the
photo, transparent ones are invisible), and the blurred means are smooth by construction.
So the blurs run on a copy at most ``WORK_SIDE`` pixels on its long side, and the full
resolution is touched only in the soft band, where the blurred means are sampled
(bilinear) and the correction step uses the full-resolution photo and matte, which keeps
each strand of hair.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

EDGE_MODES = ("none", "decontaminate")
WORK_SIDE = 1024  # long side of the copy the blurs run on: the size the paper's radii suit
COARSE_RADIUS = 90  # first pass: the backdrop's and subject's colour in the large
FINE_RADIUS = 6  # second pass: local colour next to the edge
_EPS = 1e-5
_ROW = 4096


def clean_edges(rgb: np.ndarray, alpha: np.ndarray, mode: str) -> np.ndarray:
    """The colour to show the subject with: ``rgb`` itself, or with its soft edges decontaminated."""
    if mode == "none":
        return rgb
    if mode == "decontaminate":
        return estimate_foreground(rgb, alpha)
    raise ValueError(f"unknown edges mode {mode!r}; expected one of {', '.join(EDGE_MODES)}")


def _blurred_means(image: np.ndarray, fg: np.ndarray, bg: np.ndarray, a: np.ndarray,
                   radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Alpha-weighted box means of the foreground and (1−alpha)-weighted of the background."""
    import cv2

    size = (radius, radius)
    blurred_a = cv2.blur(a, size)[:, :, None]
    mean_fg = cv2.blur(fg * a[:, :, None], size) / (blurred_a + _EPS)
    mean_bg = cv2.blur(bg * (1.0 - a[:, :, None]), size) / (1.0 - blurred_a + _EPS)
    return mean_fg, mean_bg


def _correct(image: np.ndarray, a: np.ndarray, mean_fg: np.ndarray, mean_bg: np.ndarray) -> np.ndarray:
    """One step towards ``a·F + (1−a)·B = image`` (the paper's update), clipped to 0..255.

    Overwrites and returns ``image``: at 24 MP the band holds millions of pixels.
    """
    import numpy as np

    # mean_fg + a·(image − a·mean_fg − (1−a)·mean_bg), rearranged to work in place.
    residual = np.subtract(image, mean_bg, out=image)
    residual -= a * (mean_fg - mean_bg)
    residual *= a
    residual += mean_fg
    return np.clip(residual, 0.0, 255.0, out=residual)


def _sample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` at the points (x, y): an (N, channels) array."""
    import cv2
    import numpy as np

    # remap's output must be under 32767 on each side: lay the N points out as rows of 4096.
    count = x.size
    rows = -(-count // _ROW)
    map_x = np.zeros(rows * _ROW, np.float32)
    map_y = np.zeros(rows * _ROW, np.float32)
    map_x[:count], map_y[:count] = x, y
    sampled = cv2.remap(image, map_x.reshape(rows, _ROW), map_y.reshape(rows, _ROW), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
    return sampled.reshape(rows * _ROW, -1)[:count]


def estimate_foreground(rgb: np.ndarray, alpha: np.ndarray, *, work_side: int = WORK_SIDE) -> np.ndarray:
    """A copy of ``rgb`` whose soft-edge pixels (0 < alpha < 255) hold the estimated foreground.

    Pixels with alpha 0 or 255 keep the photo's colour exactly.
    """
    import cv2
    import numpy as np

    height, width = alpha.shape
    band = cv2.findNonZero(cv2.inRange(alpha, 1, 254))
    if band is None:
        return rgb
    band = band.reshape(-1, 2)  # (N, 1, 2) in OpenCV 4, (N, 2) in 5
    xs, ys = band[:, 0], band[:, 1]
    index = ys.astype(np.intp) * width + xs  # flat indices: take/put are several times faster

    # An integer factor keeps INTER_AREA on its fast path (a plain k×k mean). The last
    # (size mod k) rows and columns stay out of the copy; their band pixels sample its edge.
    factor = -(-max(height, width) // work_side)
    if factor > 1:
        small_w, small_h = max(1, width // factor), max(1, height // factor)
        crop_w, crop_h = min(width, small_w * factor), min(height, small_h * factor)
        small_rgb = cv2.resize(rgb[:crop_h, :crop_w], (small_w, small_h), interpolation=cv2.INTER_AREA)
        small_alpha = cv2.resize(alpha[:crop_h, :crop_w], (small_w, small_h), interpolation=cv2.INTER_AREA)
    else:
        small_rgb, small_alpha = rgb, alpha
    image = small_rgb.astype(np.float32)
    a = small_alpha.astype(np.float32) * (1.0 / 255.0)
    mean_fg, mean_bg = _blurred_means(image, image, image, a, COARSE_RADIUS)
    coarse_fg = _correct(image.copy(), a[:, :, None], mean_fg, mean_bg)
    mean_fg, mean_bg = _blurred_means(image, coarse_fg, mean_bg, a, FINE_RADIUS)

    if factor > 1:
        # The smooth means at the band's full-resolution pixel centres.
        map_x = (xs.astype(np.float32) + 0.5) * (small_w / crop_w) - 0.5
        map_y = (ys.astype(np.float32) + 0.5) * (small_h / crop_h) - 0.5
        band_fg, band_bg = _sample(mean_fg, map_x, map_y), _sample(mean_bg, map_x, map_y)
    else:
        band_fg = np.take(mean_fg.reshape(-1, 3), index, axis=0)
        band_bg = np.take(mean_bg.reshape(-1, 3), index, axis=0)
    band_a = np.take(alpha.reshape(-1), index).astype(np.float32)[:, None] * (1.0 / 255.0)
    band_image = np.take(rgb.reshape(-1, 3), index, axis=0).astype(np.float32)
    band_fg = _correct(band_image, band_a, band_fg, band_bg)
    foreground = rgb.copy()
    # Each pixel as one 3-byte item: np.put then moves a pixel per index, 4x faster than a
    # fancy-indexed assignment of rows.
    pixel = np.dtype((np.void, 3))
    values = np.rint(band_fg, out=band_fg).astype(np.uint8)
    np.put(foreground.reshape(-1, 3).view(pixel).reshape(-1), index, values.view(pixel).reshape(-1))
    return foreground
