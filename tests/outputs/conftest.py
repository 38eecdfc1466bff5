"""The studio portrait for the output tests (the same fixture as tests/pipeline/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def studio_png(shared_testdata: Path) -> Path:
    return shared_testdata / "portrait-studio.png"
