"""What the pipeline asks of an engine, and the part every runtime shares.

The pipeline depends on ``Engine`` only: load once (the constructor), ``warmup``, then
``prepare`` (decode workers) → ``infer`` (the one inference thread) → ``finish`` (write
workers), or ``predict`` for all three at once, and ``close``. A runtime (TensorFlow, ONNX
Runtime, OpenVINO) subclasses ``BaseEngine`` and supplies ``_run_one`` (one image at the
network's size in, its uint8 alpha out), ``_is_out_of_memory`` and ``_release``;
batching by size, splitting a batch that runs out of memory and shrinking an image that
still does not fit are the same for all of them.

Batching: BSHM's graph has no batch axis, so a batch of same-size images is run as
concurrent runs from the engine's own threads (every runtime here releases the GIL while it
runs). The threads are started with the engine and live until ``close()``: a pool made per
batch costs 35-50 ms on a busy 2-core host (each thread start waits for the GIL).

Out of memory: a batch the runtime reports as out of memory is split in halves, down to
single images; a single image that still fails is retried at half its long side, and half
again, down to ``MIN_OOM_LONG_SIDE``; only then is it rejected. The session stays usable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bshmd.engine.upsample import downscale, fit_long_side, guided_upsample
from bshmd.errors import InputRejected

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("bshmd.engine")

MAX_CONCURRENT_RUNS = 4  # more concurrent runs than this only add memory, not speed
MIN_OOM_LONG_SIDE = 256  # below this a matte is useless; reject instead of shrinking further
WARMUP_SIZE = (64, 64)


@dataclass(frozen=True)
class Prepared:
    """One image made ready for the network by ``prepare``."""

    rgb: np.ndarray  # the image as 8-bit RGB at its own size: the guide ``finish`` upsamples to
    net: np.ndarray  # what the network is given: ``rgb``, or its copy downscaled to max_side


@dataclass(frozen=True)
class RuntimeInfo:
    """What runs the network: for the start-up line, ``bshmd doctor`` and a metric's labels."""

    runtime: str  # tensorflow | onnxruntime | openvino
    device: str  # e.g. cpu, gpu:0, CUDAExecutionProvider, CPU
    precision: str  # fp32 | fp16

    def describe(self) -> str:
        return f"runtime {self.runtime}, device {self.device}, precision {self.precision}"


class Engine(Protocol):
    """The calls the pipeline and the service make on an engine."""

    info: RuntimeInfo
    max_side: int
    load_seconds: float

    def warmup(self) -> float: ...
    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray | InputRejected]: ...
    def prepare(self, image: np.ndarray) -> Prepared | InputRejected: ...
    def infer(self, prepared: Sequence[Prepared]) -> list[np.ndarray | InputRejected]: ...
    def finish(self, alpha: np.ndarray, prepared: Prepared) -> np.ndarray: ...
    def close(self) -> None: ...


class BaseEngine:
    """Batching, out-of-memory handling and resizing around one runtime's ``_run_one``."""

    info: RuntimeInfo
    load_seconds: float = 0.0

    def __init__(self, *, max_side: int, info: RuntimeInfo, concurrent_runs: int = MAX_CONCURRENT_RUNS) -> None:
        self.max_side = max_side
        self.info = info
        self._runs = _started_pool(concurrent_runs, "bshmd-infer-run")
        self._closed = False

    # -- what a runtime supplies -------------------------------------------------------------

    def _run_one(self, image: np.ndarray) -> np.ndarray:
        """The uint8 alpha (h×w) of one uint8 RGB image at the network's size."""
        raise NotImplementedError

    def _is_out_of_memory(self, error: BaseException) -> bool:
        return False

    def _release(self) -> None:
        """Free the runtime's session; called once, after the run threads have stopped."""

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) the network is given for a photo of this size."""
        if max(height, width) > self.max_side:
            return fit_long_side(height, width, self.max_side)
        return height, width

    # -- public API --------------------------------------------------------------------------

    def warmup(self) -> float:
        """Run one inference on a small synthetic image (runtimes allocate and tune on first run)."""
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
        """``image`` as the network takes it: checked as RGB, resized to ``network_size``."""
        import cv2

        rgb = _as_rgb(image)
        if isinstance(rgb, InputRejected):
            return rgb
        height, width = rgb.shape[:2]
        size = self.network_size(height, width)
        if size == (height, width):
            return Prepared(rgb, rgb)
        if size == fit_long_side(height, width, max(size)):
            return Prepared(rgb, downscale(rgb, max(size)))
        return Prepared(rgb, cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA))

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
            self._release()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- running -----------------------------------------------------------------------------

    def _run_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Alphas for same-size images; raises the runtime's out-of-memory error if any run runs out."""
        if len(images) == 1:
            return [self._run_one(images[0])]
        # At most the pool's size at once; the rest queue behind them.
        return list(self._runs.map(self._run_one, images))

    def _infer_same_size(self, images: list[np.ndarray]) -> list[np.ndarray | None]:
        try:
            return self._run_batch(images)
        except Exception as exc:
            if not self._is_out_of_memory(exc):
                raise
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
            except Exception as exc:
                if not self._is_out_of_memory(exc):
                    raise
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
