"""The quality gate: refuse inputs too small to matte, and mattes that are plainly wrong.

A matte is judged by shares of the frame, so the thresholds hold at any resolution:

- ``foreground``: share with alpha ≥ 128. Almost none means no person (a product shot, a
  landscape); almost all means the model took the whole frame (a close-up of skin, a blank
  wall it could not separate).
- ``uncertain``: share with 0.05 < alpha < 0.95. A good matte is decided almost everywhere
  and soft only along hair and edges; a large soft share means the model did not find a
  clear subject.

The other measures (mean alpha, largest component's share of the foreground, component count,
uncertain pixels per foreground pixel) go into ``measured`` for the quarantine entry and the
review page; they do not decide.

Calibrated on the real BSHM matte of the ModelScope demo photo (portrait-studio, 948×533:
a full-length dancer): foreground 0.082, uncertain 0.0087, one component holding 100 % of
the foreground. See GateConfig's defaults for the margins chosen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bshmd.errors import InputRejected

if TYPE_CHECKING:
    import numpy as np

    from bshmd.config import GateConfig


def measure_matte(alpha: np.ndarray) -> dict[str, float]:
    """Shares and shape measures of a uint8 H×W matte (see the module docstring)."""
    import cv2
    import numpy as np

    if alpha.ndim != 2 or alpha.dtype != np.uint8 or alpha.size == 0:
        raise ValueError(f"expected a non-empty uint8 H×W matte, got {alpha.dtype} {alpha.shape}")
    total = float(alpha.size)
    foreground = alpha >= 128
    foreground_count = int(np.count_nonzero(foreground))
    # 0.05 < a/255 < 0.95  ⇔  12.75 < a < 242.25  ⇔  13 ≤ a ≤ 242 for integers.
    uncertain_count = int(np.count_nonzero((alpha >= 13) & (alpha <= 242)))
    largest_share = 0.0
    components = 0
    if foreground_count:
        count, _labels, stats, _centroids = cv2.connectedComponentsWithStats(
            foreground.view(np.uint8), connectivity=8)
        areas = stats[1:, cv2.CC_STAT_AREA]
        # Specks below 0.1 % of the foreground are edge noise, not separate subjects.
        components = int(np.count_nonzero(areas >= max(1, foreground_count // 1000)))
        largest_share = float(areas.max()) / foreground_count if count > 1 else 0.0
    return {
        "foreground": foreground_count / total,
        "uncertain": uncertain_count / total,
        "mean_alpha": float(alpha.mean()) / 255.0,
        "largest_component_share": largest_share,
        "components": float(components),
        # 0 without foreground: JSON has no infinity, and no_subject already says it all.
        "uncertain_per_foreground": uncertain_count / foreground_count if foreground_count else 0.0,
        "width": float(alpha.shape[1]),
        "height": float(alpha.shape[0]),
    }


def check_input(rgb: np.ndarray, gate: GateConfig) -> None:
    """Refuse an image whose shorter side is below gate.min_input_side (nothing to matte)."""
    height, width = rgb.shape[:2]
    if gate.enabled and min(height, width) < gate.min_input_side:
        raise InputRejected(
            "too_small",
            f"{width}×{height} pixels: the shorter side is below gate.min_input_side ({gate.min_input_side})",
            {"width": width, "height": height, "min_input_side": gate.min_input_side},
        )


def check_matte(alpha: np.ndarray, gate: GateConfig) -> dict[str, float]:
    """The matte's measures; raises InputRejected when they fall outside the gate's limits."""
    measured = measure_matte(alpha)
    if not gate.enabled:
        return measured
    foreground, uncertain = measured["foreground"], measured["uncertain"]
    # Undecided first: when most of the matte is soft, its foreground share means little.
    if uncertain > gate.max_uncertain:
        raise InputRejected(
            "uncertain_matte",
            f"{uncertain:.1%} of the matte is neither foreground nor background, above "
            f"gate.max_uncertain ({gate.max_uncertain:.1%}): the model found no clear subject",
            {**measured, "max_uncertain": gate.max_uncertain},
        )
    if foreground < gate.min_foreground:
        raise InputRejected(
            "no_subject",
            f"the matte covers {foreground:.1%} of the frame, below gate.min_foreground "
            f"({gate.min_foreground:.1%}): no person found, or the person is too small",
            {**measured, "min_foreground": gate.min_foreground},
        )
    if foreground > gate.max_foreground:
        raise InputRejected(
            "subject_too_large",
            f"the matte covers {foreground:.1%} of the frame, above gate.max_foreground "
            f"({gate.max_foreground:.1%}): the model could not separate a subject from the background",
            {**measured, "max_foreground": gate.max_foreground},
        )
    return measured
