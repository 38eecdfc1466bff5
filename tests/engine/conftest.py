"""Engine fixtures: the stand-in graph is built once per test session, the engine loaded once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bshmd.engine import MattingEngine
from bshmd.testing.standin import standin_model_dir


@pytest.fixture(scope="session")
def standin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return standin_model_dir(tmp_path_factory.mktemp("standin-model"))


@pytest.fixture(scope="session")
def engine(standin_dir: Path) -> Iterator[MattingEngine]:
    with MattingEngine(standin_dir / "tf_graph.pb", device="cpu") as loaded:
        yield loaded
