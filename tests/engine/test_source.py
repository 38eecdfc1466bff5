"""Finding the model: model.path, ModelScope's real cache lookup, and a bounded fetch."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from bshmd.config import ModelConfig
from bshmd.engine import MattingEngine, resolve_model_dir
from bshmd.engine.source import FETCH_THREAD_NAME
from bshmd.errors import ModelFetchError, ModelLoadError
from bshmd.timed import call_with_limit
from tests.support.waiting import wait_until

from .images import subject_on_backdrop

MODEL_ID = "damo/cv_unet_image-matting"


def _fetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == FETCH_THREAD_NAME]


def test_model_path_wins(standin_dir: Path) -> None:
    assert resolve_model_dir(ModelConfig(path=standin_dir), fetch=True) == standin_dir


def test_model_path_without_graph_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="tf_graph.pb is missing"):
        resolve_model_dir(ModelConfig(path=tmp_path), fetch=False)
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model_dir(ModelConfig(path=tmp_path / "absent"), fetch=False)


@pytest.mark.parametrize("layout, revision", [
    ("models/damo--cv_unet_image-matting/snapshots/master", None),  # modelscope-hub's own layout
    ("models/damo--cv_unet_image-matting/snapshots/v1.0.3", "v1.0.3"),
    ("models/damo/cv_unet_image-matting", None),  # layout of modelscope before 1.38
])
def test_cached_model_is_found_offline_by_modelscope(
        layout: str, revision: str | None, tmp_path: Path, standin_dir: Path) -> None:
    cached = tmp_path / "cache" / layout
    cached.mkdir(parents=True)
    shutil.copy(standin_dir / "tf_graph.pb", cached / "tf_graph.pb")
    config = ModelConfig(id=MODEL_ID, revision=revision, cache_dir=tmp_path / "cache",
                         fetch_timeout_seconds=5)
    assert resolve_model_dir(config, fetch=False) == cached
    with MattingEngine.from_config(config, fetch=False) as loaded:
        assert loaded.predict([subject_on_backdrop(24, 32)])[0].shape == (24, 32)


def test_fetch_without_network_fails_within_the_limit_saying_how_to_place_the_model(
        tmp_path: Path) -> None:
    config = ModelConfig(id=MODEL_ID, cache_dir=tmp_path / "cache", fetch_timeout_seconds=5)
    started = time.monotonic()
    with pytest.raises(ModelFetchError) as caught:
        resolve_model_dir(config, fetch=True)
    elapsed = time.monotonic() - started
    assert elapsed < config.fetch_timeout_seconds + 2  # the limit holds, whatever modelscope retries
    message = str(caught.value)
    assert MODEL_ID in message and "model.path" in message and "\n" not in message
    # The abandoned download ends on its own once modelscope gives up on the network.
    assert wait_until(lambda: not _fetch_threads(), 120, "the fetch threads to end")


def test_call_with_limit_stops_waiting_for_a_call_that_hangs() -> None:
    release = threading.Event()
    with pytest.raises(TimeoutError):
        call_with_limit(lambda: release.wait(30), 0.2, name=FETCH_THREAD_NAME)
    release.set()
    assert wait_until(lambda: not _fetch_threads(), 10, "the fetch threads to end")
    assert call_with_limit(lambda: 42, 5, name=FETCH_THREAD_NAME) == 42
