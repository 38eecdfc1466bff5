"""Fixtures for the survival tests: the stand-in model graph, written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def standin_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the stand-in tf_graph.pb (bshmd.testing.standin), a test fixture."""
    from bshmd.testing.standin import write_standin_graph

    folder = tmp_path_factory.mktemp("standin-model")
    write_standin_graph(folder)
    return folder
