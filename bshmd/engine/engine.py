"""The resident BSHM session: load the frozen graph once, then turn RGB images into mattes.

Batching: BSHM's graph has no batch axis, so a batch of same-size images is run as
concurrent ``session.run`` calls from the engine's own threads (TensorFlow releases the GIL
and overlaps the calls). Measured on 2 CPU cores with the stand-in graph, this beat importing
the graph a second time inside ``tf.map_fn`` over a batch placeholder at every size tried, at
no extra graph memory (see bench/bench_engine.py and the engine's report). The threads are
started with the engine and live until ``close()``: a pool made per batch of 4 cost 0.5 ms
on an idle 2-core host and 35-50 ms with two Python threads busy beside it (each of the four
thread starts waits for its new thread to get the GIL), time the device waits.

Out of memory: a batch that raises ``ResourceExhaustedError`` is split in halves, down to
single images; a single image that still fails is retried at half its long side, and half
again, down to ``MIN_OOM_LONG_SIDE``; only then is it rejected. The session stays usable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bshmd.engine.loader import (
    GRAPH_FILE,
    check_contract,
    import_graph,
    plan_session,
    read_graph_def,
)
from bshmd.engine.tf import import_tf
from bshmd.engine.upsample import downscale, guided_upsample
from bshmd.errors import InputRejected

if TYPE_CHECKING:
    import numpy as np

    from bshmd.config import ModelConfig

log = logging.getLogger("bshmd.engine")

MAX_CONCURRENT_RUNS = 4  # more concurrent runs than this only add memory, not speed
MIN_OOM_LONG_SIDE = 256  # below this a matte is useless; reject instead of shrinking further
WARMUP_SIZE = (64, 64)


@dataclass(frozen=True)
class Prepared:
    """One image made ready for the network by ``MattingEngine.prepare``."""

    rgb: np.ndarray  # the image as 8-bit RGB at its own size: the guide ``finish`` upsamples to
    net: np.ndarray  # what the network is given: ``rgb``, or its copy downscaled to max_side


class MattingEngine:
    """One TensorFlow graph and session holding BSHM, used by a single inference thread."""

    def __init__(self, graph_file: Path, *, max_side: int = 2000, device: str = "auto",
                 gpu_memory_fraction: float | None = None, intra_op_threads: int = 0,
                 inter_op_threads: int = 0, sha256: str | None = None) -> None:
        started = time.perf_counter()
        tf = import_tf()
        self.graph_file = Path(graph_file)
        self.max_side = max_side
        self._resource_exhausted = tf.errors.ResourceExhaustedError

        graph_def = read_graph_def(self.graph_file, sha256)
        plan = plan_session(device, gpu_memory_fraction, intra_op_threads, inter_op_threads)
        self._graph = tf.Graph()
        with self._graph.as_default(), (tf.device(plan.device_scope) if plan.device_scope else nullcontext()):
            import_graph(self._graph, graph_def, self.graph_file)
            self._input, output = check_contract(self._graph, self.graph_file)
            # Fetch only the alpha (channel 4 of output_png): a quarter of the bytes to copy out.
            self._alpha = output[:, :, 3]
        # Nothing may be added after loading: a graph that grows per call would leak memory.
        self._graph.finalize()
        self._session = tf.compat.v1.Session(graph=self._graph, config=plan.config)
        self._runs = _started_pool(MAX_CONCURRENT_RUNS, "bshmd-infer-run")
        self._closed = False
        self.load_seconds = time.perf_counter() - started
        log.info("model loaded from %s in %.2f s (device %s)", self.graph_file, self.load_seconds, device)

    @classmethod
    def from_config(cls, model_cfg: ModelConfig, *, fetch: bool = True) -> MattingEngine:
        """Locate (and if needed download) the model named by ``model_cfg``, then load it."""
        from bshmd.engine.source import resolve_model_dir

        folder = resolve_model_dir(model_cfg, fetch=fetch)
        return cls(
            folder / GRAPH_FILE,
            max_side=model_cfg.max_side,
            device=model_cfg.device,
            gpu_memory_fraction=model_cfg.gpu_memory_fraction,
            intra_op_threads=model_cfg.intra_op_threads,
            inter_op_threads=model_cfg.inter_op_threads,
            sha256=model_cfg.sha256,
        )

    # -- public API -------------------------------------------------------------------------

    def warmup(self) -> float:
        """Run one inference on a small synthetic image (TF allocates and tunes on first run)."""
        import numpy as np

        height, width = WARMUP_SIZE
        image = np.full((height, width, 3), 200, dtype=np.uint8)
        image[height // 4: 3 * height // 4, width // 4: 3 * width // 4] = (90, 60, 40)
        started = time.perf_counter()
        self._run_batch([image])
        seconds = time.perf_counter() - started
        log.info("model warm-up inference took %.3f s", seconds)
        return seconds

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray | InputRejected]:
        """Mattes (uint8 H×W, each the size of its input) for uint8 RGB images of any sizes.

        Grey (H×W) and RGBA (H×W×4) arrays are accepted as RGB. An image that cannot run at
        all gets an ``InputRejected`` in its place instead of a matte. The same as
        ``prepare`` → ``infer`` → ``finish``, all on the calling thread.
        """
        prepared = [self.prepare(image) for image in images]
        alphas = iter(self.infer([item for item in prepared if isinstance(item, Prepared)]))
        results: list[np.ndarray | InputRejected] = []
        for item in prepared:
            if isinstance(item, InputRejected):
                results.append(item)
                continue
            alpha = next(alphas)
            results.append(alpha if isinstance(alpha, InputRejected) else self.finish(alpha, item))
        return results

    # The three steps of ``predict``, for a caller that runs them on different threads: only
    # ``infer`` needs the model (and the device); the other two are CPU work on the photo.

    def prepare(self, image: np.ndarray) -> Prepared | InputRejected:
        """``image`` as the network takes it: checked as RGB, downscaled above ``max_side``."""
        rgb = _as_rgb(image)
        if isinstance(rgb, InputRejected):
            return rgb
        net = downscale(rgb, self.max_side) if max(rgb.shape[:2]) > self.max_side else rgb
        return Prepared(rgb, net)

    def infer(self, prepared: Sequence[Prepared]) -> list[np.ndarray | InputRejected]:
        """Mattes at the network's size (uint8), in order; images of one size run as one batch."""
        results: list[Any] = [None] * len(prepared)
        groups: dict[tuple[int, int], list[int]] = {}
        for index, item in enumerate(prepared):
            groups.setdefault(item.net.shape[:2], []).append(index)
        for indices in groups.values():
            alphas = self._infer_same_size([prepared[index].net for index in indices])
            for index, alpha in zip(indices, alphas, strict=True):
                height, width = prepared[index].rgb.shape[:2]
                results[index] = alpha if alpha is not None else InputRejected(
                    "out_of_memory",
                    f"not enough memory to matte a {width}×{height} image, "
                    f"even at {MIN_OOM_LONG_SIDE} px on the long side",
                    {"width": width, "height": height},
                )
        return results

    @staticmethod
    def finish(alpha: np.ndarray, prepared: Prepared) -> np.ndarray:
        """``infer``'s matte for ``prepared`` at the photo's own size (guided upsampling)."""
        return guided_upsample(alpha, prepared.rgb)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._runs.shutdown(wait=True)
            self._session.close()

    def __enter__(self) -> MattingEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- running ----------------------------------------------------------------------------

    def _run_one(self, image: np.ndarray) -> np.ndarray:
        # ModelScope feeds RGB as floats 0..255 with no resizing or normalisation; so do we.
        return self._session.run(self._alpha, feed_dict={self._input: image.astype("float32")})

    def _run_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Alphas for same-size images; raises ResourceExhaustedError if any run runs out."""
        if len(images) == 1:
            return [self._run_one(images[0])]
        # At most MAX_CONCURRENT_RUNS at once (the pool's size); the rest queue behind them.
        return list(self._runs.map(self._run_one, images))

    def _infer_same_size(self, images: list[np.ndarray]) -> list[np.ndarray | None]:
        try:
            return self._run_batch(images)
        except self._resource_exhausted:
            if len(images) > 1:
                half = len(images) // 2
                log.warning("out of memory on a batch of %d %s images; splitting it",
                            len(images), "×".join(map(str, images[0].shape[1::-1])))
                return self._infer_same_size(images[:half]) + self._infer_same_size(images[half:])
        return [self._infer_reduced(images[0])]

    def _infer_reduced(self, image: np.ndarray) -> np.ndarray | None:
        """Retry one image at half, quarter … its long side; None if nothing fits."""
        long_side = max(image.shape[:2])
        while long_side // 2 >= MIN_OOM_LONG_SIDE:
            long_side //= 2
            log.warning("out of memory on a %d×%d image; retrying at %d px on the long side",
                        image.shape[1], image.shape[0], long_side)
            try:
                return self._run_batch([downscale(image, long_side)])[0]
            except self._resource_exhausted:
                continue
        return None


def _started_pool(workers: int, name: str) -> ThreadPoolExecutor:
    """A ThreadPoolExecutor whose ``workers`` threads are all running when it is returned.

    The executor starts a thread per submit while none is idle: ``workers`` tasks that wait
    for each other at a barrier make it start them all now, not during the first batches.
    """
    pool = ThreadPoolExecutor(workers, thread_name_prefix=name)
    barrier = threading.Barrier(workers, timeout=30)
    try:
        for future in [pool.submit(barrier.wait) for _ in range(workers)]:
            future.result()
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    return pool


def _as_rgb(image: Any) -> np.ndarray | InputRejected:
    import numpy as np

    array = np.asarray(image)
    if array.dtype == np.uint8 and array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or 0 in array.shape:
        return InputRejected(
            "unsupported_pixels",
            f"the engine takes 8-bit RGB images, got an array of {array.dtype} with shape {array.shape}",
            {"dtype": str(array.dtype), "shape": list(array.shape)},
        )
    return np.ascontiguousarray(array)
