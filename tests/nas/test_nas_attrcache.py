"""A FUSE mount whose attributes are cached for 3 s (bindfs -o attr_timeout=3): stat lies for a while."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.nas.conftest import HotFolder, bindfs, files_under, nas_config
from tests.nas.images import photo_bytes
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow  # slow copies through a real FUSE mount with attribute caching

ATTR_TIMEOUT = 3


@pytest.fixture
def cached_nas(tmp_path: Path) -> Iterator[dict[str, Path]]:
    folders = {name: tmp_path / name for name in ("backing", "out", "quarantine")}
    for path in folders.values():
        path.mkdir()
    with bindfs(folders["backing"], tmp_path / "mount", f"attr_timeout={ATTR_TIMEOUT}") as mount:
        yield {**folders, "mount": mount}


def check_stat_is_stale(nas: dict[str, Path]) -> None:
    """The premise: through the mount, stat shows an old size after the file grew."""
    backing, seen = nas["backing"] / "probe.bin", nas["mount"] / "probe.bin"
    backing.write_bytes(b"x" * 100)
    assert os.stat(seen).st_size == 100  # now cached
    with open(backing, "ab") as handle:
        handle.write(b"y" * 100)
    assert os.stat(seen).st_size == 100, "the mount should still show the cached size"
    wait_until(lambda: os.stat(seen).st_size == 200, ATTR_TIMEOUT + 5, "the cached size to expire")
    backing.unlink()


def slow_copy(target: Path, data: bytes, chunks: int, pause: float) -> None:
    step = -(-len(data) // chunks)
    with open(target, "wb") as handle:
        for index in range(chunks):
            handle.write(data[index * step:(index + 1) * step])
            handle.flush()
            os.fsync(handle.fileno())
            if index < chunks - 1:
                time.sleep(pause)  # the copy tool's pace, not synchronisation


def check_processed_once(hot: HotFolder, nas: dict[str, Path], relpath: str, data: bytes) -> list[str]:
    wait_until(lambda: hot.finished(relpath), 40, f"{relpath} to be processed")
    since = time.time()
    wait_until(lambda: hot.ingestor.health()["last_rescan"] > since, 20, "a full rescan")
    outcomes = hot.of(relpath)
    assert [o for o in outcomes if not o.startswith("released:")] == ["processed"]
    assert files_under(nas["quarantine"]) == []
    with Image.open(nas["out"] / f"{relpath}.cutout.png") as cutout:
        assert cutout.size == (160, 120)
    assert (nas["backing"] / relpath).read_bytes() == data
    return outcomes


def test_with_attribute_cache_seconds_a_slow_copy_is_not_read_early(cached_nas, engine, caplog):
    caplog.set_level(logging.INFO, logger="bshmd")
    check_stat_is_stale(cached_nas)
    data = photo_bytes(160, 120, "PNG", seed=7)
    config = nas_config(cached_nas, settle_seconds=1.0, folder={"attribute_cache_seconds": ATTR_TIMEOUT})
    with HotFolder(config, engine) as hot:
        wait_until(lambda: "files settle after 4 s unchanged" in caplog.text, 10, "the folder's settle window")
        slow_copy(cached_nas["backing"] / "slow.png", data, chunks=4, pause=2.0)
        outcomes = check_processed_once(hot, cached_nas, "slow.png", data)
    assert outcomes == ["processed"]  # never handed over mid-copy, so never given back
    assert "attribute cache 3 s: folders[].attribute_cache_seconds" in caplog.text


def test_without_it_a_slow_copy_is_still_processed_once_through_the_grace(cached_nas, engine, caplog):
    caplog.set_level(logging.INFO, logger="bshmd")
    check_stat_is_stale(cached_nas)
    data = photo_bytes(160, 120, "PNG", seed=8)
    config = nas_config(cached_nas, settle_seconds=1.0, truncated_grace_seconds=60)
    with HotFolder(config, engine) as hot:
        # FUSE does not show attr_timeout in the mount table: libfuse's default (1 s) is assumed.
        wait_until(lambda: "files settle after 2 s unchanged" in caplog.text, 10, "the folder's settle window")
        slow_copy(cached_nas["backing"] / "slow.png", data, chunks=4, pause=2.5)
        outcomes = check_processed_once(hot, cached_nas, "slow.png", data)
    assert set(outcomes[:-1]) <= {"released:not_finished"}
