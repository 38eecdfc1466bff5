"""Signal handling in the style of uvicorn and gunicorn: handlers only record the signal.

Python runs signal handlers in the main thread between bytecodes, possibly in the middle of
a lock-holding call; doing real work there (stopping threads, reloading files) invites
deadlocks. So a handler only puts the signal on a queue, and the daemon's main loop takes
it off and dispatches. The one exception is a second SIGTERM/SIGINT, which must work even
when the main loop is stuck: it calls ``on_force`` right away.
"""

from __future__ import annotations

import queue
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
HANDLED_SIGNALS = (*STOP_SIGNALS, signal.SIGHUP)


class SignalQueue:
    """Collects signals for the main loop; counts stop signals to detect a forced stop."""

    def __init__(self, on_force: Callable[[signal.Signals], None] | None = None) -> None:
        self._queue: queue.SimpleQueue[signal.Signals] = queue.SimpleQueue()
        self._on_force = on_force
        self.stop_requests = 0

    def handle(self, signum: int, frame: FrameType | None = None) -> None:
        sig = signal.Signals(signum)
        if sig in STOP_SIGNALS:
            self.stop_requests += 1
            if self.stop_requests > 1 and self._on_force is not None:
                self._on_force(sig)
                return
        self._queue.put(sig)

    def get(self, timeout: float | None) -> signal.Signals | None:
        """The next signal, or None when none arrived within ``timeout`` seconds."""
        # SimpleQueue, because put() is safe to call from a handler that interrupted get().
        try:
            if timeout is not None and timeout <= 0:
                return self._queue.get_nowait()
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    @property
    def stop_requested(self) -> bool:
        return self.stop_requests > 0


@contextmanager
def capture_signals(signals: SignalQueue, handled: tuple[signal.Signals, ...] = HANDLED_SIGNALS
                    ) -> Iterator[SignalQueue]:
    """Route ``handled`` to ``signals`` for the body, then restore the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("signal handlers can only be installed from the main thread")
    previous: dict[signal.Signals, Any] = {}
    try:
        for sig in handled:
            previous[sig] = signal.signal(sig, signals.handle)
        yield signals
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
