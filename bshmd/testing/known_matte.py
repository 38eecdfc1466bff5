"""A photo whose true foreground is known: for measuring how clean cut-out edges are.

A smooth synthetic foreground (slowly varying skin-to-fabric colours) is blended over a
saturated backdrop through a real matte, ``photo = a·F + (1−a)·B``. Because F is known, so
is the true composite on any colour W, ``a·F + (1−a)·W``; a composite that keeps the photo's
colour at soft edges carries ``a·(1−a)·(B − F)`` of the backdrop instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GREEN_BACKDROP = (20, 200, 40)  # a chroma-key green studio backdrop


@dataclass(frozen=True)
class KnownMatteScene:
    foreground: Any  # float32 H×W×3, 0..255: the subject's true colour everywhere
    alpha: Any  # uint8 H×W
    photo: Any  # uint8 H×W×3: foreground over the backdrop through alpha

    def true_composite(self, colour: tuple[int, int, int]) -> Any:
        """float32 H×W×3: the subject, with its true colour, over a plain ``colour``."""
        import numpy as np

        a = self.alpha.astype(np.float32)[:, :, None] / 255.0
        return self.foreground * a + np.asarray(colour, np.float32) * (1.0 - a)

    def soft_edge(self) -> Any:
        """bool H×W: the visibly mixed pixels, 0.05 < alpha < 0.95 (the quality gate's "uncertain").

        Most pixels with 0 < alpha < 255 are within a few levels of 0 or 255, where no fringe
        can show; counting them would dilute every error about tenfold.
        """
        return (self.alpha >= 13) & (self.alpha <= 242)

    def edge_error(self, composite: Any, colour: tuple[int, int, int]) -> float:
        """Mean absolute difference (levels, over channels) from the true composite on the soft edge."""
        import numpy as np

        difference = np.abs(np.asarray(composite, np.float32) - self.true_composite(colour))
        return float(difference[self.soft_edge()].mean())


def known_matte_scene(alpha: Any, backdrop: tuple[int, int, int] = GREEN_BACKDROP) -> KnownMatteScene:
    """The scene for ``alpha`` (uint8 H×W) on ``backdrop``; deterministic."""
    import numpy as np

    height, width = alpha.shape
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    scale = width / 948.0  # the wavelengths follow the frame, so an upscaled scene is the same scene
    foreground = np.dstack([
        150 + 60 * np.sin(xx / (97 * scale)),
        90 + 50 * np.cos(yy / (71 * scale)),
        60 + 40 * np.sin((xx + yy) / (133 * scale)),
    ]).astype(np.float32)
    a = alpha.astype(np.float32)[:, :, None] / 255.0
    photo = foreground * a + np.asarray(backdrop, np.float32) * (1.0 - a)
    return KnownMatteScene(foreground, np.asarray(alpha, np.uint8), np.clip(np.rint(photo), 0, 255).astype(np.uint8))
