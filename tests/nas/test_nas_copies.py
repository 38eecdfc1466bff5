"""Copies that stall, uploads under partial names and desktop junk, behind a real FUSE mount."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.nas.conftest import HotFolder, files_under, nas_config
from tests.nas.images import photo_bytes
from tests.support.waiting import wait_until


def write_chunk(handle, data: bytes) -> None:  # noqa: ANN001 - an open binary file
    handle.write(data)
    handle.flush()
    os.fsync(handle.fileno())


def results(out: Path) -> list[str]:
    """The result files (bshmd's own state folder left out)."""
    return [name for name in files_under(out) if not name.startswith(".bshmd/")]


def wait_for_a_rescan(hot: HotFolder) -> None:
    """A full rescan begun after now has finished: anything it would pick up, it has."""
    since = time.time()
    wait_until(lambda: hot.ingestor.health()["last_rescan"] > since, 20, "a full rescan")


@pytest.mark.slow
def test_a_copy_paused_longer_than_settle_is_processed_once_and_never_quarantined(nas, engine):
    data = photo_bytes(160, 120, "PNG")
    half = len(data) // 2
    with HotFolder(nas_config(nas), engine) as hot:
        (nas["backing"] / "shoot").mkdir()
        with open(nas["backing"] / "shoot" / "pause.png", "wb") as writer:
            write_chunk(writer, data[:half])
            # The writer stalls until the daemon has settled and read the half-written file.
            wait_until(lambda: "released:not_finished" in hot.of("shoot/pause.png"), 30,
                       "the daemon to read the copy during its pause")
            write_chunk(writer, data[half:])
        wait_until(lambda: hot.finished("shoot/pause.png"), 30, "the finished copy to be processed")
        wait_for_a_rescan(hot)
        outcomes = hot.of("shoot/pause.png")
    assert [o for o in outcomes if not o.startswith("released:")] == ["processed"]
    assert set(outcomes[:-1]) == {"released:not_finished"}
    assert files_under(nas["quarantine"]) == []
    with Image.open(nas["out"] / "shoot" / "pause.png.cutout.png") as cutout:
        assert cutout.size == (160, 120) and cutout.mode == "RGBA"
    assert (nas["backing"] / "shoot" / "pause.png").read_bytes() == data


def test_a_copy_not_finished_settles_again_without_waiting_for_a_full_rescan(nas, engine):
    """Polling by folder mtimes does not see a file grow; the scanner settles a file released
    as not finished again by itself, and the ledger kept the release with its retry time."""
    data = photo_bytes(160, 120, "PNG")
    half = len(data) // 2
    with HotFolder(nas_config(nas, rescan_seconds=600), engine) as hot:
        with open(nas["backing"] / "slow.png", "wb") as writer:
            write_chunk(writer, data[:half])
            wait_until(lambda: "released:not_finished" in hot.of("slow.png"), 30,
                       "the daemon to read the copy during its pause")
            row = hot.ingestor.ledger.jobs()[0]
            write_chunk(writer, data[half:])
        wait_until(lambda: hot.finished("slow.png"), 30, "the finished copy to be processed")
        outcomes = hot.of("slow.png")
        done = hot.ingestor.ledger.jobs()[0]
    assert (row.relpath, row.size, row.reason) == ("slow.png", half, "not_finished")
    assert row.state in ("released", "claimed") and (row.state == "claimed" or row.retry_after is not None)
    assert [o for o in outcomes if not o.startswith("released:")] == ["processed"]
    assert (done.state, done.outcome, done.size) == ("done", "processed", len(data))
    assert (nas["backing"] / "slow.png").read_bytes() == data


@pytest.mark.slow
def test_a_copy_paused_past_the_grace_is_quarantined_as_truncated_with_every_byte_written(nas, engine):
    data = photo_bytes(160, 120, "JPEG")
    first, second = data[: len(data) // 3], data[len(data) // 3: 2 * len(data) // 3]
    grace = 5.0  # well past the first look (settle window 1.5 s), even on a loaded machine
    with HotFolder(nas_config(nas, truncated_grace_seconds=grace), engine) as hot:
        with open(nas["backing"] / "stalled.jpg", "wb") as writer:
            write_chunk(writer, first)
            wait_until(lambda: "released:not_finished" in hot.of("stalled.jpg"), 30,
                       "the daemon to read the copy during its first pause")
            write_chunk(writer, second)  # then the copy stalls for good
            wait_until(lambda: hot.finished("stalled.jpg"), 30, "the stalled copy to be given up on")
        outcomes = hot.of("stalled.jpg")
    assert outcomes[-1] == "quarantined:truncated"
    assert set(outcomes[:-1]) == {"released:not_finished"}
    quarantined = nas["quarantine"] / "stalled.jpg"
    assert quarantined.read_bytes() == first + second  # every byte the writer wrote
    record = json.loads((nas["quarantine"] / "stalled.jpg.reason.json").read_text())
    assert record["reason"] == "truncated" and record["measured"]["quiet_seconds"] >= grace
    assert not (nas["backing"] / "stalled.jpg").exists()


def test_a_partial_upload_renamed_at_the_end_is_processed_once(nas, engine):
    data = photo_bytes(160, 120, "PNG", seed=3)
    with HotFolder(nas_config(nas), engine) as hot:
        partial = nas["backing"] / "upload.png.part"
        with open(partial, "wb") as writer:
            write_chunk(writer, data[: len(data) // 2])
            wait_for_a_rescan(hot)  # the daemon has seen the partial name, and left it alone
            write_chunk(writer, data[len(data) // 2:])
        os.rename(partial, nas["backing"] / "upload.png")
        wait_until(lambda: hot.finished("upload.png"), 30, "the renamed upload to be processed")
        wait_for_a_rescan(hot)
        seen = {relpath for relpath, _ in hot.outcomes}
        assert hot.of("upload.png") == ["processed"]
    assert seen == {"upload.png"}
    assert results(nas["out"]) == ["upload.png.cutout.png"]
    assert files_under(nas["quarantine"]) == []


JUNK = [
    "._portrait.jpg",  # macOS AppleDouble
    ".DS_Store", ".Spotlight-V100/Store-V2/portrait.jpg", ".Trashes/501/portrait.jpg",
    "Thumbs.db", "desktop.ini", "~$portrait.jpg",
    "#recycle/portrait.jpg", "@eaDir/portrait.jpg/SYNOPHOTO_THUMB_XL.jpg", ".snapshot/hourly.0/portrait.jpg",
    "portrait.jpg.part", "portrait.jpg.crdownload", "portrait.jpg.download", "portrait.tmp",
    ".~portrait.jpg", ".portrait.jpg.Xa81Qz",  # rsync's temporary name
    "originals/portrait.jpg", "portrait.bak.jpg",  # folders[].ignore
]


def test_each_junk_name_produces_nothing_anywhere(nas, engine, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG, logger="bshmd")
    photo = photo_bytes(160, 120, "JPEG", seed=5)
    for relpath in JUNK:
        path = nas["backing"] / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(photo)  # a real photograph under every junk name: only the name says junk
    before = {relpath: (nas["backing"] / relpath).read_bytes() for relpath in JUNK}
    config = nas_config(nas, folder={"ignore": ["originals", "*.bak.jpg"]})
    with HotFolder(config, engine) as hot:
        (nas["backing"] / "real.jpg").write_bytes(photo)
        wait_until(lambda: hot.finished("real.jpg"), 30, "the real photo to be processed")
        wait_for_a_rescan(hot)
        seen = {relpath for relpath, _ in hot.outcomes}
    assert seen == {"real.jpg"}
    assert results(nas["out"]) == ["real.jpg.cutout.png"]
    assert files_under(nas["quarantine"]) == []
    state = b"".join(p.read_bytes() for p in (nas["out"] / ".bshmd").rglob("*") if p.is_file())
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for relpath in JUNK:
        name = Path(relpath).name
        assert (nas["backing"] / relpath).read_bytes() == before[relpath], relpath
        assert os.fsencode(relpath) not in state, relpath
        assert relpath not in logged and f"/{name}" not in logged, relpath
