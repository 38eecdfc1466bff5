"""Run a call with a time limit on a worker thread that can be abandoned.

Python cannot kill a thread, and one input on a dying NAS can block ``read()`` for ever.
A stage thread therefore hands each call to its own worker thread and waits on a future
with a timeout. When the time is up the stage thread gives up on the call, abandons that
worker (it exits by itself if the call ever returns) and starts a fresh one, so the stage
never loses capacity to a stuck file.

The same holds for one-off calls that must not hang the daemon: fetching the model from a
hub on a dead network (bshmd.engine.source), loading it while the main loop keeps answering
signals (bshmd.service.daemon). ``in_thread`` and ``call_with_limit`` are those; a stage
thread that makes many calls keeps a ``TimedRunner``.

``concurrent.futures.ThreadPoolExecutor`` is not used because it joins its workers at
interpreter exit: one stuck read would hang the process's shutdown.

This module sits at the top of the package, beside ``errors``, and imports nothing of bshmd:
the engine, the pipeline and the service all use it, so it must be below all three. It is
about threads, not files, so it does not belong in ``bshmd.fs``.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

R = TypeVar("R")

_EXIT = object()


class CallTimeout(TimeoutError):
    """The call did not finish within its time limit; its worker was abandoned."""


def lower_own_priority(niceness: int) -> None:
    """Raise the calling thread's nice value by ``niceness`` (Linux keeps one per thread).

    Best effort: where the platform has no per-thread priority the thread runs as it is.
    """
    if niceness <= 0:
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + niceness))
    except (AttributeError, OSError):
        pass


class _Worker:
    def __init__(self, name: str, niceness: int = 0) -> None:
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._niceness = niceness
        # Daemon: an abandoned worker stuck in a read must not keep the process alive.
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        self._inbox.put((fn, future))
        return future

    def retire(self) -> None:
        """Exit after the call in progress (if any) returns."""
        self._inbox.put(_EXIT)

    def _run(self) -> None:
        lower_own_priority(self._niceness)
        while True:
            task = self._inbox.get()
            if task is _EXIT:
                return
            fn, future = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the waiting stage thread
                future.set_exception(exc)


class TimedRunner:
    """Owned by one stage thread: ``call(fn, timeout)`` runs ``fn`` on a replaceable worker."""

    def __init__(self, name: str, *, niceness: int = 0) -> None:
        self._name = name
        self._niceness = niceness
        self._generation = itertools.count()
        self._worker = self._new_worker()
        self.abandoned: list[threading.Thread] = []

    def _new_worker(self) -> _Worker:
        return _Worker(f"{self._name}-w{next(self._generation)}", self._niceness)

    def call(self, fn: Callable[[], R], timeout: float) -> R:
        future = self._worker.submit(fn)
        try:
            return future.result(timeout=timeout)
        except FutureTimeout:
            future.cancel()
            self._worker.retire()
            self.abandoned.append(self._worker.thread)
            self._worker = self._new_worker()
            raise CallTimeout(f"took longer than {timeout:g}s") from None

    def close(self, timeout: float = 0.0) -> list[threading.Thread]:
        """Retire the worker; return the threads still running (stuck calls) after ``timeout``."""
        self._worker.retire()
        threads = [self._worker.thread, *self.abandoned]
        for thread in threads:
            thread.join(timeout)
        return [thread for thread in threads if thread.is_alive()]


def in_thread(fn: Callable[[], R], *, name: str) -> Future[R]:
    """Start ``fn`` on a daemon thread of its own; its result (or exception) comes in the future.

    Nobody joins the thread: a caller that stops waiting leaves it behind, and it ends when
    ``fn`` returns (or with the process).
    """
    worker = _Worker(name)
    future = worker.submit(fn)
    worker.retire()  # one call, then the thread ends
    return future


def call_with_limit(fn: Callable[[], R], limit: float, *, name: str) -> R:
    """``fn()`` on a thread of its own; CallTimeout (a TimeoutError) once it takes over ``limit`` s."""
    future = in_thread(fn, name=name)
    try:
        return future.result(timeout=limit)
    except FutureTimeout:
        future.cancel()
        raise CallTimeout(f"took longer than {limit:g}s") from None
