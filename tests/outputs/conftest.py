"""Fixtures for the output modules: the real BSHM matte of the studio photo, and a scene built on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def real_matte(shared_testdata: Path) -> Any:
    """The real BSHM model's matte of portrait-studio.png (uint8 533×948)."""
    import numpy as np
    from PIL import Image

    with Image.open(shared_testdata / "portrait-studio.bshm-alpha.png") as image:
        return np.asarray(image.convert("L"), dtype=np.uint8).copy()


@pytest.fixture
def scene(real_matte: Any) -> Any:
    """A known foreground on a green backdrop, blended through the real matte."""
    from bshmd.testing.known_matte import known_matte_scene

    return known_matte_scene(real_matte)


@pytest.fixture
def fixed_matte_model(tmp_path: Path, real_matte: Any) -> Path:
    """A model folder whose graph always answers the real studio matte (a test fixture, not BSHM)."""
    from bshmd.testing.standin import write_fixed_matte_graph

    folder = tmp_path / "fixed-matte-model"
    write_fixed_matte_graph(folder, real_matte)
    return folder
