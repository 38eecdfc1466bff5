"""The decode stage: an input file becomes the photo, its sRGB copy and the network's input.

Each decode worker takes a job from the intake queue, waits for its image's share of the pixel
budget, decodes it on a timed worker (a hung share quarantines the file as ``decode_timeout``
instead of hanging the stage), runs the input gate, and asks the truncated grace whether the
file is still being written. What passes goes to the batcher; what is refused, not finished or
already done by an earlier holder goes straight to the finish step.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bshmd.errors import InputRejected
from bshmd.pipeline.batcher import Batcher
from bshmd.pipeline.budget import PixelBudget, image_megapixels
from bshmd.pipeline.grace import judge
from bshmd.pipeline.job import Job, Work
from bshmd.pipeline.stage import STOP, StageContext, internal_error, settle_seconds
from bshmd.timed import CallTimeout, TimedRunner

log = logging.getLogger("bshmd.pipeline")

# Replaces decode_photo (called with max_pixels and max_file_bytes; it may return a bare RGB
# array); tests use it to make decoding slow.
Decoder = Callable[..., Any]


class Decoding:
    def __init__(self, ctx: StageContext, pixels: PixelBudget, decoder: Decoder | None = None) -> None:
        self._ctx = ctx
        self._pixels = pixels
        self._decoder = decoder

    def loop(self, runner: TimedRunner, intake: queue.Queue[Any], batcher: Batcher[Work],
             finish_queue: queue.Queue[Any]) -> None:
        ctx = self._ctx
        while (job := ctx.next_item(intake)) is not STOP:
            if not self._pixels.acquire(id(job), self._megapixels(job, runner)):  # closed by abort
                ctx.books.release(job, "shutdown")
                continue
            with ctx.books.working("decode"):
                try:
                    work = self.decode(job, runner)
                except Exception as exc:  # a bug for one file must not end the stage
                    log.exception("unexpected error while decoding %s", job.path)
                    ctx.metrics.internal_errors.labels("decode").inc()
                    work = Work(job, ctx.config(), job.folder, rejection=internal_error(exc))
            if work.rejection is not None or work.unfinished is not None or work.recovered:
                ctx.hand_on(finish_queue, work)
            else:
                try:
                    shape = (work.prepared.net if work.prepared is not None else work.rgb).shape
                    batcher.add(work, tuple(shape[:2]))
                except RuntimeError:  # closed by abort
                    ctx.books.release(job, "shutdown")

    def _megapixels(self, job: Job, runner: TimedRunner) -> float:
        """The input's size from its header, read on the timed worker: a hung share must not
        hang this thread (0 then; decoding times out and quarantines the file)."""
        try:
            return runner.call(lambda: image_megapixels(job.path), self._ctx.config().pipeline.decode_timeout_seconds)
        except CallTimeout:
            return 0.0

    def decode(self, job: Job, runner: TimedRunner) -> Work:
        from bshmd.pipeline.gate import check_input
        from bshmd.quarantine.store import consume_accept

        ctx = self._ctx
        config = ctx.config()
        folder = next((f for f in config.folders if f.input == job.folder.input), job.folder)
        work = Work(job, config, folder)
        started = ctx.clock()
        job.timings["wait"] = max(started - job.settled_at, 0.0)
        if job.taken_from and results_exist(work):
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
        except CallTimeout:
            work.rejection = ctx.timed_out("decode", "decoding", timeout)
        except InputRejected as exc:
            work.rejection = exc
        except Exception as exc:
            log.exception("unexpected error while decoding %s", job.path)
            ctx.metrics.internal_errors.labels("decode").inc()
            work.rejection = internal_error(exc)
        # Truncated grace (bshmd.pipeline.grace): a file still being written is not finished.
        work.unfinished = judge(job.path, job.key, work.rejection, grace_seconds=config.truncated_grace_seconds,
                                settle_seconds=settle_seconds(config, folder))
        job.timings["decode"] = ctx.clock() - started
        if work.rejection is None and work.unfinished is None:
            ctx.metrics.decode_seconds.observe(job.timings["decode"])
        else:
            work.rgb = work.photo = work.prepared = None
        return work

    def _decode_for_network(self, path: Path, max_pixels: int, max_file_bytes: int,
                            keep_16bit: bool) -> tuple[Any, Any, Any]:
        """(the Decoded photo, its sRGB pixels, engine.prepare of them or None); on a timed worker."""
        photo, rgb = self._decode_photo(path, max_pixels, max_file_bytes, keep_16bit)
        if not self._ctx.split:
            return photo, rgb, None
        prepared = self._ctx.engine.prepare(rgb)
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


def results_exist(work: Work) -> bool:
    """True (and ``work.outputs`` set) when all of the job's results exist, stamped with its mtime."""
    from bshmd.outputs.render import output_paths, outputs_written_for

    job = work.job
    try:
        paths = output_paths(work.folder.output, job.relpath, work.config.outputs_for(work.folder))
    except ValueError:
        return False
    if not outputs_written_for(paths, job.key.mtime_ns):
        return False
    work.outputs = dict(paths)
    return True
