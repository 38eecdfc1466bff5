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
