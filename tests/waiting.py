"""Waiting on a condition in tests: poll it with a deadline instead of sleeping a guessed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(predicate: Callable[[], Any], timeout: float, what: str = "a condition", *,
               interval: float = 0.05) -> Any:
    """The first truthy value of ``predicate()``; a timeout fails the test, naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
