"""The inference stage: one thread that runs the network over batches, and nothing else.

With an engine that offers ``prepare`` / ``infer`` / ``finish`` the decode workers already
brought each photo to the network's size and the write workers bring the matte back, so the
device never waits for resizing; an engine with ``predict`` alone runs whole here. A batch
that fails is retried image by image, so one bad image does not take its batch-mates to
quarantine.
"""

from __future__ import annotations

import logging
import queue
from typing import Any

from bshmd.errors import InputRejected
from bshmd.pipeline.batcher import Batcher
from bshmd.pipeline.job import Work
from bshmd.pipeline.stage import StageContext, internal_error

log = logging.getLogger("bshmd.pipeline")


class Inference:
    def __init__(self, ctx: StageContext) -> None:
        self._ctx = ctx

    def loop(self, batcher: Batcher[Work], finish_queue: queue.Queue[Any]) -> None:
        ctx = self._ctx
        while (batch := batcher.next_batch()) is not None:
            if ctx.aborted.is_set() or ctx.books.stopping:
                # Stopping: the batch in flight finishes, no other starts. One more batch can
                # take as long as shutdown_timeout allows all of them, and the process must be
                # gone within Kubernetes' grace period; the files are released for a later run.
                if not ctx.aborted.is_set():
                    log.info("stopping: %d decoded file(s) released without inference", len(batch))
                for work in batch:
                    ctx.books.release(work.job, "shutdown")
                continue
            log.debug("inference of a batch of %d started", len(batch))
            try:
                self.infer(batch)
            except Exception as exc:  # a bug for one batch must not end inference
                log.exception("unexpected error in inference")
                ctx.metrics.internal_errors.labels("infer").inc()
                for work in batch:
                    if work.alpha is None and work.rejection is None:
                        work.rejection = internal_error(exc)
            ctx.books.progressed()
            for work in batch:
                ctx.hand_on(finish_queue, work)

    def infer(self, batch: list[Work]) -> None:
        ctx = self._ctx
        images = [work.prepared if work.prepared is not None else work.rgb for work in batch]
        with ctx.books.working("infer", len(batch)) as started:
            results = self._predict(images)
        elapsed = ctx.clock() - started
        ctx.metrics.inference_seconds.observe(elapsed)
        ctx.metrics.batch_size.observe(len(batch))
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
        ctx = self._ctx
        try:
            results = list(ctx.engine.infer(images) if ctx.split else ctx.engine.predict(images))
            if len(results) != len(images):
                raise RuntimeError(f"the engine returned {len(results)} results for {len(images)} images")
            return results
        except Exception as exc:
            if len(images) == 1:
                log.exception("inference failed")
                ctx.metrics.internal_errors.labels("infer").inc()
                return [internal_error(exc)]
            log.warning("a batch of %d failed (%s); retrying its images one by one", len(images), exc)
            return [self._predict([image])[0] for image in images]
