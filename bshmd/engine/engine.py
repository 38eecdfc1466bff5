"""The TensorFlow runtime: BSHM's frozen graph in a ``tf.compat.v1`` session.

Measured on 2 CPU cores with the stand-in graph, concurrent ``session.run`` calls (the
batching of ``BaseEngine``) beat importing the graph a second time inside ``tf.map_fn`` over
a batch placeholder at every size tried, at no extra graph memory (bench/bench_engine.py).

``MattingEngine.from_config`` is where the daemon and ``bshmd process`` get their engine: it
picks the runtime named by ``model.runtime`` (bshmd.engine.registry), this one by default.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bshmd.engine.base import (  # re-exported: the names the engine's users know
    MAX_CONCURRENT_RUNS,
    MIN_OOM_LONG_SIDE,
    WARMUP_SIZE,
    BaseEngine,
    Prepared,
    RuntimeInfo,
)
from bshmd.engine.loader import (
    check_contract,
    import_graph,
    plan_session,
    read_graph_def,
)
from bshmd.engine.tf import import_tf

if TYPE_CHECKING:
    import numpy as np

    from bshmd.config import ModelConfig
    from bshmd.engine.base import Engine

__all__ = ["MAX_CONCURRENT_RUNS", "MIN_OOM_LONG_SIDE", "WARMUP_SIZE", "MattingEngine", "Prepared"]

log = logging.getLogger("bshmd.engine")


class MattingEngine(BaseEngine):
    """One TensorFlow graph and session holding BSHM, used by a single inference thread."""

    def __init__(self, graph_file: Path, *, max_side: int = 2000, device: str = "auto",
                 gpu_memory_fraction: float | None = None, intra_op_threads: int = 0,
                 inter_op_threads: int = 0, sha256: str | None = None, precision: str = "fp32") -> None:
        started = time.perf_counter()
        tf = import_tf()
        self.graph_file = Path(graph_file)
        self._resource_exhausted = tf.errors.ResourceExhaustedError

        graph_def = read_graph_def(self.graph_file, sha256)
        plan = plan_session(device, gpu_memory_fraction, intra_op_threads, inter_op_threads)
        precision = _mixed_precision(plan.config, precision, device, tf)
        self._graph = tf.Graph()
        with self._graph.as_default(), (tf.device(plan.device_scope) if plan.device_scope else nullcontext()):
            import_graph(self._graph, graph_def, self.graph_file)
            self._input, output = check_contract(self._graph, self.graph_file)
            # Fetch only the alpha (channel 4 of output_png): a quarter of the bytes to copy out.
            self._alpha = output[:, :, 3]
        # Nothing may be added after loading: a graph that grows per call would leak memory.
        self._graph.finalize()
        self._session = tf.compat.v1.Session(graph=self._graph, config=plan.config)
        super().__init__(max_side=max_side, info=RuntimeInfo("tensorflow", device, precision))
        self.load_seconds = time.perf_counter() - started
        log.info("model loaded from %s in %.2f s (%s)", self.graph_file, self.load_seconds, self.info.describe())

    @classmethod
    def from_config(cls, model_cfg: ModelConfig, *, fetch: bool = True) -> Engine:
        """The engine ``model_cfg`` asks for (``model.runtime``), its model located or fetched."""
        from bshmd.engine.registry import load_engine

        return load_engine(model_cfg, fetch=fetch)

    @classmethod
    def from_graph(cls, model_cfg: ModelConfig, graph_file: Path) -> MattingEngine:
        return cls(
            graph_file,
            max_side=model_cfg.max_side,
            device=model_cfg.device,
            gpu_memory_fraction=model_cfg.gpu_memory_fraction,
            intra_op_threads=model_cfg.intra_op_threads,
            inter_op_threads=model_cfg.inter_op_threads,
            sha256=model_cfg.sha256,
            precision=model_cfg.precision,
        )

    # -- the runtime's part ------------------------------------------------------------------

    def _run_one(self, image: np.ndarray) -> np.ndarray:
        # ModelScope feeds RGB as floats 0..255 with no resizing or normalisation; so do we.
        return self._session.run(self._alpha, feed_dict={self._input: image.astype("float32")})

    def _is_out_of_memory(self, error: BaseException) -> bool:
        return isinstance(error, self._resource_exhausted)

    def _release(self) -> None:
        self._session.close()


def _mixed_precision(config: Any, precision: str, device: str, tf: Any) -> str:
    """Turn on grappler's automatic mixed precision for fp16 where a GPU runs the graph.

    The rewrite casts MatMul/Conv2D and their neighbours to float16 on the GPU only; on a
    CPU it does nothing useful, so fp16 there is refused with a warning and fp32 is used.
    """
    if precision != "fp16":
        return "fp32"
    if device == "cpu" or not tf.config.list_physical_devices("GPU"):
        log.warning("model.precision fp16 needs a GPU with TensorFlow; running fp32 on the CPU")
        return "fp32"
    rewrite = tf.compat.v1.RewriterConfig
    config.graph_options.rewrite_options.auto_mixed_precision = rewrite.ON
    return "fp16"
