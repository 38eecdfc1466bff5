"""Waiting on a condition in tests: poll it with a deadline instead of sleeping a guessed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, what: str | Callable[[], str] = "a condition",
               *, interval: float = 0.05, fail: bool = True,
               sleep: Callable[[float], None] = time.sleep) -> Any:
    """The first truthy value of ``predicate()`` within ``timeout`` seconds.

    At the deadline a test fails, naming ``what`` (a callable is asked then: a log's text,
    say); with ``fail=False`` the last (falsy) value is returned instead, for a test that
    checks something does *not* happen within a while. ``sleep`` waits between looks (a
    browser page pumps its events while it waits).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            if not fail:
                return value
            described = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:g} s waiting for {described}")
        sleep(interval)
