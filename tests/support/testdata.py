"""Where the real photographs and the small real network that the tests use live.

Everything is in tests/data/ (sources and licences in tests/data/LICENSES.md), so a clone with
nothing beside it runs every test.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"
PHOTOS = DATA / "photos"
MODELS = DATA / "models"

#: A real portrait (public domain, 512×600 RGBA PNG) and a real network's matte of it.
PORTRAIT = PHOTOS / "portrait-hopper.png"
PORTRAIT_MATTE = PHOTOS / "portrait-hopper.selfie-alpha.png"
ASTRONAUT = PHOTOS / "portrait-astronaut.png"
ROCKET = PHOTOS / "no-person-rocket.jpg"
#: MediaPipe selfie segmentation (bshmd.testing.segmentation runs it).
SELFIE_MODEL = MODELS / "selfie_segmentation.tflite"
