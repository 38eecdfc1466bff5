"""What the host lets the pipeline hold: the cores it may use and the decoded pixels in flight.

``PixelBudget`` bounds memory by bytes rather than by file count: a 61 MP frame weighs as
much as sixteen 4 MP ones. Each decode acquires its image's megapixels before reading the
file and the pipeline releases them when the job is finished, so however many large files
wait, at most ``limit`` megapixels are decoded and not yet written. A single image larger
than the whole budget still goes through, alone, once nothing else is in flight; otherwise
it could never be processed.
"""

from __future__ import annotations

import os
import threading


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, as cgroups/taskset/docker --cpuset set it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


class PixelBudget:
    """A counting semaphore in megapixels, where one oversized request may run alone."""

    def __init__(self, limit: float) -> None:
        if limit <= 0:
            raise ValueError(f"a pixel budget must be positive, got {limit}")
        self.limit = float(limit)
        self._held = 0.0
        self._holders = 0
        self._closed = False
        self._cond = threading.Condition()

    def acquire(self, megapixels: float, timeout: float | None = None) -> bool:
        """Wait until ``megapixels`` fit (or the budget is empty); False on timeout or close."""
        with self._cond:
            fits = lambda: self._closed or self._holders == 0 or self._held + megapixels <= self.limit  # noqa: E731
            if not self._cond.wait_for(fits, timeout) or self._closed:
                return False
            self._held += megapixels
            self._holders += 1
            return True

    def release(self, megapixels: float) -> None:
        with self._cond:
            self._held = max(self._held - megapixels, 0.0)
            self._holders = max(self._holders - 1, 0)
            if self._holders == 0:
                self._held = 0.0  # no float drift left behind once empty
            self._cond.notify_all()

    def close(self) -> None:
        """Wake every waiter with False: the pipeline is stopping."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def held(self) -> float:
        with self._cond:
            return self._held
