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


@pytest.fixture(scope="session")
def unet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the U-Net-shaped stand-in (bshmd.testing.unet) as tf_graph.pb."""
    from bshmd.testing.unet import write_unet_graph

    folder = tmp_path_factory.mktemp("unet-model")
    write_unet_graph(folder)
    return folder


@pytest.fixture(scope="session")
def exports(unet_dir: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - a lazy dict
    """``exports[(fmt, precision)]``: that export of the U-Net stand-in, made on first use."""
    from bshmd.config import ModelConfig
    from bshmd.engine.export import export_model

    root = tmp_path_factory.mktemp("exports")
    made: dict = {}

    class Exports(dict):
        config = ModelConfig(path=unet_dir, export_dir=root)

        def __missing__(self, key: tuple[str, str]):  # noqa: ANN204
            fmt, precision = key
            made[key] = export_model(self.config, unet_dir / "tf_graph.pb", to=fmt, precision=precision,
                                     sizes=((31, 17), (640, 480)))
            self[key] = made[key]
            return made[key]

    return Exports()
