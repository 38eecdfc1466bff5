"""Fixtures shared by every test module."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.testdata import MODELS, PHOTOS, PORTRAIT, PORTRAIT_MATTE
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"

# Slow by what they are, whole modules at a time: the survival runs (daemons killed, frozen,
# starved) and the browser tests (a real Chromium). Single slow tests carry the mark themselves.
SLOW_PLACES = ("survival/", "review/test_browser.py", "review/test_triage_browser.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        try:
            where = item.path.relative_to(TESTS).as_posix()
        except ValueError:
            continue
        if where.startswith(SLOW_PLACES):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def shared_testdata() -> Path:
    """tests/data/photos: the real photographs (tests/data/LICENSES.md).

    The name is from when this material lived beside the checkout in ../shared. The studio
    portrait and its BSHM matte did not come along (no licence could be established): a test
    that wants a real portrait and a real matte of it takes ``studio_png`` and ``studio_matte``
    (below), or tests.support.testdata.PORTRAIT and PORTRAIT_MATTE.
    """
    return PHOTOS


@pytest.fixture
def shared_models() -> Path:
    """tests/data/models: the small real segmentation network (MediaPipe selfie segmentation)."""
    return MODELS


# Every test (and every daemon a test starts: they inherit the environment) keeps its job
# ledger in its own folder, never in /var/lib/bshmd. Module-scoped fixtures, set up before the
# per-test folder exists, share one for the session.
_SESSION_STATE = tempfile.mkdtemp(prefix="bshmd-test-state-")
os.environ["BSHMD_STATE_DIR"] = _SESSION_STATE
os.environ.pop("BSHMD_LEDGER_URL", None)


@pytest.fixture(autouse=True)
def ledger_state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own state folder (its SQLite ledger), as $BSHMD_STATE_DIR."""
    path = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("BSHMD_STATE_DIR", str(path))
    return path


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail any test that leaves a thread of its own running (as watchdog's tests do)."""
    before = set(threading.enumerate())
    yield
    # TensorFlow and gRPC keep pools of their own; only bshmd-named threads are ours.
    leaked = [
        t for t in threading.enumerate()
        if t not in before and t.is_alive() and t.name.startswith("bshmd")
    ]
    for thread in leaked:
        thread.join(timeout=5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"threads left running: {still}"


@pytest.fixture
def hot(tmp_path: Path) -> dict[str, Path]:
    """An input, output and quarantine folder side by side, as a NAS share would hold them."""
    folders = {name: tmp_path / name for name in ("in", "out", "quarantine")}
    for path in folders.values():
        path.mkdir()
    return folders


def open_fds() -> dict[int, str]:
    """This process's open file descriptors and what each points at."""
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the listing's own descriptor, closed already
            continue
    return fds


@pytest.fixture
def no_leaked_fds() -> Iterator[None]:
    """Fail a test that leaves files or sockets of its own open (the thread check's twin).

    Used where a test opens and closes its own things (tests/ingest, the ledger): elsewhere
    module fixtures and TensorFlow keep descriptors for the session on purpose. A daemon
    thread may still be closing a file when the test returns: that gets a few seconds.
    """
    before = open_fds()

    def leaked() -> dict[int, str]:
        now = open_fds()
        return {fd: target for fd, target in now.items() if before.get(fd) != target}

    yield
    closed = wait_until(lambda: not leaked(), 5, fail=False)
    assert closed, f"file descriptors left open: {leaked()}"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A MattingEngine on the stand-in graph (a test fixture with BSHM's contract, not BSHM)."""
    from bshmd.engine import MattingEngine
    from bshmd.testing.standin import write_standin_graph

    graph = write_standin_graph(tmp_path_factory.mktemp("standin") / "tf_graph.pb")
    matting = MattingEngine(graph)
    yield matting
    matting.close()


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
    from bshmd.decode.image import decode_image

    return decode_image(studio_png, max_pixels=10**8, max_file_bytes=10**9)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    """A real PostgreSQL server for the session (see tests/support/pg.py); skipped where none can run."""
    from tests.support import pg

    why = pg.available()
    if why:
        pytest.skip(why)
    with pg.cluster() as server:
        yield server


@pytest.fixture
def pg_url(pg_cluster: Any) -> str:
    """The URL of an empty ``bshmd`` database on the session's server."""
    pg_cluster.reset()
    return pg_cluster.url
