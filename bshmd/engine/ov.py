"""The OpenVINO runtime: the graph's OpenVINO export, compiled for each input size it meets.

With the graph's dynamic input shape OpenVINO runs many times slower and uses gigabytes;
with a static shape it is as fast as any. So every size is compiled on its own, once: the
first photo of a size pays the compile (logged), and the compiled blob is kept in
``CACHE_DIR`` beside the export, so a restarted daemon reads it back instead. Photos larger
than ``model.max_side`` are resized to a long side of ``max_side`` and a short side rounded
to ``SHORT_SIDE_STEP``, so a studio's cameras give a handful of sizes; ``finish`` brings the
matte back to the photo's own size as for any runtime. At most ``MAX_COMPILED`` sizes stay
compiled in memory; the least recently used one is dropped (and comes back from the cache).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bshmd.engine.base import MAX_CONCURRENT_RUNS, BaseEngine, RuntimeInfo
from bshmd.engine.export import INPUT_NAME, OUTPUT_NAME, Export, find_export
from bshmd.engine.upsample import fit_long_side
from bshmd.errors import ModelLoadError

if TYPE_CHECKING:
    import numpy as np

    from bshmd.config import ModelConfig

log = logging.getLogger("bshmd.engine")

SHORT_SIDE_STEP = 8
MAX_COMPILED = 6
_OUT_OF_MEMORY = ("out of memory", "failed to allocate", "bad_alloc")


def import_ov() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise ModelLoadError(f"model.runtime openvino needs the openvino package ({exc}): "
                             "pip install 'bshmd[openvino]'") from exc
    return openvino


class _Compiled:
    """One size compiled, with idle infer requests for the engine's run threads."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.idle: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def run(self, image: np.ndarray) -> np.ndarray:
        try:
            request = self.idle.get_nowait()
        except queue.Empty:
            request = self.compiled.create_infer_request()
        try:
            request.infer({INPUT_NAME: image.astype("float32")})
            return request.get_tensor(OUTPUT_NAME).data[:, :, 3].copy()
        finally:
            self.idle.put(request)


class OpenVinoEngine(BaseEngine):
    """The export read once; compiled per input size on first use."""

    def __init__(self, model_file: Path, *, max_side: int = 2000, device: str = "auto", precision: str = "fp32",
                 strict: bool = False, threads: int = 0, cache_dir: Path | None = None) -> None:
        started = time.perf_counter()
        ov = import_ov()
        self.model_file = Path(model_file)
        self._core = ov.Core()
        self._device = _choose_device(device, self._core.available_devices, strict=strict)
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            self._core.set_property({"CACHE_DIR": str(cache_dir)})
        try:
            self._model = self._core.read_model(str(self.model_file))
        except Exception as exc:  # openvino raises RuntimeError subclasses of its own
            raise ModelLoadError(f"OpenVINO export {self.model_file} cannot be read ({exc}): "
                                 "delete its folder and run `bshmd model export --to openvino` again") from exc
        check_openvino_contract(self._model, self.model_file)
        self._config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": "f16" if precision == "fp16" else "f32",
            "PERFORMANCE_HINT": "LATENCY",
        }
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = threads
        self._sizes: OrderedDict[tuple[int, int], _Compiled] = OrderedDict()
        self._compiling = threading.Lock()
        # As for ONNX Runtime: on the CPU one request uses every core; more only add buffers.
        runs = 1 if self._device == "CPU" else MAX_CONCURRENT_RUNS
        super().__init__(max_side=max_side, info=RuntimeInfo("openvino", self._device, precision), concurrent_runs=runs)
        self.load_seconds = time.perf_counter() - started
        log.info("model loaded from %s in %.2f s (%s)", self.model_file, self.load_seconds, self.info.describe())

    @classmethod
    def from_graph(cls, model_cfg: ModelConfig, graph_file: Path) -> OpenVinoEngine:
        export = find_export(model_cfg, graph_file, "openvino", model_cfg.precision)
        return cls.from_export(model_cfg, export, precision=model_cfg.precision)

    @classmethod
    def from_export(cls, model_cfg: ModelConfig, export: Export, *, precision: str,
                    cache: bool = True) -> OpenVinoEngine:
        return cls(export.model_file, max_side=model_cfg.max_side, device=model_cfg.device, precision=precision,
                   strict=model_cfg.strict, threads=model_cfg.intra_op_threads,
                   cache_dir=export.folder / "compiled" if cache else None)

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        if max(height, width) <= self.max_side:
            return height, width
        height, width = fit_long_side(height, width, self.max_side)
        if height >= width:
            return height, _snap(width)
        return _snap(height), width

    # -- the runtime's part ------------------------------------------------------------------

    def _run_one(self, image: np.ndarray) -> np.ndarray:
        return self._compiled(image.shape[0], image.shape[1]).run(image)

    def _compiled(self, height: int, width: int) -> _Compiled:
        with self._compiling:  # one compile at a time; the runs of a batch wait for theirs
            found = self._sizes.get((height, width))
            if found is not None:
                self._sizes.move_to_end((height, width))
                return found
            started = time.perf_counter()
            model = self._model.clone()
            model.reshape({INPUT_NAME: [height, width, 3]})
            compiled = _Compiled(self._core.compile_model(model, self._device, self._config))
            log.info("compiled the network for %d×%d photos on %s in %.2f s", width, height, self._device,
                     time.perf_counter() - started)
            self._sizes[(height, width)] = compiled
            while len(self._sizes) > MAX_COMPILED:
                self._sizes.popitem(last=False)
            return compiled

    def _is_out_of_memory(self, error: BaseException) -> bool:
        text = str(error).lower()
        return isinstance(error, (RuntimeError, MemoryError)) and any(mark in text for mark in _OUT_OF_MEMORY)

    def _release(self) -> None:
        self._sizes.clear()


def _snap(side: int) -> int:
    return max(SHORT_SIDE_STEP, round(side / SHORT_SIDE_STEP) * SHORT_SIDE_STEP)


def _choose_device(device: str, available: list[str], *, strict: bool) -> str:
    """``model.device`` as OpenVINO names it: CPU, or GPU / GPU.N where OpenVINO sees that card."""
    if device in ("auto", "cpu"):  # an integrated GPU is often slower than the cores beside it
        return "CPU"
    index = device.partition(":")[2]
    wanted = f"GPU.{index}" if index else "GPU"
    if wanted in available or (wanted == "GPU.0" and "GPU" in available):
        return wanted if wanted in available else "GPU"
    if strict:
        raise ModelLoadError(f"model.device is {device!r} but OpenVINO sees {', '.join(available)}: "
                             "set model.device to auto or cpu, or set model.strict to false")
    log.warning("model.device %s: OpenVINO sees no such device (it sees %s); running on the CPU",
                device, ", ".join(available))
    return "CPU"


def check_openvino_contract(model: Any, model_file: Path) -> None:
    """BSHM's input and output by name, element type and rank, or a ModelLoadError saying which."""
    for ports, name, dtype, channels in ((model.inputs, INPUT_NAME, "f32", 3), (model.outputs, OUTPUT_NAME, "u8", 4)):
        found = {port.get_any_name(): port for port in ports}
        if name not in found:
            raise ModelLoadError(f"OpenVINO export {model_file} has no {name} (it has {', '.join(found)}): "
                                 "run `bshmd model export --to openvino` again")
        port = found[name]
        shape = port.get_partial_shape()
        element = port.get_element_type().get_type_name()
        last = shape[shape.rank.get_length() - 1] if shape.rank.is_static else None
        if element != dtype or (shape.rank.is_static and (shape.rank.get_length() != 3 or (
                last is not None and last.is_static and last.get_length() != channels))):
            raise ModelLoadError(f"OpenVINO export {model_file}: {name} is {element} {shape}, expected "
                                 f"{dtype} (H, W, {channels}): run `bshmd model export --to openvino` again")
