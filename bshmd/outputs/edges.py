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
resolution is touched only in windows around the soft band (_band_windows: runs of 32×32
tiles that hold soft pixels, in strips of 32 rows): the blurred means are upsampled
(bilinear) for each window only, the correction step uses the full-resolution photo and
matte, which keeps each strand of hair, and only band pixels are written back.

A portrait's band is thin, so its windows are a small share of the frame (11 % for the test
portrait's real matte at 24 MP, 9.6 % of its pixels soft), where the band's bounding box in
each strip of rows, as this module took before, spans nearly the whole width (57 % for a band
of 6.8 %). CPU-s per 24 MP image (bench/bench_edges.py, with the daemon's allocator settings):
0.12, of which the copy at WORK_SIDE and its blurs about 0.05 and finding the windows 0.01;
the strips of rows took 0.28. With a third of the pixels soft: 0.17.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np

EDGE_MODES = ("none", "decontaminate")
WORK_SIDE = 1024  # long side of the copy the blurs run on: the size the paper's radii suit
COARSE_RADIUS = 90  # first pass: the backdrop's and subject's colour in the large
FINE_RADIUS = 6  # second pass: local colour next to the edge
_EPS = 1e-5
_TILE = 32  # side of the tiles the soft band is found in
_GAP = 3  # runs of soft tiles closer than this are finished as one window
_WINDOW_TILES = 32  # at most this many tiles a window: the buffers for one are 0.4 MB each


def clean_edges(rgb: np.ndarray, alpha: np.ndarray, mode: str) -> np.ndarray:
    """The colour to show the subject with: ``rgb`` itself, or with its soft edges decontaminated."""
    if mode == "none":
        return rgb
    if mode == "decontaminate":
        return estimate_foreground(rgb, alpha)
    raise ValueError(f"unknown edges mode {mode!r}; expected one of {', '.join(EDGE_MODES)}")


def _blurred_means(fg: np.ndarray, bg: np.ndarray, a: np.ndarray, radius: int, *, mean_fg: np.ndarray,
                   mean_bg: np.ndarray, scratch: tuple[np.ndarray, np.ndarray]) -> None:
    """Alpha-weighted box means of the foreground into ``mean_fg``, (1−alpha)-weighted of the
    background into ``mean_bg``.

    ``a`` is the matte in 0..1 with as many channels as ``fg`` and ``bg``: numpy broadcasting
    one channel over three runs an inner loop of length 3, about ten times slower. Every array
    has the same shape; ``mean_fg`` may be ``fg`` and ``mean_bg`` may be ``bg``. Results and
    temporaries go into arrays the caller holds, so that one call takes no new memory: from
    a 24 MP frame each is 6 MB, and in the pipeline every new block that large is fresh pages
    (bshmd.pipeline.budget), whose faults cost about as much as the arithmetic on them.
    """
    import cv2
    import numpy as np

    size = (radius, radius)
    blurred_a, term = scratch
    cv2.blur(a, size, dst=blurred_a)
    np.multiply(fg, a, out=term)
    cv2.blur(term, size, dst=mean_fg)
    np.subtract(1.0, a, out=term)
    term *= bg
    cv2.blur(term, size, dst=mean_bg)
    np.add(blurred_a, _EPS, out=term)
    mean_fg /= term
    np.subtract(1.0, blurred_a, out=term)
    term += _EPS
    mean_bg /= term


def _correct(image: np.ndarray, a: np.ndarray, mean_fg: np.ndarray, mean_bg: np.ndarray,
             scratch: np.ndarray | None = None) -> np.ndarray:
    """One step towards ``a·F + (1−a)·B = image`` (the paper's update), clipped to 0..255.

    Overwrites and returns ``image`` (and ``scratch``, if given, an array of its shape).
    """
    import numpy as np

    # mean_fg + a·(image − a·mean_fg − (1−a)·mean_bg), rearranged to work in place.
    residual = np.subtract(image, mean_bg, out=image)
    spread = np.subtract(mean_fg, mean_bg, out=scratch)
    spread *= a
    residual -= spread
    residual *= a
    residual += mean_fg
    return np.clip(residual, 0.0, 255.0, out=residual)


def smooth_means(rgb: np.ndarray, alpha: np.ndarray, work_side: int) -> tuple[int, np.ndarray, np.ndarray]:
    """(factor, F, B): the two-pass blurred means of the foreground and background, float32,
    on a copy ``factor`` times smaller than the frame (factor 1: the frame itself).

    An integer factor keeps INTER_AREA on its fast path (a plain k×k mean). The frame's last
    (size mod factor) rows and columns stay out of the copy.
    """
    import cv2
    import numpy as np

    height, width = alpha.shape
    factor = -(-max(height, width) // work_side)
    if factor > 1:
        small_w, small_h = max(1, width // factor), max(1, height // factor)
        crop_w, crop_h = min(width, small_w * factor), min(height, small_h * factor)
        rgb = cv2.resize(rgb[:crop_h, :crop_w], (small_w, small_h), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha[:crop_h, :crop_w], (small_w, small_h), interpolation=cv2.INTER_AREA)
    image = rgb.astype(np.float32)
    a = np.multiply(cv2.cvtColor(alpha, cv2.COLOR_GRAY2BGR), np.float32(1.0 / 255.0), dtype=np.float32)
    mean_fg, mean_bg, scratch = (np.empty_like(image), np.empty_like(image),
                                 (np.empty_like(image), np.empty_like(image)))
    _blurred_means(image, image, a, COARSE_RADIUS, mean_fg=mean_fg, mean_bg=mean_bg, scratch=scratch)
    coarse_fg = _correct(image, a, mean_fg, mean_bg, scratch[0])
    # The fine pass blurs the coarse estimate of F and the coarse mean of B.
    _blurred_means(coarse_fg, mean_bg, a, FINE_RADIUS, mean_fg=mean_fg, mean_bg=mean_bg, scratch=scratch)
    return factor, mean_fg, mean_bg


def _upsampled(small: np.ndarray, rows: slice, cols: slice, factor: int, out: np.ndarray | None = None) -> np.ndarray:
    """The bilinear upsample of ``small`` by ``factor``, at the full-resolution window (rows, cols),
    made in ``out`` (an array at least as large as the patch) where given.

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
    patch_h, patch_w = (bottom - top) * factor, (right - left) * factor
    fits = out is not None and out.shape[0] >= patch_h and out.shape[1] >= patch_w
    dst = out[:patch_h, :patch_w] if fits else None
    patch = cv2.resize(small[top:bottom, left:right], (patch_w, patch_h), dst=dst, interpolation=cv2.INTER_LINEAR)
    short_y, short_x = max(0, dy + height - patch.shape[0]), max(0, dx + width - patch.shape[1])
    if short_y or short_x:
        patch = cv2.copyMakeBorder(patch, 0, short_y, 0, short_x, cv2.BORDER_REPLICATE)
    return patch[dy:dy + height, dx:dx + width]


def _band_windows(alpha: np.ndarray) -> Iterator[tuple[slice, slice, np.ndarray]]:
    """(rows, cols, soft) for the windows that hold every soft pixel (0 < alpha < 255) of the
    frame: ``soft`` is the window's 0/255 mask of them.

    The frame is cut into strips of ``_TILE`` rows and each strip into tiles of ``_TILE``
    columns; a window is a run of tiles that hold soft pixels (runs closer than ``_GAP`` tiles
    are joined: a window costs about as much as that many tiles' pixels), trimmed to its soft
    pixels' bounding box. A portrait's band crosses a strip in a few places, so the windows
    hold about 1.2× its pixels, where a strip's bounding box spans nearly the whole width.
    """
    import cv2
    import numpy as np

    height, width = alpha.shape
    soft = cv2.inRange(alpha, 1, 254)
    tile_starts = np.arange(0, width, _TILE)
    for top in range(0, height, _TILE):
        strip = soft[top:top + _TILE]
        tiles = np.maximum.reduceat(strip.max(axis=0), tile_starts)
        # Boundaries of the runs of soft tiles: (first, stop) pairs.
        runs = np.flatnonzero(np.diff(tiles.astype(bool), prepend=False, append=False)).reshape(-1, 2)
        start = 0
        for index in range(len(runs)):
            if index + 1 < len(runs) and runs[index + 1, 0] - runs[index, 1] < _GAP:
                continue
            first, stop = runs[start, 0], runs[index, 1]
            start = index + 1
            for chunk in range(first, stop, _WINDOW_TILES):
                left, right = chunk * _TILE, min(width, stop * _TILE, (chunk + _WINDOW_TILES) * _TILE)
                x, y, w, h = cv2.boundingRect(strip[:, left:right])
                if w:
                    yield (slice(top + y, top + y + h), slice(left + x, left + x + w),
                           strip[y:y + h, left + x:left + x + w])


def estimate_foreground(rgb: np.ndarray, alpha: np.ndarray, *, work_side: int = WORK_SIDE) -> np.ndarray:
    """A copy of ``rgb`` whose soft-edge pixels (0 < alpha < 255) hold the estimated foreground.

    Pixels with alpha 0 or 255 keep the photo's colour exactly (and ``rgb`` itself is returned
    when there are none).
    """
    import cv2
    import numpy as np

    factor, mean_fg, mean_bg = smooth_means(rgb, alpha, work_side)
    spread = np.subtract(mean_fg, mean_bg, out=mean_bg)  # upsampling is linear: F − B is one resize less

    # The paper's step, F + a·(I − a·F − (1−a)·B), is I + (1−a)·(F − I + a·(F − B)): four
    # OpenCV passes over a window, the photo and matte read as uint8, the result rounded and
    # written only where the matte is soft. Band-free areas of the frame cost one inRange and
    # a max over columns; every temporary is a view of one buffer allocated once per frame.
    foreground = None
    buffers = _WindowBuffers(factor)
    for rows, cols, soft in _band_windows(alpha):
        if foreground is None:
            foreground = rgb.copy()
        height, width = soft.shape
        photo = rgb[rows, cols]
        weight = cv2.cvtColor(alpha[rows, cols], cv2.COLOR_GRAY2BGR, dst=buffers.weight[:height, :width])
        lift = cv2.multiply(_upsampled(spread, rows, cols, factor, buffers.patches[0]), weight, scale=1.0 / 255.0,
                            dtype=cv2.CV_32F, dst=buffers.lift[:height, :width])
        lift += cv2.subtract(_upsampled(mean_fg, rows, cols, factor, buffers.patches[1]), photo, dtype=cv2.CV_32F,
                             dst=buffers.term[:height, :width])
        inverse = cv2.bitwise_not(weight, dst=buffers.inverse[:height, :width])
        lift = cv2.multiply(lift, inverse, scale=1.0 / 255.0, dtype=cv2.CV_32F, dst=buffers.term[:height, :width])
        cv2.add(lift, photo, dst=foreground[rows, cols], mask=soft, dtype=cv2.CV_8U)
    return rgb if foreground is None else foreground


class _WindowBuffers:
    """The temporaries of one window, allocated once per frame and taken as views.

    A window's temporaries are 0.1-0.4 MB each; made anew for each of hundreds of windows,
    each went back to the system when freed (glibc trims a heap's top from 128 KiB under the
    pipeline's fixed mmap threshold) and was faulted in again for the next: 2× the CPU.
    """

    def __init__(self, factor: int) -> None:
        import numpy as np

        side = _WINDOW_TILES * _TILE
        # An upsampled patch covers its window plus up to two small pixels on each side.
        self.patches = [np.empty((_TILE + 4 * factor, side + 4 * factor, 3), np.float32) for _ in range(2)]
        self.lift, self.term = (np.empty((_TILE, side, 3), np.float32) for _ in range(2))
        self.weight, self.inverse = (np.empty((_TILE, side, 3), np.uint8) for _ in range(2))
