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
- Decode and write calls run on a ``TimedRunner`` (bshmd.timed): a file that takes longer than
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
- Every job ends once, as one typed ``Outcome``, handed to its claim (the ledger) and to
  ``on_done`` (bshmd.pipeline.bookkeeping).

This module owns the queues, the threads and their lifecycle; each stage's work is in its own
module (decoding, inference, finish) and gets only a ``StageContext`` (bshmd.pipeline.stage).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from bshmd.config import Config
from bshmd.metrics import Metrics
from bshmd.pipeline.batcher import Batcher
from bshmd.pipeline.bookkeeping import Bookkeeping, OnDone, PipelineHealth
from bshmd.pipeline.budget import PixelBudget, bound_heap_retention
from bshmd.pipeline.decoding import Decoder, Decoding
from bshmd.pipeline.finish import Finishing, OutputPause
from bshmd.pipeline.inference import Inference
from bshmd.pipeline.job import Job, Work
from bshmd.pipeline.retry import BACK_OFF_REASONS, RetryBackoff
from bshmd.pipeline.stage import POLL, STOP, StageContext
from bshmd.timed import TimedRunner

__all__ = ["Pipeline", "PipelineHealth"]

log = logging.getLogger("bshmd.pipeline")


class Pipeline:
    """Decode → batch → infer → write, overlapped; see the module docstring."""

    def __init__(self, config: Config, engine: Any, *, instance_id: str, metrics: Metrics | None = None,
                 on_done: OnDone | None = None, decoder: Decoder | None = None,
                 retry_base_seconds: float | None = None, retry_max_seconds: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # ``decoder`` replaces decode_photo (see bshmd.pipeline.decoding); tests use it to make
        # decoding slow. ``retry_*_seconds`` override pipeline.retry_base_seconds /
        # retry_max_seconds. ``clock`` (monotonic seconds) is read for every deadline and timing.
        self._config = config
        self._config_lock = threading.Lock()
        self.metrics = metrics or Metrics()
        self._retry_override = (retry_base_seconds, retry_max_seconds)
        self.retry_backoff = RetryBackoff(*self._retry_limits(config), clock=clock)
        self.capacity = config.pipeline.queue_size + config.batch.max_size
        self._clock = clock
        self._aborted = threading.Event()
        self._started = False
        self._pixels = PixelBudget(config.pipeline.max_inflight_megapixels)  # held from decode to finish
        self._books = Bookkeeping(self.capacity, metrics=self.metrics, retry_backoff=self.retry_backoff,
                                  pixels=self._pixels, on_done=on_done, clock=clock)
        self._output = OutputPause(clock)
        split = all(callable(getattr(engine, step, None)) for step in ("prepare", "infer", "finish"))
        stage = StageContext(engine=engine, split=split, metrics=self.metrics, books=self._books,
                             aborted=self._aborted, clock=clock, instance_id=instance_id,
                             config=self._current_config)
        self._decoding = Decoding(stage, self._pixels, decoder)
        self._inference = Inference(stage)
        self._finishing = Finishing(stage, self._output)

        self._decode_workers = config.pipeline.decode_worker_count
        self._write_workers = config.pipeline.write_worker_count
        self._intake: queue.Queue[Any] = queue.Queue(self.capacity + self._decode_workers)
        self._write_q: queue.Queue[Any] = queue.Queue(self.capacity + self._write_workers)
        self._batcher: Batcher[Work] = Batcher(config.batch.max_size, config.batch.max_wait_ms / 1000, clock=clock)
        self._decode_threads: list[threading.Thread] = []
        self._write_threads: list[threading.Thread] = []
        self._infer_thread: threading.Thread | None = None
        self._runners: list[TimedRunner] = []

    def _current_config(self) -> Config:
        with self._config_lock:
            return self._config

    def start(self) -> None:
        if self._started:
            raise RuntimeError("the pipeline was already started")
        self._started = True
        bound_heap_retention()
        depth, busy = self.metrics.queue_depth, self._books.busy
        depth.labels("intake").set_function(self._intake.qsize)
        depth.labels("decode").set_function(lambda: busy["decode"])
        depth.labels("batch").set_function(self._batcher.pending)
        depth.labels("infer").set_function(lambda: busy["infer"])
        depth.labels("write").set_function(lambda: self._write_q.qsize() + busy["write"])
        for reason in BACK_OFF_REASONS:
            self.metrics.files_backing_off.labels(reason).set_function(
                lambda reason=reason: self.retry_backoff.count(reason))
        # Decoding and encoding yield the CPU to the thread that feeds the model: when they
        # compete for cores, inference (the costly, single-threaded stage) must not wait.
        niceness = self._config.pipeline.worker_niceness
        for i in range(self._decode_workers):
            runner = TimedRunner(f"bshmd-decode-{i}", niceness=niceness)
            self._runners.append(runner)
            self._decode_threads.append(self._spawn(f"bshmd-decode-{i}", self._decoding.loop, runner,
                                                    self._intake, self._batcher, self._write_q))
        self._infer_thread = self._spawn("bshmd-infer", self._inference.loop, self._batcher, self._write_q)
        for i in range(self._write_workers):
            runner = TimedRunner(f"bshmd-write-{i}", niceness=niceness)
            self._runners.append(runner)
            self._write_threads.append(self._spawn(f"bshmd-write-{i}", self._finishing.loop, runner, self._write_q))

    @staticmethod
    def _spawn(name: str, target: Callable[..., None], *args: Any) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        return thread

    def submit(self, job: Job, timeout: float | None = None) -> bool:
        """Queue ``job``; blocks while ``capacity`` jobs are unfinished. False if stopping or timed out."""
        if not self._started:
            raise RuntimeError("start() the pipeline before submitting jobs")
        if not self._books.admit(job, timeout):
            return False
        self.metrics.files_seen.inc()
        self._intake.put(job)  # never blocks: sized for capacity jobs plus the stop sentinels
        return True

    def stop(self, timeout: float) -> bool:
        """Stop intake, finish the batch in flight within ``timeout``, release the rest.

        Jobs still waiting in the intake queue have not started: their claims are released at
        once. No batch starts after this: decoded files waiting for inference are released
        too (bshmd.pipeline.inference). Returns True when all that ran stopped in time; False
        after ``abort`` (a call may still be running in the engine, see ``abort``).
        """
        deadline = self._clock() + timeout
        first = self._books.stop_intake()
        if not self._started:
            return True
        if first:
            log.info("intake stopped: the batch in flight finishes, no other starts (up to %g s)", timeout)
            while True:
                try:
                    item = self._intake.get_nowait()
                except queue.Empty:
                    break
                if item is not STOP:
                    self._books.release(item, "shutdown")
            for _ in self._decode_threads:
                self._intake.put(STOP)
        finished = self._join(self._decode_threads, deadline)
        self._batcher.close()
        finished = finished and self._join([self._infer_thread] if self._infer_thread else [], deadline)
        if finished and first:
            for _ in self._write_threads:
                self._write_q.put(STOP)
        finished = finished and self._join(self._write_threads, deadline)
        if not finished:
            self.abort()
            return False
        self._close_runners(0.5)
        return True

    def abort(self) -> None:
        """Stop now: release every unfinished job. Results are written atomically, so a write
        cut short leaves nothing behind; a call stuck in the engine keeps its daemon thread."""
        self._books.stop_intake()
        self._aborted.set()
        self._batcher.close()
        self._pixels.close()
        for job in self._books.open_jobs():
            self._books.release(job, "shutdown")
        for thread in [*self._decode_threads, *self._write_threads, self._infer_thread]:
            if thread is not None:
                thread.join(timeout=POLL * 2)
        self._close_runners(0.0)

    def _close_runners(self, timeout: float) -> None:
        for runner in self._runners:
            stuck = runner.close(timeout)
            for thread in stuck:
                log.warning("a worker is still blocked in a call and is left behind: %s", thread.name)

    def _join(self, threads: list[threading.Thread], deadline: float) -> bool:
        for thread in threads:
            thread.join(max(deadline - self._clock(), 0.0))
        return not any(thread.is_alive() for thread in threads)

    def update_config(self, config: Config) -> None:
        """New folders, outputs, gates, batch limits and retry delays apply from now on.

        Worker counts, ``queue_size`` and timeouts keep their values until a restart.
        """
        with self._config_lock:
            self._config = config
        self._batcher.set_limits(config.batch.max_size, config.batch.max_wait_ms / 1000)
        self._pixels.set_limit(config.pipeline.max_inflight_megapixels)
        self.retry_backoff.set_limits(*self._retry_limits(config))

    def _retry_limits(self, config: Config) -> tuple[float, float]:
        base, most = self._retry_override
        return (base if base is not None else config.pipeline.retry_base_seconds,
                most if most is not None else config.pipeline.retry_max_seconds)

    def health(self) -> PipelineHealth:
        disk_full, output_unavailable = self._output.state()
        return self._books.health(intake=self._intake.qsize(), batch=self._batcher.pending(),
                                  write_queue=self._write_q.qsize(), disk_full=disk_full,
                                  output_unavailable=output_unavailable)

    def wait_idle(self, timeout: float | None) -> bool:
        """True once nothing is queued or in flight; False if ``timeout`` passed first (None: no limit)."""
        return self._books.wait_idle(timeout)
