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
resolution is touched a strip of rows at a time, in the band's bounding box within it: the
blurred means are upsampled (bilinear) for that window only, the correction step uses the
full-resolution photo and matte, which keeps each strand of hair, and only band pixels are
written back. Against gathering the band's pixels into (N, 3) arrays, as bshmd 0.1 did, dense
windows cost about the same at 5-10 % of a 24 MP frame and half at 33 %, and their
temporaries stay a few MB per strip instead of growing with the band (600 MB at 33 %).
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
_STRIP_PIXELS = 1 << 17  # pixels of the frame finished at a time: ~1.5 MB per float32 temporary


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


def _upsampled(small: np.ndarray, rows: slice, cols: slice, factor: int) -> np.ndarray:
    """The bilinear upsample of ``small`` by ``factor``, at the full-resolution window (rows, cols).

    Equal to sampling ``small`` at each window pixel's centre ``(x + 0.5) / factor − 0.5``,
    edge pixels replicated, but made by cv2.resize (several times faster than remap) of just
    the small pixels the window needs, plus one on each side so that the window's edge
    interpolates as the whole frame's would. Full-resolution pixels past ``factor × small``
    (the frame's last size-mod-factor rows and columns) take the edge value, as a clamp would.
    """
    import cv2

    if factor == 1:
        return small[rows, cols]
    spans = []
    for window, count in ((rows, small.shape[0]), (cols, small.shape[1])):
        first, stop = max(0, window.start // factor - 1), min(count, (window.stop - 1) // factor + 2)
        spans.append((first, stop, window.start - first * factor, window.stop - window.start))
    (top, bottom, dy, height), (left, right, dx, width) = spans
    patch = cv2.resize(small[top:bottom, left:right], ((right - left) * factor, (bottom - top) * factor),
                       interpolation=cv2.INTER_LINEAR)
    short_y, short_x = max(0, dy + height - patch.shape[0]), max(0, dx + width - patch.shape[1])
    if short_y or short_x:
        patch = cv2.copyMakeBorder(patch, 0, short_y, 0, short_x, cv2.BORDER_REPLICATE)
    return patch[dy:dy + height, dx:dx + width]


def estimate_foreground(rgb: np.ndarray, alpha: np.ndarray, *, work_side: int = WORK_SIDE) -> np.ndarray:
    """A copy of ``rgb`` whose soft-edge pixels (0 < alpha < 255) hold the estimated foreground.

    Pixels with alpha 0 or 255 keep the photo's colour exactly.
    """
    import cv2
    import numpy as np

    height, width = alpha.shape
    # An integer factor keeps INTER_AREA on its fast path (a plain k×k mean). The last
    # (size mod k) rows and columns stay out of the copy; their band pixels take its edge.
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
    spread = np.subtract(mean_fg, mean_bg, out=mean_bg)  # upsampling is linear: F − B is one resize less
    del image, coarse_fg

    # The paper's step, F + a·(I − a·F − (1−a)·B), is I + (1−a)·(F − I + a·(F − B)): four
    # OpenCV passes over a window of rows, the photo and matte read as uint8, the result
    # rounded and written only where the matte is soft. A window is the band's bounding box
    # within about _STRIP_PIXELS of the frame, so its temporaries stay a few MB at any size
    # and rows without a soft pixel cost one inRange.
    foreground = None
    step = max(1, _STRIP_PIXELS // width)
    for top in range(0, height, step):
        band = cv2.inRange(alpha[top:top + step], 1, 254)
        x, y, w, h = cv2.boundingRect(band)
        if not w:
            continue
        if foreground is None:
            foreground = rgb.copy()
        rows, cols = slice(top + y, top + y + h), slice(x, x + w)
        photo, weight = rgb[rows, cols], cv2.cvtColor(alpha[rows, cols], cv2.COLOR_GRAY2BGR)
        lift = cv2.multiply(_upsampled(spread, rows, cols, factor), weight, scale=1.0 / 255.0, dtype=cv2.CV_32F)
        lift += cv2.subtract(_upsampled(mean_fg, rows, cols, factor), photo, dtype=cv2.CV_32F)
        lift = cv2.multiply(lift, cv2.bitwise_not(weight), scale=1.0 / 255.0, dtype=cv2.CV_32F)
        cv2.add(lift, photo, dst=foreground[rows, cols], mask=band[y:y + h, x:x + w], dtype=cv2.CV_8U)
    return rgb if foreground is None else foreground
