"""Fixtures for the per-file stages: a folder layout, a configuration, and real photographs."""

from __future__ import annotations

from pathlib import Path

import pytest

from bshmd.config import Config, FolderConfig, parse_config
from tests.testdata import PORTRAIT, PORTRAIT_MATTE


def build_config(hot: dict[str, Path], **overrides: object) -> Config:
    """A validated Config for the ``hot`` folders (tests/conftest.py), with top-level overrides."""
    data: dict[str, object] = {
        "folders": [{"input": str(hot["in"]), "output": str(hot["out"]), "quarantine": str(hot["quarantine"])}],
        **overrides,
    }
    return parse_config(data, base_dir=hot["in"].parent)


@pytest.fixture
def make_config():  # noqa: ANN201 - returns build_config, for tests that need other settings
    return build_config


@pytest.fixture
def config(hot: dict[str, Path]) -> Config:
    return build_config(hot)


@pytest.fixture
def folder(config: Config) -> FolderConfig:
    return config.folders[0]


@pytest.fixture
def studio_png() -> Path:
    """A real portrait, 512×600 RGBA PNG (tests/data/LICENSES.md; the name is from an earlier photo)."""
    return PORTRAIT


@pytest.fixture
def studio_matte():  # noqa: ANN201 - numpy array
    """A real network's matte of studio_png (MediaPipe selfie segmentation, uint8 H×W): not BSHM's."""
    import numpy as np
    from PIL import Image

    with Image.open(PORTRAIT_MATTE) as image:
        return np.asarray(image.convert("L"), dtype=np.uint8).copy()


@pytest.fixture
def studio_rgb(studio_png: Path):  # noqa: ANN201 - numpy array
    from bshmd.pipeline.decode import decode_image

    return decode_image(studio_png, max_pixels=10**8, max_file_bytes=10**9)
