"""Fixtures for the output modules: a scene built on the real portrait's matte (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def scene(studio_matte: Any) -> Any:
    """A known foreground on a green backdrop, blended through the real matte of the portrait."""
    from bshmd.testing.known_matte import known_matte_scene

    return known_matte_scene(studio_matte)


@pytest.fixture
def fixed_matte_model(tmp_path: Path, studio_matte: Any) -> Path:
    """A model folder whose graph always answers the portrait's real matte (a test fixture, not BSHM)."""
    from bshmd.testing.standin import write_fixed_matte_graph

    folder = tmp_path / "fixed-matte-model"
    write_fixed_matte_graph(folder, studio_matte)
    return folder
