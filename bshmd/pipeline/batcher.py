"""Groups decoded images into inference batches.

Rule: images are grouped by their size ``(height, width)`` because a batch can only hold
images the engine can stack together. Each size group keeps its own pending list and its own
deadline, set when the group's FIRST image arrives. A group is released as one batch when it
holds ``max_size`` images, or once its deadline (``max_wait`` after that first image) has
passed, whichever comes first. When several groups are ready, the one whose first image
arrived earliest goes first, so no size starves.

The consumer pulls (``next_batch``) instead of the batcher pushing from a thread of its own,
so a busy inference thread simply lets ready groups keep growing up to ``max_size`` — the
same ``Condition`` wait as watchdog's ``EventDebouncer``, without the extra thread.
``close()`` makes every pending group ready at once and ``next_batch`` returns ``None``
once nothing is left.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Group(Generic[T]):
    first_at: float
    items: list[T] = field(default_factory=list)


class Batcher(Generic[T]):
    """Thread-safe: any number of producers ``add``, one or more consumers ``next_batch``."""

    def __init__(self, max_size: int, max_wait: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        if max_wait <= 0:
            raise ValueError("max_wait must be positive")
        self.max_size = max_size
        self.max_wait = max_wait
        self._clock = clock
        self._groups: dict[Hashable, _Group[T]] = {}
        self._cond = threading.Condition()
        self._closed = False

    def add(self, item: T, key: Hashable) -> None:
        """Queue ``item`` into the group ``key`` (for images: their ``(height, width)``)."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _Group(first_at=self._clock())
            group.items.append(item)
            self._cond.notify_all()

    def close(self) -> None:
        """No more items: release everything pending without waiting for deadlines."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def set_limits(self, max_size: int, max_wait: float) -> None:
        """New limits (configuration reload); they apply to the next decision."""
        with self._cond:
            self.max_size = max_size
            self.max_wait = max_wait
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return sum(len(group.items) for group in self._groups.values())

    def next_batch(self, timeout: float | None = None) -> list[T] | None:
        """The next ready batch; ``None`` when closed and empty, or when ``timeout`` passed first."""
        give_up = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                now = self._clock()
                key, wait = self._ready_key(now)
                if key is not None:
                    return self._take(key)
                if self._closed and not self._groups:
                    return None
                if give_up is not None:
                    if now >= give_up:
                        return None
                    wait = min(wait, give_up - now) if wait is not None else give_up - now
                self._cond.wait(timeout=wait)

    def _ready_key(self, now: float) -> tuple[Hashable | None, float | None]:
        """The group to release now, or None and how long until the earliest deadline."""
        oldest_ready: tuple[float, Any] | None = None
        next_deadline: float | None = None
        for key, group in self._groups.items():
            deadline = group.first_at + self.max_wait
            if self._closed or len(group.items) >= self.max_size or now >= deadline:
                if oldest_ready is None or group.first_at < oldest_ready[0]:
                    oldest_ready = (group.first_at, key)
            elif next_deadline is None or deadline < next_deadline:
                next_deadline = deadline
        if oldest_ready is not None:
            return oldest_ready[1], None
        return None, None if next_deadline is None else max(next_deadline - now, 0.0)

    def _take(self, key: Hashable) -> list[T]:
        group = self._groups[key]
        batch, rest = group.items[: self.max_size], group.items[self.max_size :]
        if rest:
            # The leftovers start a new batch; they arrived after the first one, so their
            # deadline counts from now (the moment they became the head of a group).
            group.items = rest
            group.first_at = self._clock()
        else:
            del self._groups[key]
        return batch
