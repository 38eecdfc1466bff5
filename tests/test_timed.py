from __future__ import annotations

import os
import threading

from bshmd.timed import TimedRunner


def _own_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_workers_run_at_the_requested_lower_priority() -> None:
    base = _own_nice()
    lowered = TimedRunner("bshmd-test-nice", niceness=3)
    plain = TimedRunner("bshmd-test-plain")
    try:
        assert lowered.call(_own_nice, timeout=10) == min(19, base + 3)
        assert plain.call(_own_nice, timeout=10) == base
        assert _own_nice() == base  # the calling (stage) thread keeps its priority
    finally:
        for runner in (lowered, plain):
            assert runner.close(timeout=5) == []
