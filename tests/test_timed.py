from __future__ import annotations

import os
import threading

import pytest

from bshmd.timed import CallTimeout, TimedRunner, call_with_limit, in_thread


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


def test_call_with_limit_gives_up_on_a_hanging_call_and_its_thread_ends_when_the_call_does() -> None:
    release = threading.Event()
    with pytest.raises(CallTimeout) as caught:
        call_with_limit(lambda: release.wait(30), 0.1, name="bshmd-test-hang")
    assert isinstance(caught.value, TimeoutError)
    (left,) = [t for t in threading.enumerate() if t.name == "bshmd-test-hang"]
    assert left.daemon  # never holds up the process's exit
    release.set()
    left.join(10)
    assert not left.is_alive()
    assert call_with_limit(lambda: 42, 5, name="bshmd-test-quick") == 42


def test_in_thread_hands_back_the_result_or_the_exception() -> None:
    assert in_thread(lambda: "done", name="bshmd-test-result").result(10) == "done"

    def fail() -> None:
        raise KeyError("gone")

    with pytest.raises(KeyError, match="gone"):
        in_thread(fail, name="bshmd-test-error").result(10)


def test_a_stage_runner_replaces_a_worker_stuck_past_its_limit() -> None:
    release = threading.Event()
    runner = TimedRunner("bshmd-test-stage")
    try:
        with pytest.raises(CallTimeout):
            runner.call(lambda: release.wait(30), timeout=0.1)
        assert runner.call(lambda: threading.current_thread().name, timeout=10) == "bshmd-test-stage-w1"
    finally:
        release.set()
        assert runner.close(timeout=5) == []
