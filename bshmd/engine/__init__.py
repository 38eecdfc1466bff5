"""The resident BSHM engine: model location, loading, and batched inference.

TensorFlow is imported only when an engine is built, never when this package is imported.
"""

from bshmd.engine.engine import MattingEngine
from bshmd.engine.loader import GRAPH_FILE, INPUT_TENSOR, OUTPUT_TENSOR
from bshmd.engine.source import resolve_model_dir

__all__ = ["GRAPH_FILE", "INPUT_TENSOR", "OUTPUT_TENSOR", "MattingEngine", "resolve_model_dir"]
