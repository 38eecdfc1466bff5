"""What the host lets the pipeline hold: the cores it may use and the decoded pixels in flight.

``PixelBudget`` bounds memory by bytes rather than by file count: a 61 MP frame weighs as
much as fifteen 4 MP ones. A decode worker acquires its image's megapixels (read from the
header) before decoding, and the pipeline releases them when the job is finished, so however
many large files wait, at most ``limit`` megapixels are decoded and not yet written. A single
image larger than the whole budget still goes through, alone, once nothing else is held;
otherwise it could never be processed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Hashable
from pathlib import Path


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, as taskset or docker --cpuset-cpus set it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def image_megapixels(path: Path) -> float:
    """The image's size from its header, in megapixels; 0 when the header cannot be read
    (decoding then refuses the file with the reason, and it holds no budget meanwhile)."""
    from bshmd.pipeline.decode import probe_image

    try:
        info = probe_image(path)
    except Exception:
        return 0.0
    return info.width * info.height / 1e6


def _positive(limit: float) -> float:
    if not limit > 0:
        raise ValueError(f"a pixel budget must be positive, got {limit}")
    return float(limit)


class PixelBudget:
    """A counting semaphore in megapixels, keyed by holder, where one oversized holder may run alone."""

    def __init__(self, limit: float) -> None:
        self._cond = threading.Condition()
        self._held: dict[Hashable, float] = {}
        self._closed = False
        self.limit = _positive(limit)

    def set_limit(self, limit: float) -> None:
        """A new limit from now on (a reloaded configuration); waiters that now fit go on."""
        with self._cond:
            self.limit = _positive(limit)
            self._cond.notify_all()

    def _fits(self, megapixels: float) -> bool:
        return self._closed or not self._held or sum(self._held.values()) + megapixels <= self.limit

    def acquire(self, key: Hashable, megapixels: float, timeout: float | None = None) -> bool:
        """Wait until ``megapixels`` fit, or nothing else is held; False on timeout or after close()."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._fits(megapixels), timeout) or self._closed:
                return False
            self._held[key] = self._held.get(key, 0.0) + megapixels
            return True

    def release(self, key: Hashable) -> None:
        """Give back what ``key`` holds; nothing happens for a key that holds nothing."""
        with self._cond:
            if self._held.pop(key, None) is not None:
                self._cond.notify_all()

    def close(self) -> None:
        """Wake every waiter with False: the pipeline is stopping."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def held(self) -> float:
        with self._cond:
            return sum(self._held.values())
