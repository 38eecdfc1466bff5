"""What the host lets the pipeline hold: the cores it may use, the decoded pixels in flight,
and how much freed memory glibc may keep.

``PixelBudget`` bounds memory by bytes rather than by file count: a 61 MP frame weighs as
much as fifteen 4 MP ones. A decode worker acquires its image's megapixels (read from the
header) before decoding, and the pipeline releases them when the job is finished, so however
many large files wait, at most ``limit`` megapixels are decoded and not yet written. A single
image larger than the whole budget still goes through, alone, once nothing else is held;
otherwise it could never be processed.

The budget bounds what is live; ``bound_heap_retention`` and ``HeapTrim`` (which calls
``return_freed_memory``) keep the process's RSS close to that (see bound_heap_retention for
the measurement, HeapTrim for how often).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading
from collections.abc import Callable, Hashable
from pathlib import Path

_M_MMAP_THRESHOLD = -3  # mallopt parameter (glibc malloc.h)
HEAP_MMAP_THRESHOLD = 4 << 20  # allocations from 4 MiB get pages of their own, returned on free
TRIM_AFTER_MEGAPIXELS = 20.0  # HeapTrim: return freed heap memory once this much was finished


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc only (not musl, not macOS)
    except (OSError, AttributeError):
        return None
    return libc


def bound_heap_retention() -> None:
    """Make glibc return large freed blocks to the system instead of keeping them for reuse.

    By default glibc raises its mmap threshold to the size of the largest block freed (up to
    32 MiB), so after the first 24 MP frame every 4-32 MiB temporary (a matte, a grey plane,
    an encoded file) is carved from the heap of whichever thread asked for it, and each
    decode, inference and write thread's heap keeps its high-water mark. Measured on
    ``bshmd process`` with six 24 MP photos: 1.7-2.0 GiB peak RSS while 0.4-0.7 GiB was live.
    A fixed threshold stops that; the cost is fresh pages (page faults) for each large block.
    Called once per process, by the pipeline at start; a no-op off glibc.
    """
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD)


def return_freed_memory() -> None:
    """Hand memory freed inside glibc's heaps back to the system (malloc_trim); a no-op off glibc."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


class HeapTrim:
    """``return_freed_memory`` once ``every`` megapixels of finished images were freed since
    the last time, and whenever the pipeline falls idle.

    A trim hands every free page of every thread's heap back to the system, and the next
    images fault them in again. Done after each 640×480 image it cost 4 ms of system and
    2.5 ms of user CPU per image on 2 cores (more than decoding the image) and took the
    pipeline from 110 to 73 images/s (bench/bench_pipeline.py, device mode). With ``every``
    at 20 MP a 24 MP photo is still followed by a trim, as the RSS bound for studio photos
    was measured, and a backlog of small photos is trimmed every few dozen.
    """

    def __init__(self, every: float = TRIM_AFTER_MEGAPIXELS,
                 trim: Callable[[], None] = return_freed_memory) -> None:
        self.every = every
        self._trim = trim
        self._lock = threading.Lock()
        self._pending = 0.0  # megapixels freed since the last trim

    def freed(self, megapixels: float, *, idle: bool) -> bool:
        """An image of ``megapixels`` was finished (``idle``: nothing else is in flight).
        True when this call trimmed."""
        with self._lock:
            self._pending += megapixels
            due = self._pending >= self.every or (idle and self._pending > 0)
            if due:
                self._pending = 0.0
        if due:
            self._trim()
        return due


def image_megapixels(path: Path) -> float:
    """The image's size from its header, in megapixels; 0 when the header cannot be read
    (decoding then refuses the file with the reason, and it holds no budget meanwhile)."""
    from bshmd.decode.image import probe_image

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

    def release(self, key: Hashable) -> float:
        """Give back what ``key`` holds (returned; 0 for a key that holds nothing)."""
        with self._cond:
            held = self._held.pop(key, None)
            if held is not None:
                self._cond.notify_all()
            return held or 0.0

    def close(self) -> None:
        """Wake every waiter with False: the pipeline is stopping."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def held(self) -> float:
        with self._cond:
            return sum(self._held.values())
