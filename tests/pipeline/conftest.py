"""Fixtures for the per-file stages: a folder layout and a configuration (photos: tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bshmd.config import Config, FolderConfig, parse_config


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
