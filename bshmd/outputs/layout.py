"""Layout: the subject trimmed, scaled and placed on a canvas, as marketplaces specify.

``outputs.layout`` (LayoutConfig) turns the photo's framing into a product-page framing:

- ``trim``: the content is the bounding box of the matte above ``threshold`` (faint haze and
  specks at the border do not count); without trim it is the whole frame.
- ``canvas``: width × height of every output; the content is scaled to fit inside the canvas
  less ``margin`` (a share of the canvas's shorter side) on every side, so it touches the
  margin on its constraining sides. Without a canvas, the canvas is the content plus the
  margin.
- ``align``: ``center``, or ``bottom`` (feet on the bottom margin, for full-length shots).

Everything outside the placed content has alpha 0, so each format shows it as it shows the
photo's background: transparent in cut-outs, exactly the background colour in composites.
Colour and matte are resampled premultiplied, so no backdrop colour from under alpha 0 leaks
into the resized edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bshmd.errors import InputRejected

if TYPE_CHECKING:
    import numpy as np

    from bshmd.config import LayoutConfig


@dataclass(frozen=True)
class Placement:
    """Where the content box of the source lands on the canvas (pixels; boxes as x0, y0, x1, y1)."""

    source_box: tuple[int, int, int, int]
    canvas_box: tuple[int, int, int, int]
    canvas: tuple[int, int]  # width, height


def content_box(alpha: np.ndarray, layout: LayoutConfig) -> tuple[int, int, int, int]:
    """The part of the frame that is laid out; raises InputRejected(no_subject) for nothing to trim to."""
    import cv2

    height, width = alpha.shape
    if not layout.trim:
        return 0, 0, width, height
    above = cv2.threshold(alpha, layout.threshold, 255, cv2.THRESH_BINARY)[1]
    x, y, w, h = cv2.boundingRect(above)  # of the non-zero pixels of a binary image
    if w == 0 or h == 0:
        # An empty canvas would pass for a result: the input goes to quarantine instead.
        raise InputRejected(
            "no_subject",
            f"nothing to trim to: no pixel of the matte is above outputs.layout.threshold {layout.threshold}",
            {"layout_threshold": layout.threshold, "max_alpha": int(alpha.max())},
        )
    return x, y, x + w, y + h


def plan(alpha: np.ndarray, layout: LayoutConfig) -> Placement:
    """The placement of ``alpha``'s content under ``layout`` (see the module docstring)."""
    x0, y0, x1, y1 = content_box(alpha, layout)
    box_w, box_h = x1 - x0, y1 - y0
    if layout.canvas is None:
        # The canvas is the box plus margins of ``margin`` × its own shorter side.
        shorter = min(box_w, box_h) / (1.0 - 2.0 * layout.margin)
        free = round(layout.margin * shorter)
        width, height = box_w + 2 * free, box_h + 2 * free
        return Placement((x0, y0, x1, y1), (free, free, free + box_w, free + box_h), (width, height))
    width, height = layout.canvas
    free = round(layout.margin * min(width, height))
    room_w, room_h = max(1, width - 2 * free), max(1, height - 2 * free)
    scale = min(room_w / box_w, room_h / box_h)
    placed_w = min(room_w, max(1, round(box_w * scale)))
    placed_h = min(room_h, max(1, round(box_h * scale)))
    left = (width - placed_w) // 2
    top = (height - placed_h) // 2 if layout.align == "center" else height - free - placed_h
    return Placement((x0, y0, x1, y1), (left, top, left + placed_w, top + placed_h), (width, height))


def _resize_premultiplied(rgb: np.ndarray, alpha: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """rgb and alpha resized to ``size`` (w, h), colour weighted by alpha."""
    import cv2
    import numpy as np

    if (rgb.shape[1], rgb.shape[0]) == size:
        return rgb, alpha
    shrinking = size[0] < rgb.shape[1] and size[1] < rgb.shape[0]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    # colour·alpha is at most 255·255: exact in uint16, so the full-resolution pass stays
    # integer; floats appear only at the canvas's size.
    premultiplied = cv2.multiply(rgb, cv2.merge([alpha, alpha, alpha]), dtype=cv2.CV_16U)
    resized = cv2.resize(premultiplied, size, interpolation=interpolation).astype(np.float32)
    new_alpha = np.clip(cv2.resize(alpha.astype(np.float32), size, interpolation=interpolation), 0.0, 255.0)
    colour = resized * (1.0 / np.maximum(new_alpha, 1e-3))[:, :, None]
    alpha_u8 = np.rint(new_alpha).astype(np.uint8)
    rgb_u8 = np.rint(np.clip(colour, 0.0, 255.0)).astype(np.uint8)
    rgb_u8[alpha_u8 == 0] = 0
    return rgb_u8, alpha_u8


def apply_layout(rgb: np.ndarray, alpha: np.ndarray, layout: LayoutConfig | None) -> tuple[np.ndarray, np.ndarray]:
    """The colour and matte of the canvas ``layout`` asks for (unchanged without a layout)."""
    import numpy as np

    if layout is None:
        return rgb, alpha
    placement = plan(alpha, layout)
    height, width = alpha.shape
    if placement.source_box == placement.canvas_box == (0, 0, width, height):
        return rgb, alpha  # e.g. a folder's ``layout: {trim: false}``: the photo's own framing
    x0, y0, x1, y1 = placement.source_box
    left, top, right, bottom = placement.canvas_box
    colour, matte = _resize_premultiplied(rgb[y0:y1, x0:x1], alpha[y0:y1, x0:x1], (right - left, bottom - top))
    width, height = placement.canvas
    canvas_rgb = np.zeros((height, width, 3), np.uint8)
    canvas_alpha = np.zeros((height, width), np.uint8)
    canvas_rgb[top:bottom, left:right] = colour
    canvas_alpha[top:bottom, left:right] = matte
    return canvas_rgb, canvas_alpha
