"""Running the real daemon as a subprocess (``python -m bshmd run``) for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml

from tests.support.config import config_data
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(path: Path, model_dir: Path, folders: list[dict], **overrides) -> Path:
    defaults = {
        "model": {"path": str(model_dir), "intra_op_threads": 1, "inter_op_threads": 1},
        "settle_seconds": 0.3,
        "poll_seconds": 0.3,
        "rescan_seconds": 5,
        "gate": {"enabled": False},
        "shutdown_timeout": 20,
        "logging": {"level": "INFO", "journald": "off"},
        "http": {"enabled": True, "host": "127.0.0.1", "port": free_port()},
    }
    path.write_text(yaml.safe_dump(config_data(path.parent, folders, defaults=defaults, **overrides)))
    return path


def folder(root: Path, name: str) -> dict:
    entry = {"input": root / f"{name}-in", "output": root / f"{name}-out", "quarantine": root / f"{name}-q"}
    for p in entry.values():
        p.mkdir(parents=True, exist_ok=True)
    return {k: str(v) for k, v in entry.items()}


class DaemonProcess:
    """``bshmd run -c CONFIG`` in a child process, its stderr collected in a file."""

    def __init__(self, config: Path, log: Path, *, env: dict[str, str] | None = None,
                 argv: list[str] | None = None) -> None:
        self.config = config
        self.log = log
        self.port = yaml.safe_load(config.read_text())["http"]["port"]
        full_env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC",
                                                                     "WATCHDOG_PID", "JOURNAL_STREAM")}
        full_env.update({"PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""})
        full_env.update(env or {})
        argv = argv or [sys.executable, "-m", "bshmd"]
        self._log_file = log.open("w")
        self.proc = subprocess.Popen([*argv, "run", "-c", str(config)], cwd=REPO, env=full_env,
                                     stdout=self._log_file, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_log(self, needle: str, timeout: float = 60) -> None:
        def logged() -> bool:
            if needle in self.text():
                return True
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited ({self.proc.returncode}) before logging {needle!r}:\n{self.text()}")
            return False

        wait_until(logged, timeout, lambda: f"{needle!r} in the daemon's log:\n{self.text()}")

    def status(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/status", timeout=5) as response:
            return json.loads(response.read())

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is not None:
                self._log_file.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log_file.close()


