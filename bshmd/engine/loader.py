"""Reading, verifying and checking BSHM's frozen graph, and configuring the session that runs it.

Every failure here is a ``ModelLoadError`` whose one line names the file and says what to do,
because it is what an operator reads in the journal when the daemon refuses to start.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bshmd.engine.tf import import_tf
from bshmd.errors import ModelLoadError

log = logging.getLogger("bshmd.engine")

GRAPH_FILE = "tf_graph.pb"
INPUT_TENSOR = "input_image:0"
OUTPUT_TENSOR = "output_png:0"
FIX_HINT = "run `bshmd model fetch` or place BSHM's tf_graph.pb in the folder named by model.path"
_CHUNK = 1 << 20


def read_graph_def(graph_file: Path, sha256: str | None = None) -> Any:
    """Read ``graph_file`` into a ``GraphDef``, verifying its SHA-256 first when one is pinned."""
    tf = import_tf()
    from google.protobuf.message import DecodeError

    graph_file = Path(graph_file)
    if not graph_file.parent.is_dir():
        raise ModelLoadError(f"model folder {graph_file.parent} does not exist: {FIX_HINT}")
    if not graph_file.is_file():
        raise ModelLoadError(f"model file {graph_file} is missing: {FIX_HINT}")

    digest = hashlib.sha256()
    data = bytearray()
    try:
        with graph_file.open("rb") as stream:
            # One streamed pass both hashes and collects the bytes of a ~100 MB file.
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
                data += chunk
    except OSError as exc:
        raise ModelLoadError(f"model file {graph_file} cannot be read ({exc.strerror}): {FIX_HINT}") from exc
    if not data:
        raise ModelLoadError(f"model file {graph_file} is empty (an interrupted download?): "
                             f"delete it and {FIX_HINT}")
    if sha256 is not None and digest.hexdigest() != sha256.lower():
        raise ModelLoadError(
            f"model file {graph_file} has SHA-256 {digest.hexdigest()}, but model.sha256 expects "
            f"{sha256.lower()}: replace the file (run `bshmd model fetch`) or correct model.sha256"
        )

    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(bytes(data))
    except DecodeError as exc:
        raise ModelLoadError(
            f"model file {graph_file} is not a TensorFlow GraphDef (truncated or corrupt: {exc}): "
            f"delete it and {FIX_HINT}"
        ) from exc
    if not graph_def.node:
        raise ModelLoadError(f"model file {graph_file} holds an empty graph: delete it and {FIX_HINT}")
    return graph_def


def import_graph(graph: Any, graph_def: Any, graph_file: Path) -> None:
    """Import ``graph_def`` into ``graph`` under no name prefix, exactly as ModelScope does."""
    tf = import_tf()
    with graph.as_default():
        try:
            tf.import_graph_def(graph_def, name="")
        except (ValueError, TypeError, tf.errors.OpError) as exc:
            # A file cut at a record boundary parses but references nodes that are not there.
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(
                f"model file {graph_file} cannot be imported ({first_line}): delete it and {FIX_HINT}"
            ) from exc


def check_contract(graph: Any, graph_file: Path) -> tuple[Any, Any]:
    """Return (input, output) tensors after checking BSHM's names, dtypes and ranks.

    An unknown rank or channel count is accepted: frozen graphs do not always carry static
    shapes, and the first inference would reveal a real mismatch anyway.
    """
    tf = import_tf()
    found = []
    for name, dtype, channels in ((INPUT_TENSOR, tf.float32, 3), (OUTPUT_TENSOR, tf.uint8, 4)):
        try:
            tensor = graph.get_tensor_by_name(name)
        except (KeyError, ValueError) as exc:
            raise ModelLoadError(
                f"model file {graph_file} has no tensor {name}: it is not BSHM's matting graph; {FIX_HINT}"
            ) from exc
        if tensor.dtype != dtype:
            raise ModelLoadError(
                f"model file {graph_file}: tensor {name} is {tensor.dtype.name}, expected {dtype.name}: "
                f"it is not BSHM's matting graph; {FIX_HINT}"
            )
        shape = tensor.shape
        if shape.rank is not None and (
            shape.rank != 3 or (shape[-1] is not None and shape[-1] != channels)
        ):
            raise ModelLoadError(
                f"model file {graph_file}: tensor {name} has shape {shape}, expected (H, W, {channels}) "
                f"without a batch axis: it is not BSHM's matting graph; {FIX_HINT}"
            )
        found.append(tensor)
    return found[0], found[1]


@dataclass(frozen=True)
class SessionPlan:
    """How to build the session: its ConfigProto and the device to pin the graph to (or None)."""

    config: Any
    device_scope: str | None


def plan_session(device: str, gpu_memory_fraction: float | None, intra_op_threads: int,
                 inter_op_threads: int) -> SessionPlan:
    """Translate ``model.device`` (auto|cpu|gpu|gpu:N) and thread/memory settings for TF."""
    tf = import_tf()
    config = tf.compat.v1.ConfigProto(
        allow_soft_placement=True,  # as ModelScope: ops without a GPU kernel fall back to CPU
        intra_op_parallelism_threads=intra_op_threads,
        inter_op_parallelism_threads=inter_op_threads,
    )
    # Grow GPU memory on demand instead of grabbing it all: other processes share the card.
    config.gpu_options.allow_growth = True
    if gpu_memory_fraction is not None:
        config.gpu_options.per_process_gpu_memory_fraction = gpu_memory_fraction

    if device == "auto":
        return SessionPlan(config, None)
    if device == "cpu":
        config.device_count["GPU"] = 0
        return SessionPlan(config, "/device:CPU:0")

    index = int(device.partition(":")[2] or 0)
    gpus = tf.config.list_physical_devices("GPU")
    if index >= len(gpus):
        raise ModelLoadError(
            f"model.device is {device!r} but TensorFlow sees {len(gpus)} GPU(s): "
            "set model.device to auto or cpu, or check the CUDA driver and CUDA_VISIBLE_DEVICES"
        )
    # Only the chosen card is made visible; inside this session it is then GPU:0.
    config.gpu_options.visible_device_list = str(index)
    return SessionPlan(config, "/device:GPU:0")
