"""The quarantine tree and its actions, on real files and the real BSHM matte."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from bshmd.cli import main
from bshmd.config import Config, FolderConfig, GateConfig
from bshmd.errors import InputRejected
from bshmd.ledger.keys import FileKey
from bshmd.ledger.outcome import QUARANTINED, Outcome
from bshmd.pipeline.gate import check_matte
from bshmd.quarantine import actions, entries, marker
from bshmd.quarantine.store import quarantine_input
from tests.ingest.helpers import folder_claims
from tests.support.config import config_data


def gate_rejection(matte: np.ndarray) -> InputRejected:
    """The real rejection the gate gives for this matte under a strict gate."""
    with pytest.raises(InputRejected) as caught:
        check_matte(matte, GateConfig(min_foreground=0.7))
    return caught.value


@pytest.fixture
def quarantined(hot: dict[str, Path], folder: FolderConfig, studio_png: Path, studio_matte: np.ndarray) -> entries.QuarantineEntry:
    (hot["in"] / "shoot").mkdir()
    source = hot["in"] / "shoot" / "dancer.png"
    shutil.copy(studio_png, source)
    quarantine_input(folder, source, PurePosixPath("shoot/dancer.png"), gate_rejection(studio_matte),
                       instance_id="host-1", matte=studio_matte)
    [entry] = entries.list_entries([folder])
    return entry


def test_quarantine_layout_and_record(quarantined: entries.QuarantineEntry, hot: dict[str, Path],
                                      studio_matte: np.ndarray) -> None:
    base = hot["quarantine"] / "shoot"
    assert sorted(p.name for p in base.iterdir()) == [
        "dancer.png", "dancer.png.matte.png", "dancer.png.preview.png", "dancer.png.reason.json"]
    assert not (hot["in"] / "shoot" / "dancer.png").exists()
    record = json.loads((base / "dancer.png.reason.json").read_text())
    assert record["reason"] == "no_subject" and record["status"] == "quarantined"
    assert record["measured"]["foreground"] == pytest.approx(0.578, abs=0.001)
    assert record["relpath"] == "shoot/dancer.png" and record["input_root"] == str(hot["in"])
    assert record["folder"] == str(hot["quarantine"]) and record["instance"] == "host-1"
    assert record["time"].endswith("Z") and record["history"][0]["action"] == "quarantined"
    assert record["matte"] == "dancer.png.matte.png" and record["preview"] == "dancer.png.preview.png"
    np.testing.assert_array_equal(np.asarray(Image.open(base / "dancer.png.matte.png")), studio_matte)
    with Image.open(base / "dancer.png.preview.png") as preview:
        assert max(preview.size) == 256 and preview.mode == "L"
    assert quarantined.reason == "no_subject" and quarantined.relpath == PurePosixPath("shoot/dancer.png")


def test_second_file_of_the_same_name_gets_its_own_entry(quarantined: entries.QuarantineEntry, hot: dict[str, Path],
                                                          folder: FolderConfig) -> None:
    source = hot["in"] / "shoot" / "dancer.png"
    source.write_bytes(b"")
    moved = quarantine_input(folder, source, PurePosixPath("shoot/dancer.png"),
                               InputRejected("empty", "dancer.png: empty"), instance_id="host-1")
    assert moved.name == "dancer~1.png"
    assert json.loads(moved.with_name("dancer~1.png.reason.json").read_text())["reason"] == "empty"
    assert json.loads((hot["quarantine"] / "shoot" / "dancer.png.reason.json").read_text())["reason"] == "no_subject"
    assert [e.path.name for e in entries.list_entries([folder])] == ["dancer~1.png", "dancer.png"]  # newest first


def test_vanished_input_is_still_recorded(hot: dict[str, Path], folder: FolderConfig) -> None:
    where = quarantine_input(folder, hot["in"] / "gone.jpg", PurePosixPath("gone.jpg"),
                               InputRejected("unreadable", "gone.jpg: vanished"), instance_id="h")
    record = json.loads(where.with_name("gone.jpg.reason.json").read_text())
    assert record["input_missing"] is True and record["reason"] == "unreadable"


def test_find_entry_accepts_the_file_or_its_record_and_refuses_others(quarantined: entries.QuarantineEntry,
                                                                     folder: FolderConfig, hot: dict[str, Path]) -> None:
    assert entries.find_entry([folder], quarantined.path).reason_file == quarantined.reason_file
    assert entries.find_entry([folder], quarantined.reason_file).path == quarantined.path
    for outside in (hot["in"] / "x.jpg", hot["quarantine"] / "shoot" / "nothing.jpg", Path("/etc/passwd")):
        with pytest.raises(InputRejected):
            entries.find_entry([folder], outside)


def test_requeue_gives_a_new_key_and_accept_passes_once(quarantined: entries.QuarantineEntry, folder: FolderConfig,
                                                        hot: dict[str, Path]) -> None:
    old_key = FileKey.of(hot["quarantine"], quarantined.path)
    # The ledger holds a done row for the quarantined attempt (same relpath, size, mtime).
    store = folder_claims(hot, "host-1")
    claim = store.try_claim(FileKey("shoot/dancer.png", old_key.size, old_key.mtime_ns))
    assert claim is not None
    claim.complete(Outcome(QUARANTINED))

    back = actions.requeue(quarantined, accept=True, by="tester")
    assert back == hot["in"] / "shoot" / "dancer.png"
    key = FileKey.of(hot["in"], back)
    assert key.mtime_ns != old_key.mtime_ns
    fresh_store = folder_claims(hot, "host-2")
    assert not fresh_store.is_done(key) and fresh_store.try_claim(key) is not None

    assert marker.accept_marker_path(folder, key).exists()
    assert marker.consume_accept(folder, key) is True
    assert marker.consume_accept(folder, key) is False
    assert entries.list_entries([folder]) == []
    assert sorted(p.name for p in (hot["quarantine"] / "shoot").iterdir()) == []
    [history] = (hot["quarantine"] / ".history" / "shoot").iterdir()
    record = json.loads(history.read_text())
    assert record["status"] == "requeued"
    assert [h["action"] for h in record["history"]] == ["quarantined", "requeued"]
    assert record["history"][1]["by"] == "tester" and record["history"][1]["accept_once"] is True


def test_requeue_never_overwrites_a_new_file_of_the_same_name(quarantined: entries.QuarantineEntry,
                                                              hot: dict[str, Path]) -> None:
    (hot["in"] / "shoot" / "dancer.png").write_bytes(b"a newer export")
    back = actions.requeue(quarantined)
    assert back.name == "dancer~1.png"
    assert (hot["in"] / "shoot" / "dancer.png").read_bytes() == b"a newer export"


def test_stale_accept_marker_is_ignored(folder: FolderConfig, hot: dict[str, Path]) -> None:
    key = FileKey("a.jpg", 10, 1)
    marker.write_accept_marker(folder, key, "t")  # the marker a requeue writes
    assert marker.consume_accept(folder, FileKey("a.jpg", 11, 2)) is False
    assert not marker.accept_marker_path(folder, key).exists()


@pytest.mark.parametrize("on_success", ["keep", "move", "delete"])
def test_accept_writes_results_from_the_stored_matte(on_success: str, hot: dict[str, Path], studio_png: Path,
                                                     studio_matte: np.ndarray, make_config) -> None:  # noqa: ANN001
    config = make_config(hot, on_success=on_success, outputs={"formats": ["cutout", "alpha"]})
    folder = config.folders[0]
    source = hot["in"] / "dancer.png"
    shutil.copy(studio_png, source)
    quarantine_input(folder, source, PurePosixPath("dancer.png"), gate_rejection(studio_matte),
                       instance_id="h", matte=studio_matte)
    [entry] = entries.list_entries(config.folders)
    written = actions.accept(entry, config, by="reviewer").outputs
    assert sorted(p.name for p in written) == ["dancer.png.alpha.png", "dancer.png.cutout.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(hot["out"] / "dancer.png.alpha.png")), studio_matte)
    back = hot["in"] / "dancer.png"
    done = folder.done_dir / "dancer.png"
    assert back.exists() == (on_success == "keep")
    assert done.exists() == (on_success == "move")
    if on_success == "keep":  # back in place, but marked done: the daemon will not process it again
        assert folder_claims(hot, "other").is_done(FileKey.of(hot["in"], back))
    assert entries.list_entries(config.folders) == []
    [history] = (hot["quarantine"] / ".history").iterdir()
    assert json.loads(history.read_text())["status"] == "accepted"


def test_accept_without_a_stored_matte_is_refused(hot: dict[str, Path], config: Config) -> None:
    source = hot["in"] / "x.jpg"
    source.write_bytes(b"")
    quarantine_input(config.folders[0], source, PurePosixPath("x.jpg"), InputRejected("empty", "x.jpg: empty"),
                       instance_id="h")
    [entry] = entries.list_entries(config.folders)
    with pytest.raises(InputRejected) as caught:
        actions.accept(entry, config)
    assert caught.value.reason_code == "no_matte"
    assert entry.reason_file.exists()


def test_reject_moves_everything_to_the_rejected_tree(quarantined: entries.QuarantineEntry, folder: FolderConfig) -> None:
    moved = actions.reject(quarantined, by="reviewer")
    assert moved == folder.rejected_dir / "shoot" / "dancer.png"
    assert sorted(p.name for p in moved.parent.iterdir()) == [
        "dancer.png", "dancer.png.matte.png", "dancer.png.preview.png", "dancer.png.reason.json"]
    record = json.loads(moved.with_name("dancer.png.reason.json").read_text())
    assert record["status"] == "rejected" and record["history"][-1]["by"] == "reviewer"
    assert entries.list_entries([folder]) == []


def test_purge_deletes_only_old_entries(quarantined: entries.QuarantineEntry, folder: FolderConfig,
                                        hot: dict[str, Path]) -> None:
    assert actions.purge([folder], older_than_days=1) == 0
    record = json.loads(quarantined.reason_file.read_text())
    record["time"] = "2020-01-01T00:00:00.000000Z"
    quarantined.reason_file.write_text(json.dumps(record))
    assert actions.purge([folder], older_than_days=1) == 1
    assert list((hot["quarantine"] / "shoot").iterdir()) == []


# --- command line ----------------------------------------------------------------------------


@pytest.fixture
def config_file(hot: dict[str, Path]) -> Path:
    path = hot["in"].parent / "bshmd.yaml"
    path.write_text(yaml.safe_dump(config_data(hot)))
    return path


def test_cli_list_requeue_and_purge(quarantined: entries.QuarantineEntry, config_file: Path, hot: dict[str, Path]) -> None:
    runner = CliRunner()
    listed = runner.invoke(main, ["quarantine", "list", "-c", str(config_file)], terminal_width=200)
    assert listed.exit_code == 0, listed.output
    assert "dancer.png" in listed.output and "no_subject" in listed.output

    wrong = runner.invoke(main, ["quarantine", "requeue", "-c", str(config_file), str(hot["in"] / "nope.jpg")])
    assert wrong.exit_code == 1 and "not inside a quarantine folder" in wrong.output

    skipped = runner.invoke(main, ["quarantine", "requeue", "--all", "--reason", "truncated", "-c", str(config_file)])
    assert skipped.exit_code == 0 and "nothing to requeue" in skipped.output
    assert quarantined.path.exists()

    done = runner.invoke(main, ["quarantine", "requeue", "--all", "--reason", "no_subject", "--accept",
                                "-c", str(config_file)])
    assert done.exit_code == 0, done.output
    assert (hot["in"] / "shoot" / "dancer.png").exists() and not quarantined.path.exists()
    assert "accept once" in done.output

    purged = runner.invoke(main, ["quarantine", "purge", "--older-than", "0", "-c", str(config_file)])
    assert purged.exit_code == 0 and "purged 0" in purged.output
    empty = runner.invoke(main, ["quarantine", "list", "-c", str(config_file)])
    assert "no quarantined files" in empty.output


def test_cli_requeue_by_path(quarantined: entries.QuarantineEntry, config_file: Path, hot: dict[str, Path]) -> None:
    result = CliRunner().invoke(main, ["quarantine", "requeue", "-c", str(config_file), str(quarantined.path)])
    assert result.exit_code == 0, result.output
    assert (hot["in"] / "shoot" / "dancer.png").exists()
    assert os.listdir(hot["quarantine"] / "shoot") == []


def test_records_written_by_earlier_versions_still_load_and_keep_their_keys(folder: FolderConfig,
                                                                           hot: dict[str, Path]) -> None:
    """An entry's .reason.json as an earlier version wrote it (no preview, no input_missing, a key
    this version does not know): listed, acted on, and written back with nothing lost."""
    (hot["quarantine"] / "old").mkdir()
    (hot["quarantine"] / "old" / "a.jpg").write_bytes(b"not really a jpeg")
    old = {"reason": "truncated", "message": "a.jpg: cut short", "measured": {"bytes": 17},
           "time": "2024-05-01T10:00:00.000000Z", "version": "0.1.0", "instance": "old-host",
           "relpath": "old/a.jpg", "status": "quarantined", "matte": None, "camera": "kept as it was",
           "history": [{"time": "2024-05-01T10:00:00.000000Z", "action": "quarantined", "by": "old-host",
                        "note": "a detail of its own"}]}
    (hot["quarantine"] / "old" / "a.jpg.reason.json").write_text(json.dumps(old))
    [entry] = entries.list_entries([folder])
    assert entry.reason == "truncated" and entry.relpath == PurePosixPath("old/a.jpg")
    assert entry.record.measured == {"bytes": 17} and entry.record.input_missing is False
    assert entry.sidecar("matte") is None and entry.sidecar("preview") is None
    assert entry.time.year == 2024
    moved = actions.reject(entry, by="tester")
    record = json.loads(moved.with_name("a.jpg.reason.json").read_text())
    assert record["camera"] == "kept as it was" and record["status"] == "rejected"
    assert record["history"][0] == old["history"][0] and record["history"][1]["action"] == "rejected"
    assert {k: record[k] for k in ("reason", "message", "measured", "time", "relpath")} == {
        k: old[k] for k in ("reason", "message", "measured", "time", "relpath")}
