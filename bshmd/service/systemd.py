"""The sd_notify protocol: tell systemd when bshmd is ready, alive, busy or stopping.

As in gunicorn's ``systemd.py``, the notifier is a no-op without ``NOTIFY_SOCKET`` and never
raises: a failed notification must not take the daemon down. With ``NOTIFY_SOCKET`` set but
systemd-python missing, the daemon refuses to start, because systemd would otherwise wait for
a READY=1 that never comes and then kill a perfectly good process.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType

from bshmd.errors import EnvironmentNotReady

log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages to the service manager, if there is one."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.socket = environ.get("NOTIFY_SOCKET") or None
        self._send: Callable[[str], bool] | None = None
        self._lock = threading.Lock()
        if self.socket:
            try:
                from systemd import daemon
            except ImportError as exc:
                raise EnvironmentNotReady(
                    f"NOTIFY_SOCKET is set ({self.socket}) but systemd-python cannot be imported ({exc}): "
                    "install bshmd with its systemd extra (scripts/setup does) or run the service "
                    "with Type=simple"
                ) from exc
            self._send = daemon.notify
        self.watchdog_seconds = _watchdog_seconds(environ)

    @property
    def enabled(self) -> bool:
        return self._send is not None

    def notify(self, message: str) -> bool:
        """Send one message (``KEY=value`` lines); False when nothing was sent."""
        if self._send is None:
            return False
        try:
            with self._lock:
                return bool(self._send(message))
        except Exception as exc:  # noqa: BLE001 - a notification never ends the daemon
            log.warning("cannot notify systemd: %s", exc)
            return False

    def ready(self, status: str) -> bool:
        return self.notify(f"READY=1\nSTATUS={_one_line(status)}")

    def status(self, status: str) -> bool:
        return self.notify(f"STATUS={_one_line(status)}")

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify(f"STOPPING=1\nSTATUS={_one_line(status)}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> bool:
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    @contextmanager
    def extending_timeout(self, what: str, *, step_seconds: float = 60.0) -> Iterator[None]:
        """While the body runs (fetching, loading a model), keep pushing systemd's start or
        stop timeout ``step_seconds`` ahead, so a slow download is not taken for a hang."""
        if not self.enabled:
            yield
            return
        with _TimeoutExtender(self, what, step_seconds):
            yield


class _TimeoutExtender:
    def __init__(self, notifier: Notifier, what: str, step_seconds: float) -> None:
        self._notifier = notifier
        self._what = what
        self._step = step_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bshmd-extend-timeout", daemon=True)

    def __enter__(self) -> _TimeoutExtender:
        self._notifier.extend_timeout(self._step)
        self._notifier.status(self._what)
        self._thread.start()
        return self

    def _run(self) -> None:
        # Extend well before the previous extension runs out.
        while not self._stop.wait(self._step / 3):
            self._notifier.extend_timeout(self._step)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()


def _watchdog_seconds(environ: Mapping[str, str]) -> float | None:
    """systemd's watchdog interval for this process, or None when no watchdog is asked for.

    WATCHDOG_PID names the process the watchdog is meant for; a child that inherited the
    variables from its parent must not ping on the parent's behalf.
    """
    usec = environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r: not a number of microseconds", usec)
        return None
    return value / 1_000_000 if value > 0 else None


def _one_line(text: str) -> str:
    return " ".join(text.split())
