"""``model.runtime`` → the engine class that runs it, imported only when chosen.

Each runtime module imports its own library lazily, so a host without TensorFlow can run
an export with ONNX Runtime, and one without ONNX Runtime never notices it is missing.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from bshmd.errors import ModelLoadError

if TYPE_CHECKING:
    from bshmd.config import ModelConfig
    from bshmd.engine.base import Engine

log = logging.getLogger("bshmd.engine")

RUNTIMES = {
    "tensorflow": ("bshmd.engine.engine", "MattingEngine", "tensorflow"),
    "onnxruntime": ("bshmd.engine.ort", "OnnxRuntimeEngine", "onnx"),
    "openvino": ("bshmd.engine.ov", "OpenVinoEngine", "openvino"),
}


def runtime_class(runtime: str) -> Any:
    """The engine class for ``runtime`` (a key of RUNTIMES)."""
    try:
        module_name, class_name, _ = RUNTIMES[runtime]
    except KeyError:
        raise ModelLoadError(f"model.runtime {runtime!r} is not one of {', '.join(RUNTIMES)}") from None
    return getattr(importlib.import_module(module_name), class_name)


def load_engine(model_cfg: ModelConfig, *, fetch: bool) -> Engine:
    """Locate (and if needed download) the configured graph, then load it with ``model.runtime``."""
    from bshmd.engine.export import graph_file_of

    graph_file = graph_file_of(model_cfg, fetch=fetch)
    engine: Engine = runtime_class(model_cfg.runtime).from_graph(model_cfg, graph_file)
    return engine
