"""Fixtures for the per-file stages: a folder layout, a configuration, and real photographs."""

from __future__ import annotations

from pathlib import Path

import pytest

from bshmd.config import Config, FolderConfig, parse_config


def build_config(hot: dict[str, Path], **overrides: object) -> Config:
    """A validated Config for the ``hot`` folders (tests/conftest.py), with top-level overrides."""
    data: dict[str, object] = {
        "folders": [{"input": str(hot["in"]), "output": str(hot["out"]), "quarantine": str(hot["quarantine"])}],
        "truncated_grace_seconds": 0,  # these inputs are complete: quarantine cut-off files at once
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
def studio_png(shared_testdata: Path) -> Path:
    return shared_testdata / "portrait-studio.png"


@pytest.fixture
def studio_matte(shared_testdata: Path):  # noqa: ANN201 - numpy array
    """The real BSHM model's matte of portrait-studio.png (uint8 H×W)."""
    import numpy as np
    from PIL import Image

    with Image.open(shared_testdata / "portrait-studio.bshm-alpha.png") as image:
        return np.asarray(image.convert("L"), dtype=np.uint8).copy()


@pytest.fixture
def studio_rgb(studio_png: Path):  # noqa: ANN201 - numpy array
    from bshmd.pipeline.decode import decode_image

    return decode_image(studio_png, max_pixels=10**8, max_file_bytes=10**9)
