"""The overlapped pipeline from a settled input file to written results.

Stages, each its own threads, joined by bounded queues so a slow stage holds back the ones
before it instead of filling memory::

    submit ─▶ intake queue ─▶ bshmd-decode-i (N) ─▶ Batcher ─▶ bshmd-infer (1) ─▶ write queue ─▶ bshmd-write-i (N)
                                     │ rejected                                      ▲
                                     └───────────────────────────────────────────────┘

- Memory is bounded by ``capacity`` (``pipeline.queue_size`` + ``batch.max_size``): ``submit``
  blocks while that many jobs are submitted but unfinished, wherever they are. How many files
  wait in the watched folder does not matter. Decoded pixels are bounded too: a decode worker
  waits for its image's share of ``pipeline.max_inflight_megapixels`` (bshmd.pipeline.budget).
- Decode and write calls run on a ``TimedRunner``: a file that takes longer than
  ``decode_timeout_seconds`` / ``write_timeout_seconds`` is quarantined as
  ``decode_timeout`` / ``write_timeout`` and its stuck worker is replaced.
- Decoding yields the photo with its profile and metadata (a ``Decoded``) plus its sRGB copy
  for the network; the write stage renders results from the photo's own pixels and metadata
  (bshmd.outputs.colour, bshmd.outputs.metadata). Metadata blocks that had to be dropped are
  named in the file's "processed" line, logged at WARNING.
- The inference thread runs the network and nothing else, so that the device (on a GPU host)
  never waits for resizing: with an engine that offers ``prepare`` / ``infer`` / ``finish``
  (MattingEngine does), a decode worker downscales the photo to the network's size
  (``prepare``), inference batches those copies by their size, and a write worker brings the
  matte back to the photo's size (``finish``, the guided upsample) before the gate and the
  results. At 24 MP that is 250 ms of CPU per photo off the inference thread. An engine with
  ``predict`` alone runs whole in the inference thread.
- Every rejection, from any stage, is quarantined by a write thread (all file-system changes
  to inputs happen there). An unexpected exception for one file quarantines that file as
  ``internal_error``; no stage loop ever dies from one file.
- Exactly once across crashes: results are stamped with their input's mtime before their
  atomic rename. A job whose claim was taken over from an earlier holder (the daemon was
  killed between writing the results and completing the claim) whose stamped results all
  exist is not decoded or inferred again: its claim is completed ("recovered").
- Disk full (ENOSPC) while writing results is not the input's fault: the input stays, its
  claim is released so it is retried later, ``health().disk_full`` and the ``bshmd_disk_full``
  gauge are set, and write threads back off (1 s doubling to 60 s) until a write succeeds.
- An input given back for a reason of its surroundings (quarantine or output folder not
  writable, disk full) waits before it is offered again, per file: ``retry_base_seconds``
  doubling per consecutive failure up to ``retry_max_seconds`` (``pipeline.*`` in the
  configuration; see bshmd.pipeline.retry).
  The failure is logged once per file at ERROR, repeats at DEBUG, plus a WARNING per folder
  at most once a minute while files wait on it; ``health().files_backing_off`` counts them.
- An input still being written (it reads as cut short while young, or changed since it was
  settled; see bshmd.pipeline.grace) is given back "not finished" with the time to look
  again, never quarantined. Every move or delete of an input first checks that it is still
  the file that was settled (bshmd.fs.move).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bshmd.config import Config, FolderConfig
from bshmd.decode.sidecar import sidecar_of
from bshmd.errors import ClaimLost, InputRejected
from bshmd.fs.move import SourceChanged, remove_unchanged
from bshmd.fs.sidecars import move_with_sidecar
from bshmd.ledger.outcome import NOT_FINISHED, PROCESSED, QUARANTINED, RECOVERED, RELEASED, Outcome
from bshmd.metrics import Metrics
from bshmd.pipeline.batcher import Batcher
from bshmd.pipeline.budget import HeapTrim, PixelBudget, bound_heap_retention, image_megapixels
from bshmd.pipeline.grace import NotFinished, judge
from bshmd.pipeline.retry import BACK_OFF_REASONS, RetryBackoff
from bshmd.pipeline.timed import StageTimeout, TimedRunner
from bshmd.records import Job

log = logging.getLogger("bshmd.pipeline")

_STOP = object()  # sentinel that ends a stage loop once everything before it is done
_POLL = 0.5  # how often a blocked stage thread looks at the abort flag
_BACKOFF_FIRST = 1.0
_BACKOFF_MAX = 60.0

Decoder = Callable[..., Any]

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


@dataclass
class PipelineHealth:
    queued: int  # submitted and not yet finished (processed, quarantined or released)
    in_flight: dict[str, int]  # per stage: intake, decode, batch, infer, write
    last_progress: float | None  # monotonic time of the last finished job or batch
    inference_started: float | None  # monotonic time the running predict() began; None when idle
    processed: int
    quarantined: int
    released: int = 0
    disk_full: bool = False  # writing results failed with ENOSPC/EDQUOT; writes back off
    output_unavailable: bool = False  # writing results failed for another reason of the output side
    quarantine_unavailable: bool = False  # inputs wait in place because their quarantine folder fails
    files_backing_off: int = 0  # inputs given back for an environmental reason, waiting to be retried
    stopping: bool = False


@dataclass
class _Work:
    """One job and what the stages have made of it so far."""

    job: Job
    config: Config  # the configuration in force when its decoding started
    folder: FolderConfig
    accepted: bool = False  # requeued with --accept: no quality gate
    rgb: Any = None  # what the network sees: the photo in sRGB
    prepared: Any = None  # engine.prepare(rgb), until ``alpha`` is brought to the photo's size
    photo: Any = None  # the Decoded input: its own pixels, 16-bit pixels and metadata
    notes: list[str] = field(default_factory=list)  # metadata blocks dropped, for the log line
    alpha: Any = None
    rejection: InputRejected | None = None
    batch_size: int = 0
    outputs: dict[str, Path] = field(default_factory=dict)
    cancelled: bool = False  # the job was finished elsewhere (timeout, abort): do not touch it
    recovered: bool = False  # an earlier holder wrote the results before it died: only finish up


def _settle_seconds(config: Config, folder: FolderConfig) -> float:
    """The shortest settle window of ``folder`` as configured (its mount may add to it)."""
    return config.settle_seconds + (folder.attribute_cache_seconds or 0.0)


def internal_error(exc: BaseException) -> InputRejected:
    return InputRejected("internal_error", f"{type(exc).__name__}: {exc}", {"exception": type(exc).__name__})


class Pipeline:
    """Decode → batch → infer → write, overlapped; see the module docstring."""

    def __init__(self, config: Config, engine: Any, *, instance_id: str, metrics: Metrics | None = None,
                 on_done: Callable[[Job, str], None] | None = None, decoder: Decoder | None = None,
                 retry_base_seconds: float | None = None, retry_max_seconds: float | None = None) -> None:
        # ``decoder`` replaces decode_photo (called with max_pixels and max_file_bytes; it may
        # return a bare RGB array); tests use it to make decoding slow.
        # ``retry_*_seconds`` override pipeline.retry_base_seconds / retry_max_seconds.

        self._config = config
        self._engine = engine
        # The engine's steps around the network, run by decode and write workers (see the
        # module docstring); False: predict() does it all on the inference thread.
        self._split = all(callable(getattr(engine, step, None)) for step in ("prepare", "infer", "finish"))
        self._instance_id = instance_id
        self.metrics = metrics or Metrics()
        self._on_done = on_done
        self._decoder = decoder
        self._retry_override = (retry_base_seconds, retry_max_seconds)
        self.retry_backoff = RetryBackoff(*self._retry_limits(config))
        self.capacity = config.pipeline.queue_size + config.batch.max_size

        self._lock = threading.Condition()
        self._open: dict[int, Job] = {}  # submitted, not finished
        self._finishing = 0  # finished, on_done still running: they still hold their slot
        self._stopping = False
        self._aborted = threading.Event()
        self._started = False
        self._processed = 0
        self._quarantined = 0
        self._released = 0
        self._last_progress: float | None = None
        self._inference_started: float | None = None
        self._decoding = 0
        self._inferring = 0
        self._writing = 0
        self._disk_full_until = 0.0
        self._disk_full_backoff = 0.0
        self._disk_full = False  # the last failed write found no space; cleared by a successful one

        self._decode_workers = config.pipeline.decode_worker_count
        self._write_workers = config.pipeline.write_worker_count
        self._pixels = PixelBudget(config.pipeline.max_inflight_megapixels)  # held from decode to finish
        self._heap_trim = HeapTrim()
        self._intake: queue.Queue[Any] = queue.Queue(self.capacity + self._decode_workers)
        self._write_q: queue.Queue[Any] = queue.Queue(self.capacity + self._write_workers)
        self._batcher: Batcher[_Work] = Batcher(config.batch.max_size, config.batch.max_wait_ms / 1000)
        self._decode_threads: list[threading.Thread] = []
        self._write_threads: list[threading.Thread] = []
        self._infer_thread: threading.Thread | None = None
        self._runners: list[TimedRunner] = []

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            raise RuntimeError("the pipeline was already started")
        self._started = True
        bound_heap_retention()
        depth = self.metrics.queue_depth
        depth.labels("intake").set_function(self._intake.qsize)
        depth.labels("decode").set_function(lambda: self._decoding)
        depth.labels("batch").set_function(self._batcher.pending)
        depth.labels("infer").set_function(lambda: self._inferring)
        depth.labels("write").set_function(lambda: self._write_q.qsize() + self._writing)
        for reason in BACK_OFF_REASONS:
            self.metrics.files_backing_off.labels(reason).set_function(
                lambda reason=reason: self.retry_backoff.count(reason))
        # Decoding and encoding yield the CPU to the thread that feeds the model: when they
        # compete for cores, inference (the costly, single-threaded stage) must not wait.
        niceness = self._config.pipeline.worker_niceness
        for i in range(self._decode_workers):
            runner = TimedRunner(f"bshmd-decode-{i}", niceness=niceness)
            self._runners.append(runner)
            self._decode_threads.append(self._spawn(f"bshmd-decode-{i}", self._decode_loop, runner))
        self._infer_thread = self._spawn("bshmd-infer", self._infer_loop)
        for i in range(self._write_workers):
            runner = TimedRunner(f"bshmd-write-{i}", niceness=niceness)
            self._runners.append(runner)
            self._write_threads.append(self._spawn(f"bshmd-write-{i}", self._write_loop, runner))

    def _timed_out(self, stage: str, doing: str, timeout: float) -> InputRejected:
        """The rejection for a file whose ``stage`` outlived its time limit (its worker is abandoned)."""
        self.metrics.stage_timeouts.labels(stage).inc()
        return InputRejected(f"{stage}_timeout", f"{doing} took longer than {timeout:g}s",
                             {"timeout_seconds": timeout})

    @staticmethod
    def _spawn(name: str, target: Callable[..., None], *args: Any) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        return thread

    def submit(self, job: Job, timeout: float | None = None) -> bool:
        """Queue ``job``; blocks while ``capacity`` jobs are unfinished. False if stopping or timed out."""
        if not self._started:
            raise RuntimeError("start() the pipeline before submitting jobs")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not self._stopping and len(self._open) + self._finishing >= self.capacity:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._lock.wait(remaining)
            if self._stopping:
                return False
            self._open[id(job)] = job
        self.metrics.files_seen.inc()
        self._intake.put(job)  # never blocks: sized for capacity jobs plus the stop sentinels
        return True

    def stop(self, timeout: float) -> bool:
        """Stop intake, finish what is in flight within ``timeout``, release the rest.

        Jobs still waiting in the intake queue have not started: their claims are released at
        once. Returns True when every job that had started was finished.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            first = not self._stopping
            self._stopping = True
            self._lock.notify_all()
        if not self._started:
            return True
        if first:
            while True:
                try:
                    item = self._intake.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP:
                    self._release(item, "shutdown")
            for _ in self._decode_threads:
                self._intake.put(_STOP)
        finished = self._join(self._decode_threads, deadline)
        self._batcher.close()
        finished = finished and self._join([self._infer_thread] if self._infer_thread else [], deadline)
        if finished and first:
            for _ in self._write_threads:
                self._write_q.put(_STOP)
        finished = finished and self._join(self._write_threads, deadline)
        if not finished:
            self.abort()
            return False
        self._close_runners(0.5)
        return True

    def abort(self) -> None:
        """Stop now: release every unfinished job. Results are written atomically, so a write
        cut short leaves nothing behind; a call stuck in the engine keeps its daemon thread."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self._aborted.set()
        self._batcher.close()
        self._pixels.close()
        with self._lock:
            jobs = list(self._open.values())
        for job in jobs:
            self._release(job, "shutdown")
        for thread in [*self._decode_threads, *self._write_threads, self._infer_thread]:
            if thread is not None:
                thread.join(timeout=_POLL * 2)
        self._close_runners(0.0)

    def _close_runners(self, timeout: float) -> None:
        for runner in self._runners:
            stuck = runner.close(timeout)
            for thread in stuck:
                log.warning("a worker is still blocked in a call and is left behind: %s", thread.name)

    @staticmethod
    def _join(threads: list[threading.Thread], deadline: float) -> bool:
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        return not any(thread.is_alive() for thread in threads)

    def update_config(self, config: Config) -> None:
        """New folders, outputs, gates, batch limits and retry delays apply from now on.

        Worker counts, ``queue_size`` and timeouts keep their values until a restart.
        """
        with self._lock:
            self._config = config
        self._batcher.set_limits(config.batch.max_size, config.batch.max_wait_ms / 1000)
        self._pixels.set_limit(config.pipeline.max_inflight_megapixels)
        self.retry_backoff.set_limits(*self._retry_limits(config))

    def _retry_limits(self, config: Config) -> tuple[float, float]:
        base, most = self._retry_override
        return (base if base is not None else config.pipeline.retry_base_seconds,
                most if most is not None else config.pipeline.retry_max_seconds)

    def health(self) -> PipelineHealth:
        backing_off = self.retry_backoff.count()
        quarantine_waiting = self.retry_backoff.count("quarantine_failed")
        with self._lock:
            return PipelineHealth(
                queued=len(self._open) + self._finishing,
                in_flight={
                    "intake": self._intake.qsize(),
                    "decode": self._decoding,
                    "batch": self._batcher.pending(),
                    "infer": self._inferring,
                    "write": self._write_q.qsize() + self._writing,
                },
                last_progress=self._last_progress,
                inference_started=self._inference_started,
                processed=self._processed,
                quarantined=self._quarantined,
                released=self._released,
                disk_full=self._disk_full,
                output_unavailable=self._disk_full_until > 0 and not self._disk_full,
                quarantine_unavailable=quarantine_waiting > 0,
                files_backing_off=backing_off,
                stopping=self._stopping,
            )

    def wait_idle(self, timeout: float | None) -> bool:
        """True once nothing is queued or in flight; False if ``timeout`` passed first (None: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._open or self._finishing:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._lock.wait(remaining)
            return True

    # --- stage loops -------------------------------------------------------------------------

    def _next(self, source: queue.Queue[Any]) -> Any:
        """The next item, ``_STOP`` at the end, or ``_STOP`` soon after an abort."""
        while not self._aborted.is_set():
            try:
                return source.get(timeout=_POLL)
            except queue.Empty:
                continue
        return _STOP

    def _put(self, target: queue.Queue[Any], work: _Work) -> None:
        while not self._aborted.is_set():
            try:
                target.put(work, timeout=_POLL)
                return
            except queue.Full:
                continue
        self._release(work.job, "shutdown")

    def _decode_loop(self, runner: TimedRunner) -> None:
        while (job := self._next(self._intake)) is not _STOP:
            if not self._pixels.acquire(id(job), self._megapixels(job, runner)):  # closed by abort
                self._release(job, "shutdown")
                continue
            with self._lock:
                self._decoding += 1
            try:
                work = self._decode(job, runner)
            except Exception as exc:  # a bug for one file must not end the stage
                log.exception("unexpected error while decoding %s", job.path)
                self.metrics.internal_errors.labels("decode").inc()
                work = _Work(job, self._config, job.folder, rejection=internal_error(exc))
            finally:
                with self._lock:
                    self._decoding -= 1
            if work.rejection is not None or work.recovered:
                self._put(self._write_q, work)
            else:
                try:
                    shape = (work.prepared.net if work.prepared is not None else work.rgb).shape
                    self._batcher.add(work, tuple(shape[:2]))
                except RuntimeError:  # closed by abort
                    self._release(job, "shutdown")

    def _megapixels(self, job: Job, runner: TimedRunner) -> float:
        """The input's size from its header, read on the timed worker: a hung share must not
        hang this thread (0 then; decoding times out and quarantines the file)."""
        try:
            return runner.call(lambda: image_megapixels(job.path), self._config.pipeline.decode_timeout_seconds)
        except StageTimeout:
            return 0.0

    def _decode(self, job: Job, runner: TimedRunner) -> _Work:
        from bshmd.pipeline.gate import check_input
        from bshmd.quarantine.marker import consume_accept

        with self._lock:
            config = self._config
        folder = next((f for f in config.folders if f.input == job.folder.input), job.folder)
        work = _Work(job, config, folder)
        started = time.monotonic()
        job.timings["wait"] = max(started - job.settled_at, 0.0)
        if job.taken_from and self._results_exist(work):
            work.recovered = True
            return work
        limits = config.limits
        timeout = config.pipeline.decode_timeout_seconds
        try:
            work.accepted = job.accept_once or consume_accept(folder, job.key)
            keep_16bit = config.outputs_for(folder).bit_depth == "keep"
            work.photo, work.rgb, work.prepared = runner.call(
                lambda: self._decode_for_network(job.path, limits.max_pixels, limits.max_file_bytes, keep_16bit),
                timeout,
            )
            work.notes.extend(work.photo.meta.dropped)
            if not work.accepted:
                check_input(work.rgb, config.gate_for(folder))
        except StageTimeout:
            work.rejection = self._timed_out("decode", "decoding", timeout)
        except InputRejected as exc:
            work.rejection = exc
        except Exception as exc:
            log.exception("unexpected error while decoding %s", job.path)
            self.metrics.internal_errors.labels("decode").inc()
            work.rejection = internal_error(exc)
        # Truncated grace (bshmd.pipeline.grace): a file still being written is not finished.
        unfinished = judge(job.path, job.key, work.rejection, grace_seconds=config.truncated_grace_seconds,
                           settle_seconds=_settle_seconds(config, folder))
        if unfinished is not None:
            work.rejection = unfinished
        job.timings["decode"] = time.monotonic() - started
        if work.rejection is None:
            self.metrics.decode_seconds.observe(job.timings["decode"])
        else:
            work.rgb = work.photo = work.prepared = None
        return work

    def _decode_for_network(self, path: Path, max_pixels: int, max_file_bytes: int,
                            keep_16bit: bool) -> tuple[Any, Any, Any]:
        """(the Decoded photo, its sRGB pixels, engine.prepare of them or None); on a timed worker."""
        photo, rgb = self._decode_photo(path, max_pixels, max_file_bytes, keep_16bit)
        if not self._split:
            return photo, rgb, None
        prepared = self._engine.prepare(rgb)
        if isinstance(prepared, InputRejected):
            raise prepared
        return photo, rgb, prepared

    def _decode_photo(self, path: Path, max_pixels: int, max_file_bytes: int, keep_16bit: bool) -> tuple[Any, Any]:
        """(the Decoded photo, its pixels in sRGB for the network); runs on a timed worker."""
        from bshmd.decode.image import decode_photo
        from bshmd.decode.meta import meta_from_blocks
        from bshmd.decode.record import Decoded
        from bshmd.decode.sidecar import read_sidecar_xmp
        from bshmd.outputs.colour import to_srgb

        if self._decoder is None:
            photo = decode_photo(path, max_pixels=max_pixels, max_file_bytes=max_file_bytes, keep_16bit=keep_16bit)
        else:
            photo = self._decoder(path, max_pixels=max_pixels, max_file_bytes=max_file_bytes)
            if not isinstance(photo, Decoded):
                photo = Decoded(photo)
        sidecar = read_sidecar_xmp(path)
        if sidecar is not None:
            # The sidecar is what a raw developer or DAM last wrote: it wins over the embedded
            # XMP, cleaned by the same checks (meta_from_blocks) as an embedded packet.
            photo = dataclasses.replace(photo, meta=photo.meta.with_xmp(meta_from_blocks(xmp=sidecar).xmp))
        return photo, to_srgb(photo.rgb, photo.meta.icc)

    @staticmethod
    def _results_exist(work: _Work) -> bool:
        from bshmd.outputs.files import output_paths, outputs_written_for

        job = work.job
        try:
            paths = output_paths(work.folder.output, job.relpath, work.config.outputs_for(work.folder))
        except ValueError:
            return False
        if not outputs_written_for(paths, job.key.mtime_ns):
            return False
        work.outputs = dict(paths)
        return True

    def _infer_loop(self) -> None:
        while (batch := self._batcher.next_batch()) is not None:
            if self._aborted.is_set():
                for work in batch:
                    self._release(work.job, "shutdown")
                continue
            try:
                self._infer(batch)
            except Exception as exc:  # a bug for one batch must not end inference
                log.exception("unexpected error in inference")
                self.metrics.internal_errors.labels("infer").inc()
                for work in batch:
                    if work.alpha is None and work.rejection is None:
                        work.rejection = internal_error(exc)
            with self._lock:
                self._last_progress = time.monotonic()
            for work in batch:
                self._put(self._write_q, work)

    def _infer(self, batch: list[_Work]) -> None:
        images = [work.prepared if work.prepared is not None else work.rgb for work in batch]
        with self._lock:
            self._inferring = len(batch)
            self._inference_started = started = time.monotonic()
        try:
            results = self._predict(images)
        finally:
            with self._lock:
                self._inferring = 0
                self._inference_started = None
        elapsed = time.monotonic() - started
        self.metrics.inference_seconds.observe(elapsed)
        self.metrics.batch_size.observe(len(batch))
        for work, result in zip(batch, results, strict=True):
            work.job.timings["infer"] = elapsed
            work.batch_size = len(batch)
            if isinstance(result, InputRejected):
                work.rejection = result
            else:
                work.alpha = result

    def _predict(self, images: list[Any]) -> list[Any]:
        """engine.infer (of prepared images) or engine.predict, and when a whole batch fails,
        each image alone so one bad image does not take its batch-mates to quarantine."""
        try:
            results = list(self._engine.infer(images) if self._split else self._engine.predict(images))
            if len(results) != len(images):
                raise RuntimeError(f"the engine returned {len(results)} results for {len(images)} images")
            return results
        except Exception as exc:
            if len(images) == 1:
                log.exception("inference failed")
                self.metrics.internal_errors.labels("infer").inc()
                return [internal_error(exc)]
            log.warning("a batch of %d failed (%s); retrying its images one by one", len(images), exc)
            return [self._predict([image])[0] for image in images]

    def _write_loop(self, runner: TimedRunner) -> None:
        while (work := self._next(self._write_q)) is not _STOP:
            with self._lock:
                self._writing += 1
            try:
                self._wait_out_disk_full()
                if self._aborted.is_set():
                    self._release(work.job, "shutdown")
                else:
                    self._finish(work, runner)
            except Exception:  # a bug for one file must not end the stage
                log.exception("unexpected error while finishing %s", work.job.path)
                self.metrics.internal_errors.labels("write").inc()
                self._release(work.job, "internal_error")
            finally:
                with self._lock:
                    self._writing -= 1

    def _wait_out_disk_full(self) -> None:
        remaining = self._disk_full_until - time.monotonic()
        if remaining > 0:
            self._aborted.wait(remaining)

    # --- finishing one job -------------------------------------------------------------------

    def _finish(self, work: _Work, runner: TimedRunner) -> None:
        config = work.config
        timeout = config.pipeline.write_timeout_seconds
        started = time.monotonic()
        if work.recovered:
            try:
                runner.call(lambda: self._after_success(work), timeout)
            except Exception as exc:  # the results stand: the input is processed all the same
                log.error("finishing recovered results of %s failed: %s", work.job.path, exc)
            self._complete(work, "processed")
            return
        if work.rejection is None:
            try:
                runner.call(lambda: self._write_results(work), timeout)
            except StageTimeout:
                work.cancelled = True
                work.rejection = self._timed_out("write", "writing results", timeout)
            except InputRejected as exc:
                work.rejection = exc
            except _OutputUnwritable as exc:
                self._output_unwritable(work, exc.cause)
                return
            except ClaimLost:
                # Another instance took the input over while we worked on it: it writes the
                # results, so we write nothing and quarantine nothing.
                self._release(work.job, "claim_lost")
                return
            except Exception as exc:
                log.exception("unexpected error while writing results of %s", work.job.path)
                self.metrics.internal_errors.labels("write").inc()
                work.rejection = internal_error(exc)
        work.job.timings["write"] = time.monotonic() - started
        if work.rejection is not None:
            self._quarantine(work, runner)
            return
        self.metrics.write_seconds.observe(work.job.timings["write"])
        with self._lock:
            self._disk_full_until = 0.0
            self._disk_full_backoff = 0.0
            self._disk_full = False
        self.metrics.disk_full.set(0)
        self._complete(work, "processed")

    def _write_results(self, work: _Work) -> None:
        """Runs on a timed worker: gate the matte, write the results, then on_success."""
        from bshmd.fs.atomic import UnsafePathError
        from bshmd.outputs.files import output_paths, write_outputs
        from bshmd.outputs.render import render_outputs
        from bshmd.pipeline.gate import check_matte

        config, folder, job = work.config, work.folder, work.job
        self._full_size_matte(work)
        if not work.accepted:
            job.matte = check_matte(work.alpha, config.gate_for(folder))
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
        self._after_success(work)

    def _full_size_matte(self, work: _Work) -> Any:
        """``work.alpha`` at the photo's size: engine.finish once, on the calling (write) worker."""
        alpha, prepared = work.alpha, work.prepared
        if alpha is not None and prepared is not None:
            alpha = self._engine.finish(alpha, prepared)
            work.alpha, work.prepared = alpha, None
        return alpha

    def _matte_to_keep(self, work: _Work) -> Any:
        """The full-size matte for a quarantined input, or None if it cannot be made."""
        try:
            return self._full_size_matte(work)
        except Exception:
            log.exception("cannot bring the matte of %s to its size; it is quarantined without it", work.job.path)
            return None

    @staticmethod
    def _after_success(work: _Work) -> None:
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

    def _quarantine(self, work: _Work, runner: TimedRunner) -> None:
        from bshmd.quarantine.store import quarantine_input

        job, rejection = work.job, work.rejection
        assert rejection is not None
        if isinstance(rejection, NotFinished):
            self._release(job, NOT_FINISHED, retry_in=rejection.retry_after,
                          problem=f"{job.path} is not finished: {rejection.message}")
            return
        timeout = work.config.pipeline.write_timeout_seconds
        try:
            where = runner.call(
                lambda: quarantine_input(work.folder, job.path, job.relpath, rejection,
                                         instance_id=self._instance_id, matte=self._matte_to_keep(work),
                                         expect=(job.key.size, job.key.mtime_ns)),
                timeout,
            )
        except SourceChanged as exc:
            self._release(job, NOT_FINISHED, retry_in=_settle_seconds(work.config, work.folder),
                          problem=f"{job.path} was not quarantined ({rejection.reason_code}): {exc}")
            return
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                self._output_unwritable(work, exc, where=work.folder.quarantine)
                return
            self._release(job, "quarantine_failed", where=str(work.folder.quarantine),
                          problem=f"cannot quarantine {job.path} ({rejection.reason_code}): {exc}")
            return
        except Exception as exc:
            # UnsafePathError (a symlinked folder in the quarantine tree) lands here: not the
            # input's fault either, so it waits in place like any other quarantine failure.
            self._release(job, "quarantine_failed", where=str(work.folder.quarantine),
                          problem=f"cannot quarantine {job.path} ({rejection.reason_code}): {exc}")
            return
        job.quarantined_to = where
        self._complete(work, "quarantined")

    def _output_unwritable(self, work: _Work, exc: OSError, where: Path | None = None) -> None:
        disk_full = exc.errno in _DISK_FULL
        with self._lock:
            self._disk_full_backoff = min(max(self._disk_full_backoff * 2, _BACKOFF_FIRST), _BACKOFF_MAX)
            self._disk_full_until = time.monotonic() + self._disk_full_backoff
            backoff = self._disk_full_backoff
            self._disk_full = self._disk_full or disk_full
        condition = "disk_full" if disk_full else "output_unavailable"
        if disk_full:
            self.metrics.disk_full.set(1)
        self._release(work.job, condition, where=str(where or work.folder.output),
                      problem=f"cannot write results of {work.job.path} ({exc}); writes pause {backoff:.0f}s")

    # --- bookkeeping -------------------------------------------------------------------------

    def _take(self, job: Job) -> bool:
        """Claim the right to finish ``job``: True once, for whichever path gets there first."""
        with self._lock:
            if self._open.pop(id(job), None) is None:
                return False
            self._finishing += 1
            return True

    def _settle(self, job: Job, counter: str, outcome: str) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)
            self._last_progress = time.monotonic()
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

    def _complete(self, work: _Work, outcome: str) -> None:
        job = work.job
        if not self._take(job):
            return
        self.retry_backoff.succeeded(work.folder.input, job.key)
        if outcome == "processed":
            job.outcome = Outcome(RECOVERED if work.recovered else PROCESSED)
        else:
            assert work.rejection is not None
            job.outcome = Outcome(QUARANTINED, work.rejection.reason_code)
        if job.claim is not None:
            try:
                job.claim.complete(job.outcome)
            except ClaimLost as exc:
                # Taken over after the last check: the new holder finds these results (stamped
                # with the input's mtime) and records them; nothing is made twice.
                log.warning("cannot record %s as %s: %s", job.path, job.outcome, exc)
            except Exception:
                log.exception("cannot record %s as %s", job.path, job.outcome)
        folder = str(work.folder.input)
        t = job.timings
        times = " ".join(f"{name}={t[name]:.3f}s" for name in ("wait", "decode", "infer", "write") if name in t)
        extra = {"bshmd_file": str(job.path), "bshmd_outcome": outcome,
                 **{f"bshmd_{name}": round(value, 6) for name, value in t.items()}}
        if outcome == "processed":
            latency = time.monotonic() - job.settled_at
            self.metrics.files_processed.labels(folder).inc()
            self.metrics.latency_seconds.observe(latency)
            self.metrics.last_success_time.set_to_current_time()
            first = next(iter(work.outputs.values()), None)
            extra.update(bshmd_output=str(first), bshmd_batch=work.batch_size, bshmd_latency=round(latency, 6))
            if work.recovered:
                extra["bshmd_outcome"] = "recovered"
                log.info("recovered %s → %s: results written by %s before it stopped; claim completed",
                         job.path, first, job.taken_from, extra=extra)
            elif work.notes:
                # The photo is processed; what of its metadata could not be carried is said here.
                extra["bshmd_dropped"] = "; ".join(work.notes)
                log.warning("processed %s → %s %s; metadata dropped: %s", job.path, first, times,
                            extra["bshmd_dropped"], extra=extra)
            else:
                log.info("processed %s → %s %s", job.path, first, times, extra=extra)
            self._settle(job, "_processed", "processed")
        else:
            rejection = work.rejection
            assert rejection is not None
            self.metrics.files_quarantined.labels(folder, rejection.reason_code).inc()
            extra.update(bshmd_reason=rejection.reason_code, bshmd_output=str(job.quarantined_to))
            log.warning("quarantined %s reason=%s: %s %s", job.path, rejection.reason_code, rejection.message,
                        times, extra=extra)
            self._settle(job, "_quarantined", f"quarantined:{rejection.reason_code}")

    def _release(self, job: Job, reason: str, *, problem: str | None = None, where: str | None = None,
                 retry_in: float | None = None) -> None:
        """Give ``job`` back unfinished: its input stays and its claim is freed for a retry.

        For a reason in BACK_OFF_REASONS the file's retry delay goes into the release's
        ``Outcome.retry_after`` (the ledger keeps anyone from taking it again sooner), and
        ``problem`` is logged at ERROR for the first failure of a streak, at DEBUG after.
        ``retry_in`` gives that delay directly (an input not finished yet: ``not_finished``,
        bshmd.pipeline.grace); ``problem`` is then logged at INFO.
        """
        if not self._take(job):
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
            streak = self.retry_backoff.failed(job.folder.input, job.key, reason, where)
            retry_after = streak.delay
            level = logging.INFO if streak.first else logging.DEBUG
            fields["bshmd_retry_in"] = streak.delay
            if problem is not None:
                log.log(logging.ERROR if streak.first else logging.DEBUG,
                        "%s; the input stays and is retried in %gs%s", problem, streak.delay,
                        "" if streak.first else f" (failure {streak.failures} in a row)", extra=fields)
            waiting = self.retry_backoff.summary_due(where)
            if waiting:
                log.warning("%s is not writable (%s): %d file(s) wait in place and are retried",
                            where, reason, waiting, extra={"bshmd_outcome": f"waiting:{reason}"})
        elif problem is not None:
            log.error("%s; the input stays and will be retried", problem, extra=fields)
        job.outcome = Outcome(RELEASED, reason, retry_after)
        if job.claim is not None:
            try:
                job.claim.release(job.outcome)
            except Exception:
                log.exception("cannot release the claim on %s", job.path)
        self.metrics.files_released.labels(reason).inc()
        log.log(level, "released %s unprocessed (%s)", job.path, reason, extra=fields)
        self._settle(job, "_released", f"released:{reason}")
