"""What every stage of the pipeline is handed: a small typed context, and the queue helpers.

A stage (decoding, inference, finishing) gets exactly this, not the ``Pipeline``: the engine,
the metrics, the books where jobs end, the abort flag, the clock and the configuration in force.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bshmd.config import Config, FolderConfig
from bshmd.errors import InputRejected
from bshmd.metrics import Metrics
from bshmd.pipeline.bookkeeping import Bookkeeping
from bshmd.pipeline.job import Work

STOP = object()  # sentinel that ends a stage loop once everything before it is done
POLL = 0.5  # how often a blocked stage thread looks at the abort flag


@dataclass(frozen=True)
class StageContext:
    engine: Any
    # The engine's steps around the network, run by decode and write workers (see
    # bshmd.pipeline.pipeline); False: predict() does it all on the inference thread.
    split: bool
    metrics: Metrics
    books: Bookkeeping
    aborted: threading.Event
    clock: Callable[[], float]  # monotonic seconds
    instance_id: str
    config: Callable[[], Config]  # the configuration in force now (update_config replaces it)

    def next_item(self, source: queue.Queue[Any]) -> Any:
        """The next item, ``STOP`` at the end, or ``STOP`` soon after an abort."""
        while not self.aborted.is_set():
            try:
                return source.get(timeout=POLL)
            except queue.Empty:
                continue
        return STOP

    def hand_on(self, target: queue.Queue[Any], work: Work) -> None:
        """Put ``work`` on the next stage's queue; after an abort, release it instead."""
        while not self.aborted.is_set():
            try:
                target.put(work, timeout=POLL)
                return
            except queue.Full:
                continue
        self.books.release(work.job, "shutdown")

    def timed_out(self, stage: str, doing: str, timeout: float) -> InputRejected:
        """The rejection for a file whose ``stage`` outlived its time limit (its worker is abandoned)."""
        self.metrics.stage_timeouts.labels(stage).inc()
        return InputRejected(f"{stage}_timeout", f"{doing} took longer than {timeout:g}s",
                             {"timeout_seconds": timeout})


def internal_error(exc: BaseException) -> InputRejected:
    return InputRejected("internal_error", f"{type(exc).__name__}: {exc}", {"exception": type(exc).__name__})


def settle_seconds(config: Config, folder: FolderConfig) -> float:
    """The shortest settle window of ``folder`` as configured (its mount may add to it)."""
    return config.settle_seconds + (folder.attribute_cache_seconds or 0.0)
