"""sd_notify through systemd-python, sent to a real datagram socket."""

from __future__ import annotations

import os
import sys

import pytest

from bshmd.errors import EnvironmentNotReady
from bshmd.service.systemd import Notifier


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    assert notifier.ready("ready") is False
    assert notifier.watchdog() is False


def test_messages_reach_the_socket(notify_socket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_socket.path))
    notifier = Notifier()
    assert notifier.enabled
    assert notifier.ready("queued 0,\nprocessed 0")
    assert notifier.watchdog()
    assert notifier.extend_timeout(2.5)
    assert notifier.stopping()
    notify_socket.wait_for(lambda m: m.startswith("STOPPING=1"), timeout=5)
    assert notify_socket.texts() == [
        "READY=1\nSTATUS=queued 0, processed 0",  # STATUS stays one line
        "WATCHDOG=1",
        "EXTEND_TIMEOUT_USEC=2500000",
        "STOPPING=1\nSTATUS=stopping",
    ]


def test_a_vanished_socket_does_not_raise(notify_socket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_socket.path))
    notifier = Notifier()
    notify_socket.close()
    os.unlink(notify_socket.path)
    assert notifier.status("anything") is False


def test_extending_timeout_repeats_while_the_body_runs(notify_socket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify_socket.path))
    notifier = Notifier()
    with notifier.extending_timeout("loading model", step_seconds=0.9):
        # Each extension is sent before the previous one (0.9 s) runs out.
        notify_socket.wait_for(lambda m: m == "EXTEND_TIMEOUT_USEC=900000", timeout=5)
        first = notify_socket.messages[0][0]
        notify_socket.wait_for(
            lambda m: sum(t == "EXTEND_TIMEOUT_USEC=900000" for t in notify_socket.texts()) >= 3, timeout=5)
    extensions = [t for t, m in notify_socket.messages if m.startswith("EXTEND_TIMEOUT_USEC")]
    assert len(extensions) >= 3 and extensions[-1] > first
    assert "STATUS=loading model" in notify_socket.texts()
    gaps = [b - a for a, b in zip(extensions, extensions[1:], strict=False)]
    assert max(gaps) < 0.9


def test_watchdog_interval_honours_watchdog_pid() -> None:
    mine = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(mine).watchdog_seconds == 2.0
    assert Notifier({"WATCHDOG_USEC": "2000000"}).watchdog_seconds == 2.0
    assert Notifier({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}).watchdog_seconds is None
    assert Notifier({"WATCHDOG_USEC": "soon"}).watchdog_seconds is None
    assert Notifier({}).watchdog_seconds is None


def test_notify_socket_without_systemd_python_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "systemd", None)  # what an install without the extra looks like
    with pytest.raises(EnvironmentNotReady, match="systemd-python") as info:
        Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    assert info.value.exit_status == 5
