"""The finish step, on the write workers: gate the matte, write the results, then on_success;
or quarantine the input; or give it back when it is not finished or the output side fails.

Every file-system change to an input happens here. Writing results and quarantining are kept
to their own functions (``Finishing.write_results``, ``after_success``, ``move_to_quarantine``)
so that every way a result or a quarantine entry comes to exist goes through the same code.

Disk full (ENOSPC, EDQUOT) or an output folder that fails for a reason of its own is not the
input's fault: the input stays, its claim is released for a later retry, and writes pause
(``OutputPause``: 1 s doubling to 60 s) until one succeeds.
"""

from __future__ import annotations

import errno
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bshmd.decode.sidecar import sidecar_of
from bshmd.errors import ClaimLost, InputRejected
from bshmd.fs.move import SourceChanged, remove_unchanged
from bshmd.ledger.outcome import NOT_FINISHED, PROCESSED, QUARANTINED, RECOVERED, Outcome
from bshmd.pipeline.job import Work
from bshmd.pipeline.sidecars import move_with_sidecar
from bshmd.pipeline.stage import STOP, StageContext, internal_error, settle_seconds
from bshmd.timed import CallTimeout, TimedRunner

log = logging.getLogger("bshmd.pipeline")

_BACKOFF_FIRST = 1.0
_BACKOFF_MAX = 60.0

# Errors writing results that say the output side is unwell, not the input: the input stays,
# its claim is released and writes back off. Anything else quarantines the input.
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
_OUTPUT_UNAVAILABLE = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTCONN,
                       errno.ESTALE, errno.EIO, errno.EHOSTDOWN, errno.ETIMEDOUT}


class _OutputUnwritable(Exception):
    """write_outputs failed for a reason of the output folder's own (see _DISK_FULL)."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(str(cause))
        self.cause = cause


class OutputPause:
    """How long writes wait after the output side failed; cleared by the next successful write."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._until = 0.0
        self._backoff = 0.0
        self._disk_full = False  # the last failed write found no space

    def failed(self, disk_full: bool) -> float:
        """Double the pause (1 s to 60 s); returns it."""
        with self._lock:
            self._backoff = min(max(self._backoff * 2, _BACKOFF_FIRST), _BACKOFF_MAX)
            self._until = self._clock() + self._backoff
            self._disk_full = self._disk_full or disk_full
            return self._backoff

    def succeeded(self) -> None:
        with self._lock:
            self._until = self._backoff = 0.0
            self._disk_full = False

    def wait_out(self, aborted: threading.Event) -> None:
        remaining = self._until - self._clock()
        if remaining > 0:
            aborted.wait(remaining)

    def state(self) -> tuple[bool, bool]:
        """(disk full, output unavailable for another reason)."""
        with self._lock:
            return self._disk_full, self._until > 0 and not self._disk_full


class Finishing:
    def __init__(self, ctx: StageContext, pause: OutputPause) -> None:
        self._ctx = ctx
        self._pause = pause

    def loop(self, runner: TimedRunner, finish_queue: queue.Queue[Any]) -> None:
        ctx = self._ctx
        while (work := ctx.next_item(finish_queue)) is not STOP:
            with ctx.books.working("write"):
                try:
                    self._pause.wait_out(ctx.aborted)
                    if ctx.aborted.is_set():
                        ctx.books.release(work.job, "shutdown")
                    else:
                        self.finish(work, runner)
                except Exception:  # a bug for one file must not end the stage
                    log.exception("unexpected error while finishing %s", work.job.path)
                    ctx.metrics.internal_errors.labels("write").inc()
                    ctx.books.release(work.job, "internal_error")

    def finish(self, work: Work, runner: TimedRunner) -> None:
        ctx, job = self._ctx, work.job
        timeout = work.config.pipeline.write_timeout_seconds
        started = ctx.clock()
        if work.recovered:
            try:
                runner.call(lambda: after_success(work), timeout)
            except Exception as exc:  # the results stand: the input is processed all the same
                log.error("finishing recovered results of %s failed: %s", job.path, exc)
            ctx.books.complete(work, Outcome(RECOVERED))
            return
        if work.unfinished is not None:
            ctx.books.release(job, NOT_FINISHED, retry_in=work.unfinished.retry_after,
                              problem=f"{job.path} is not finished: {work.unfinished.message}")
            return
        if work.rejection is None:
            try:
                runner.call(lambda: self.write_results(work), timeout)
            except CallTimeout:
                work.cancelled = True
                work.rejection = ctx.timed_out("write", "writing results", timeout)
            except InputRejected as exc:
                work.rejection = exc
            except _OutputUnwritable as exc:
                self._output_unwritable(work, exc.cause)
                return
            except ClaimLost:
                # Another instance took the input over while we worked on it: it writes the
                # results, so we write nothing and quarantine nothing.
                ctx.books.release(job, "claim_lost")
                return
            except Exception as exc:
                log.exception("unexpected error while writing results of %s", job.path)
                ctx.metrics.internal_errors.labels("write").inc()
                work.rejection = internal_error(exc)
        job.timings["write"] = ctx.clock() - started
        if work.rejection is not None:
            self.quarantine(work, runner)
            return
        ctx.metrics.write_seconds.observe(job.timings["write"])
        self._pause.succeeded()
        ctx.metrics.disk_full.set(0)
        ctx.books.complete(work, Outcome(PROCESSED))

    def write_results(self, work: Work) -> None:
        """Runs on a timed worker: gate the matte, write the results, then on_success."""
        from bshmd.fs.atomic import UnsafePathError
        from bshmd.outputs.render import output_paths, render_outputs, write_outputs
        from bshmd.pipeline.gate import check_matte

        config, folder, job = work.config, work.folder, work.job
        self._full_size_matte(work)
        if not work.accepted:
            check_matte(work.alpha, config.gate_for(folder))
        outputs_cfg = config.outputs_for(folder)
        paths = output_paths(folder.output, job.relpath, outputs_cfg)
        blobs = render_outputs(work.rgb, work.alpha, outputs_cfg, photo=work.photo, notes=work.notes)
        if work.cancelled:
            return
        try:
            # Fencing: write only while the claim is still ours (raises ClaimLost).
            if job.claim is not None:
                job.claim.verify()
            write_outputs(paths, blobs, output_root=folder.output, file_mode=outputs_cfg.file_mode,
                          group=outputs_cfg.group, mtime_ns=job.key.mtime_ns,
                          before_rename=job.claim.fence if job.claim is not None else None)
        except UnsafePathError as exc:
            # A symlinked folder in the output tree: nothing is written through it. Not a bug
            # of ours, so no traceback; the input waits in quarantine until someone looks.
            raise InputRejected("unsafe_output_path", str(exc), {"output": str(paths[next(iter(paths))])}) from exc
        except OSError as exc:
            if exc.errno in _DISK_FULL or exc.errno in _OUTPUT_UNAVAILABLE:
                raise _OutputUnwritable(exc) from exc
            raise
        work.outputs = dict(paths)
        if work.cancelled:
            return
        after_success(work)

    def _full_size_matte(self, work: Work) -> Any:
        """``work.alpha`` at the photo's size: engine.finish once, on the calling (write) worker."""
        alpha, prepared = work.alpha, work.prepared
        if alpha is not None and prepared is not None:
            alpha = self._ctx.engine.finish(alpha, prepared)
            work.alpha, work.prepared = alpha, None
        return alpha

    def _matte_to_keep(self, work: Work) -> Any:
        """The full-size matte for a quarantined input, or None if it cannot be made."""
        try:
            return self._full_size_matte(work)
        except Exception:
            log.exception("cannot bring the matte of %s to its size; it is quarantined without it", work.job.path)
            return None

    def quarantine(self, work: Work, runner: TimedRunner) -> None:
        """Move the input of a refused ``work`` to quarantine; when that fails, give it back."""
        ctx, job, rejection = self._ctx, work.job, work.rejection
        assert rejection is not None
        timeout = work.config.pipeline.write_timeout_seconds
        try:
            where = runner.call(lambda: move_to_quarantine(work, ctx.instance_id, self._matte_to_keep(work)), timeout)
        except SourceChanged as exc:
            ctx.books.release(job, NOT_FINISHED, retry_in=settle_seconds(work.config, work.folder),
                              problem=f"{job.path} was not quarantined ({rejection.reason_code}): {exc}")
            return
        except OSError as exc:  # a CallTimeout (a TimeoutError) as well: no errno, so not disk full
            if exc.errno in _DISK_FULL:
                self._output_unwritable(work, exc, where=work.folder.quarantine)
                return
            ctx.books.release(job, "quarantine_failed", where=str(work.folder.quarantine),
                              problem=f"cannot quarantine {job.path} ({rejection.reason_code}): {exc}")
            return
        except Exception as exc:
            # UnsafePathError (a symlinked folder in the quarantine tree) lands here: not the
            # input's fault either, so it waits in place like any other quarantine failure.
            ctx.books.release(job, "quarantine_failed", where=str(work.folder.quarantine),
                              problem=f"cannot quarantine {job.path} ({rejection.reason_code}): {exc}")
            return
        job.quarantined_to = where
        ctx.books.complete(work, Outcome(QUARANTINED, rejection.reason_code))

    def _output_unwritable(self, work: Work, exc: OSError, where: Path | None = None) -> None:
        disk_full = exc.errno in _DISK_FULL
        backoff = self._pause.failed(disk_full)
        condition = "disk_full" if disk_full else "output_unavailable"
        if disk_full:
            self._ctx.metrics.disk_full.set(1)
        self._ctx.books.release(work.job, condition, where=str(where or work.folder.output),
                                problem=f"cannot write results of {work.job.path} ({exc}); writes pause {backoff:.0f}s")


def after_success(work: Work) -> None:
    """outputs.on_success for an input whose results are written."""
    from bshmd.fs.atomic import safe_move

    config, folder, job = work.config, work.folder, work.job
    action = config.on_success_for(folder)
    expect = (job.key.size, job.key.mtime_ns)
    try:
        if action == "move":
            # Created on demand, but only beside an existing parent: a missing share must
            # not turn into a folder on the local disk.
            folder.done_dir.mkdir(exist_ok=True)
            xmp = sidecar_of(job.path)
            job.moved_to = safe_move(job.path, folder.done_dir / job.relpath, root=folder.done_dir, expect=expect)
            move_with_sidecar(job.path, job.moved_to, xmp, root=folder.done_dir)
        elif action == "delete":
            remove_unchanged(job.path, expect)
    except FileNotFoundError:
        pass  # gone already: nothing to move or delete
    except SourceChanged as exc:
        # A new version is being written under the same name: it is not this input any
        # more, so it stays, and is processed as a file of its own once it settles.
        log.warning("results of %s are written; on_success %s left it in place: %s", job.path, action, exc,
                    extra={"bshmd_file": str(job.path), "bshmd_outcome": "on_success_skipped"})
    except OSError as exc:
        # The results are written: the file is processed. It stays in the input folder and
        # its completed claim keeps it from being processed again.
        log.error("results of %s are written, but on_success %s failed: %s", job.path, action, exc,
                  extra={"bshmd_file": str(job.path), "bshmd_outcome": "on_success_failed"})


def move_to_quarantine(work: Work, instance_id: str, matte: Any) -> Path:
    """Move the input of a refused ``work`` (with ``matte``, if any) into its folder's quarantine;
    returns where it went. Runs on a timed worker."""
    from bshmd.quarantine.store import quarantine_input

    job, rejection = work.job, work.rejection
    assert rejection is not None
    return quarantine_input(work.folder, job.path, job.relpath, rejection, instance_id=instance_id,
                            matte=matte, expect=(job.key.size, job.key.mtime_ns))
