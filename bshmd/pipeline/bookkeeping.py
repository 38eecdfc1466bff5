"""Which jobs are in the pipeline, and how each one leaves it: with one typed ``Outcome``.

Every job ``admit`` lets in ends exactly once, through ``complete`` (processed, recovered,
quarantined) or ``release`` (given back unfinished): whichever path gets there first takes
it (``take``), any later one finds it gone. The ending is one ``Outcome`` object, made there
and handed, unchanged, to the job's claim (the ledger records it, and the ledger's own
listener, the ingestor, reads that object back from the claim) and to the pipeline's
``on_done`` listener (``bshmd process``'s summary, tests). The counters, the metrics and the
file's log line are written from it here, and the job's slot and pixels are freed last.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bshmd.errors import ClaimLost
from bshmd.ledger.outcome import PROCESSED, QUARANTINED, RECOVERED, RELEASED, Outcome
from bshmd.metrics import Metrics
from bshmd.pipeline.budget import HeapTrim, PixelBudget
from bshmd.pipeline.job import Job, Work
from bshmd.pipeline.retry import BACK_OFF_REASONS, RetryBackoff

log = logging.getLogger("bshmd.pipeline")

OnDone = Callable[[Job, Outcome], None]
STAGES = ("decode", "infer", "write")  # the stages that count the jobs they are working on


@dataclass
class PipelineHealth:
    queued: int  # submitted and not yet finished (processed, quarantined or released)
    in_flight: dict[str, int]  # per stage: intake, decode, batch, infer, write
    last_progress: float | None  # clock time of the last finished job or batch
    inference_started: float | None  # clock time the running predict() began; None when idle
    processed: int
    quarantined: int
    released: int = 0
    disk_full: bool = False  # writing results failed with ENOSPC/EDQUOT; writes back off
    output_unavailable: bool = False  # writing results failed for another reason of the output side
    quarantine_unavailable: bool = False  # inputs wait in place because their quarantine folder fails
    files_backing_off: int = 0  # inputs given back for an environmental reason, waiting to be retried
    stopping: bool = False


class Bookkeeping:
    """The open jobs, the stage counters and the one way a job ends; see the module docstring."""

    def __init__(self, capacity: int, *, metrics: Metrics, retry_backoff: RetryBackoff, pixels: PixelBudget,
                 on_done: OnDone | None, clock: Callable[[], float]) -> None:
        self.capacity = capacity
        self._metrics = metrics
        self._retry_backoff = retry_backoff
        self._pixels = pixels  # held from decode to the end of the job
        self._heap_trim = HeapTrim()
        self._on_done = on_done
        self._clock = clock
        self._lock = threading.Condition()
        self._open: dict[int, Job] = {}  # submitted, not finished
        self._finishing = 0  # finished, on_done still running: they still hold their slot
        self._stopping = False
        self._ended = {PROCESSED: 0, QUARANTINED: 0, RELEASED: 0}
        self._last_progress: float | None = None
        self._inference_started: float | None = None
        self.busy = dict.fromkeys(STAGES, 0)

    # --- intake ------------------------------------------------------------------------------

    def admit(self, job: Job, timeout: float | None) -> bool:
        """Open ``job``; blocks while ``capacity`` jobs are unfinished. False if stopping or timed out."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._lock:
            while not self._stopping and len(self._open) + self._finishing >= self.capacity:
                remaining = None if deadline is None else deadline - self._clock()
                if remaining is not None and remaining <= 0:
                    return False
                self._lock.wait(remaining)
            if self._stopping:
                return False
            self._open[id(job)] = job
            return True

    def stop_intake(self) -> bool:
        """No job is admitted from now on; True the first time."""
        with self._lock:
            first = not self._stopping
            self._stopping = True
            self._lock.notify_all()
            return first

    @property
    def stopping(self) -> bool:
        """True once intake has stopped: no batch starts any more (bshmd.pipeline.inference)."""
        return self._stopping

    def open_jobs(self) -> list[Job]:
        with self._lock:
            return list(self._open.values())

    def wait_idle(self, timeout: float | None) -> bool:
        """True once nothing is open or finishing; False if ``timeout`` passed first (None: no limit)."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._lock:
            while self._open or self._finishing:
                remaining = None if deadline is None else deadline - self._clock()
                if remaining is not None and remaining <= 0:
                    return False
                self._lock.wait(remaining)
            return True

    # --- progress ----------------------------------------------------------------------------

    @contextmanager
    def working(self, stage: str, count: int = 1) -> Iterator[float]:
        """Count ``count`` jobs as in ``stage`` while the block runs; yields the clock at its start."""
        with self._lock:
            started = self._clock()
            self.busy[stage] += count
            if stage == "infer":
                self._inference_started = started
        try:
            yield started
        finally:
            with self._lock:
                self.busy[stage] -= count
                if stage == "infer":
                    self._inference_started = None

    def progressed(self) -> None:
        with self._lock:
            self._last_progress = self._clock()

    def health(self, *, intake: int, batch: int, write_queue: int, disk_full: bool, output_unavailable: bool,
               ) -> PipelineHealth:
        backing_off = self._retry_backoff.count()
        quarantine_waiting = self._retry_backoff.count("quarantine_failed")
        with self._lock:
            return PipelineHealth(
                queued=len(self._open) + self._finishing,
                in_flight={"intake": intake, "decode": self.busy["decode"], "batch": batch,
                           "infer": self.busy["infer"], "write": write_queue + self.busy["write"]},
                last_progress=self._last_progress,
                inference_started=self._inference_started,
                processed=self._ended[PROCESSED],
                quarantined=self._ended[QUARANTINED],
                released=self._ended[RELEASED],
                disk_full=disk_full,
                output_unavailable=output_unavailable,
                quarantine_unavailable=quarantine_waiting > 0,
                files_backing_off=backing_off,
                stopping=self._stopping,
            )

    # --- the end of a job --------------------------------------------------------------------

    def take(self, job: Job) -> bool:
        """Claim the right to finish ``job``: True once, for whichever path gets there first."""
        with self._lock:
            if self._open.pop(id(job), None) is None:
                return False
            self._finishing += 1
            return True

    def complete(self, work: Work, outcome: Outcome) -> None:
        """``job`` is done (``outcome``: processed, recovered or quarantined with its reason)."""
        job = work.job
        if not self.take(job):
            return
        self._retry_backoff.succeeded(work.folder.input, job.key)
        if job.claim is not None:
            try:
                job.claim.complete(outcome)
            except ClaimLost as exc:
                # Taken over after the last check: the new holder finds these results (stamped
                # with the input's mtime) and records them; nothing is made twice.
                log.warning("cannot record %s as %s: %s", job.path, outcome, exc)
            except Exception:
                log.exception("cannot record %s as %s", job.path, outcome)
        folder = str(work.folder.input)
        t = job.timings
        times = " ".join(f"{name}={t[name]:.3f}s" for name in ("wait", "decode", "infer", "write") if name in t)
        extra = {"bshmd_file": str(job.path), "bshmd_outcome": outcome.kind,
                 **{f"bshmd_{name}": round(value, 6) for name, value in t.items()}}
        if outcome.kind in (PROCESSED, RECOVERED):
            latency = self._clock() - job.settled_at
            self._metrics.files_processed.labels(folder).inc()
            self._metrics.latency_seconds.observe(latency)
            self._metrics.last_success_time.set_to_current_time()
            first = next(iter(work.outputs.values()), None)
            extra.update(bshmd_output=str(first), bshmd_batch=work.batch_size, bshmd_latency=round(latency, 6))
            if outcome.kind == RECOVERED:
                log.info("recovered %s → %s: results written by %s before it stopped; claim completed",
                         job.path, first, job.taken_from, extra=extra)
            elif work.notes:
                # The photo is processed; what of its metadata could not be carried is said here.
                extra["bshmd_dropped"] = "; ".join(work.notes)
                log.warning("processed %s → %s %s; metadata dropped: %s", job.path, first, times,
                            extra["bshmd_dropped"], extra=extra)
            else:
                log.info("processed %s → %s %s", job.path, first, times, extra=extra)
        else:
            rejection = work.rejection
            assert rejection is not None and outcome.reason == rejection.reason_code
            self._metrics.files_quarantined.labels(folder, rejection.reason_code).inc()
            extra.update(bshmd_reason=rejection.reason_code, bshmd_output=str(job.quarantined_to))
            log.warning("quarantined %s reason=%s: %s %s", job.path, rejection.reason_code, rejection.message,
                        times, extra=extra)
        self._close(job, outcome)

    def release(self, job: Job, reason: str, *, problem: str | None = None, where: str | None = None,
                retry_in: float | None = None) -> None:
        """Give ``job`` back unfinished: its input stays and its claim is freed for a retry.

        For a reason in BACK_OFF_REASONS the file's retry delay goes into the release's
        ``Outcome.retry_after`` (the ledger keeps anyone from taking it again sooner), and
        ``problem`` is logged at ERROR for the first failure of a streak, at DEBUG after.
        ``retry_in`` gives that delay directly (an input not finished yet: ``not_finished``,
        bshmd.pipeline.grace); ``problem`` is then logged at INFO.
        """
        if not self.take(job):
            return
        level = logging.INFO
        retry_after: float | None = None
        fields = {"bshmd_file": str(job.path), "bshmd_outcome": f"released:{reason}"}
        if retry_in is not None:
            retry_after = retry_in
            fields["bshmd_retry_in"] = retry_in
            if problem is not None:
                log.info("%s; the input stays and is looked at again in %.3gs", problem, retry_in, extra=fields)
                level = logging.DEBUG
        elif reason in BACK_OFF_REASONS:
            where = where or str(job.folder.output)
            streak = self._retry_backoff.failed(job.folder.input, job.key, reason, where)
            retry_after = streak.delay
            level = logging.INFO if streak.first else logging.DEBUG
            fields["bshmd_retry_in"] = streak.delay
            if problem is not None:
                log.log(logging.ERROR if streak.first else logging.DEBUG,
                        "%s; the input stays and is retried in %gs%s", problem, streak.delay,
                        "" if streak.first else f" (failure {streak.failures} in a row)", extra=fields)
            waiting = self._retry_backoff.summary_due(where)
            if waiting:
                log.warning("%s is not writable (%s): %d file(s) wait in place and are retried",
                            where, reason, waiting, extra={"bshmd_outcome": f"waiting:{reason}"})
        elif problem is not None:
            log.error("%s; the input stays and will be retried", problem, extra=fields)
        outcome = Outcome(RELEASED, reason, retry_after)
        if job.claim is not None:
            try:
                job.claim.release(outcome)
            except Exception:
                log.exception("cannot release the claim on %s", job.path)
        self._metrics.files_released.labels(reason).inc()
        log.log(level, "released %s unprocessed (%s)", job.path, reason, extra=fields)
        self._close(job, outcome)

    def _close(self, job: Job, outcome: Outcome) -> None:
        """Count ``job`` as ended, tell ``on_done``, then free its slot and its pixels."""
        tally = outcome.kind if outcome.kind in (QUARANTINED, RELEASED) else PROCESSED  # recovered: processed
        with self._lock:
            self._ended[tally] += 1
            self._last_progress = self._clock()
        try:
            if self._on_done is not None:
                self._on_done(job, outcome)
        except Exception:
            log.exception("on_done callback failed for %s", job.path)
        finally:
            # The slot frees only now: a slow callback holds back submit like a slow writer.
            megapixels = self._pixels.release(id(job))
            with self._lock:
                idle = not self._open and self._finishing == 1  # this was the last job in flight
            self._heap_trim.freed(megapixels, idle=idle)
            with self._lock:
                self._finishing -= 1
                self._lock.notify_all()
