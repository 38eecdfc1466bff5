"""Fixtures for the per-file stages: a folder layout and a configuration (photos: tests/conftest.py)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from bshmd.config import Config, FolderConfig
from tests.support.config import make_config as make_config_for

# A validated Config for the ``hot`` folders (tests/conftest.py), with top-level overrides.
# These inputs are complete: quarantine cut-off files at once.
build_config = partial(make_config_for, defaults={"truncated_grace_seconds": 0})


@pytest.fixture
def make_config():  # noqa: ANN201 - returns build_config, for tests that need other settings
    return build_config


@pytest.fixture
def config(hot: dict[str, Path]) -> Config:
    return build_config(hot)


@pytest.fixture
def folder(config: Config) -> FolderConfig:
    return config.folders[0]
