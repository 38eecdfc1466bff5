"""The resident BSHM engine: model location, loading, and batched inference.

``MattingEngine.from_config`` loads the runtime named by ``model.runtime`` (TensorFlow by
default, or ONNX Runtime / OpenVINO on an export); every runtime is an ``Engine``
(bshmd.engine.base). No runtime library is imported when this package is imported.
"""

from bshmd.engine.base import Engine, RuntimeInfo
from bshmd.engine.engine import MattingEngine
from bshmd.engine.loader import GRAPH_FILE, INPUT_TENSOR, OUTPUT_TENSOR
from bshmd.engine.source import resolve_model_dir

__all__ = ["GRAPH_FILE", "INPUT_TENSOR", "OUTPUT_TENSOR", "Engine", "MattingEngine", "RuntimeInfo",
           "resolve_model_dir"]
