"""Helpers for the service tests: a real sd_notify socket to listen on."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.waiting import wait_until


class NotifySocket:
    """An AF_UNIX datagram socket standing where systemd's notify socket would be."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[tuple[float, str]] = []  # (monotonic arrival, datagram)

    def drain(self, timeout: float = 0.0) -> list[tuple[float, str]]:
        """Receive what has arrived (waiting up to ``timeout`` for the first datagram)."""
        got = []
        if timeout > 0:
            self.sock.settimeout(timeout)
        else:
            self.sock.setblocking(False)
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, TimeoutError):
                break
            got.append((time.monotonic(), data.decode()))
            self.sock.setblocking(False)
        self.messages.extend(got)
        return got

    def wait_for(self, predicate, timeout: float) -> tuple[float, str]:
        """The first message (already received or arriving within ``timeout``) that matches."""
        def matching() -> tuple[float, str] | None:
            for message in self.messages:
                if predicate(message[1]):
                    return message
            for message in self.drain(timeout=0.2):  # blocks in recv: the wait between looks
                if predicate(message[1]):
                    return message
            return None

        return wait_until(matching, timeout, lambda: f"a matching sd_notify message; got {self.texts()}", interval=0)

    def texts(self) -> list[str]:
        return [text for _, text in self.messages]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()
