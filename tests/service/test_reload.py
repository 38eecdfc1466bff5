"""SIGHUP's decisions (bshmd.service.reload) and the daemon's instance id, without a daemon process."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bshmd.config import parse_config
from bshmd.service.reload import note_applied, reread, take_over


def _config(tmp_path: Path, *inputs: str, **extra: object):
    folders = [{"input": str(tmp_path / name), "output": str(tmp_path / f"{name}-out"),
                "quarantine": str(tmp_path / f"{name}-q")} for name in inputs]
    return parse_config({"folders": folders, **extra}, base_dir=tmp_path, source=tmp_path / "bshmd.yaml")


def test_restart_only_values_are_kept_and_named(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    old = _config(tmp_path, "a", instance_id="gpu0", http={"port": 9464}, pipeline={"queue_size": 4})
    new = _config(tmp_path, "a", "b", instance_id="gpu1", http={"port": 9465}, pipeline={"queue_size": 8},
                  settle_seconds=5)
    with caplog.at_level(logging.INFO, logger="bshmd.service"):
        applied = take_over(old, new)
        note_applied(old, applied)
    assert (applied.instance_id, applied.http.port) == ("gpu0", 9464)  # bound at start
    assert applied.settle_seconds == 5 and len(applied.folders) == 2  # changed in place
    text = caplog.text
    assert "'instance_id' changed; it needs a restart" in text and "'http' changed" in text
    assert "'pipeline.queue_size' changed" in text and "'model' changed" not in text
    assert f"added {tmp_path / 'b'}" in text


def test_a_broken_file_keeps_the_running_configuration(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "bshmd.yaml"
    path.write_text("folders: []\n")
    with caplog.at_level(logging.ERROR, logger="bshmd.service"):
        assert reread(path) is None
    assert "folders" in caplog.text and "keeping the running configuration" in caplog.text


def test_the_daemon_takes_its_instance_id_from_the_environment(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from bshmd.service.daemon import Daemon
    from bshmd.service.systemd import Notifier

    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)  # no systemd: the notifier stays silent
    monkeypatch.setenv("BSHMD_INSTANCE_ID", "gpu3")
    assert Daemon(_config(tmp_path, "a"), Notifier()).instance_id == "gpu3"
    assert Daemon(_config(tmp_path, "a", instance_id="set-here"), Notifier()).instance_id == "set-here"
