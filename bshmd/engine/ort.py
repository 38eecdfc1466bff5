"""The ONNX Runtime runtime: the graph's ONNX export (``bshmd model export --to onnx``).

``model.providers`` lists execution providers in order of preference. One that this
onnxruntime build lacks is skipped with one warning naming it (``model.strict: true`` refuses
to start instead); the CPU provider is always last. TensorRT builds an engine per input
shape: its engines and timing cache go beside the export, shape profiles span the sizes
bshmd feeds (1 px up to ``model.max_side`` on each side), and fp16 is ``trt_fp16_enable``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from bshmd.engine.base import MAX_CONCURRENT_RUNS, BaseEngine, RuntimeInfo
from bshmd.engine.export import INPUT_NAME, OUTPUT_NAME, Export, find_export
from bshmd.errors import ModelLoadError

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

    from bshmd.config import ModelConfig

log = logging.getLogger("bshmd.engine")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
_OUT_OF_MEMORY = ("out of memory", "failed to allocate memory", "bad_alloc", "cudaerrormemoryallocation")


def import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelLoadError(f"model.runtime onnxruntime needs the onnxruntime package ({exc}): "
                             "pip install 'bshmd[onnx]' (or onnxruntime-gpu for CUDA and TensorRT)") from exc
    return onnxruntime


def choose_providers(asked: tuple[str, ...], available: list[str], *, strict: bool) -> list[str]:
    """``asked`` less what ``available`` lacks (one warning, or a ModelLoadError when strict); CPU last."""
    missing = [name for name in asked if name not in available]
    if missing and strict:
        raise ModelLoadError(
            f"model.providers asks for {', '.join(missing)}, which this onnxruntime does not offer "
            f"(it offers {', '.join(available)}); install onnxruntime-gpu with its CUDA/TensorRT "
            f"libraries, or remove it from model.providers, or set model.strict to false")
    chosen = [name for name in asked if name in available]
    if CPU not in chosen:
        chosen.append(CPU)
    if missing:
        log.warning("execution provider %s is not available here (onnxruntime offers %s); using %s",
                    ", ".join(missing), ", ".join(available), chosen[0])
    return chosen


class OnnxRuntimeEngine(BaseEngine):
    """One ``InferenceSession`` on the export; runs of a batch share it from the engine's threads."""

    def __init__(self, model_file: Path, *, max_side: int = 2000, providers: tuple[str, ...] = (CPU,),
                 strict: bool = False, precision: str = "fp32", device: str = "auto",
                 intra_op_threads: int = 0, inter_op_threads: int = 0, cache_dir: Path | None = None) -> None:
        started = time.perf_counter()
        ort = import_ort()
        self.model_file = model_file
        chosen = choose_providers(tuple(providers), ort.get_available_providers(), strict=strict)
        device_id = int(device.partition(":")[2] or 0) if device.startswith("gpu") else 0
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.log_severity_level = 3  # errors only: its warnings about fallbacks are ours to say
        # Idle pool threads sleep instead of spinning: between runs the cores belong to the
        # decode and encode workers, and spinning there is CPU time taken from them.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        provider_options = [self._options(name, device_id, precision, max_side, cache_dir) for name in chosen]
        try:
            self._session = ort.InferenceSession(str(model_file), sess_options=options, providers=chosen,
                                                 provider_options=provider_options)
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            raise ModelLoadError(f"ONNX export {model_file} cannot be loaded ({_first_line(exc)}): "
                                 f"delete its folder and run `bshmd model export` again") from exc
        check_onnx_contract(self._session, model_file)
        used = self._session.get_providers()
        # A provider present in the build can still fail to start (no driver): ORT drops it.
        dropped = [name for name in chosen if name not in used]
        if dropped and strict:
            raise ModelLoadError(f"execution provider {', '.join(dropped)} could not start (no GPU or "
                                 f"driver?); set model.strict to false to run on {used[0]}")
        if dropped:
            log.warning("execution provider %s could not start; running on %s", ", ".join(dropped), used[0])
        # On the CPU one run already spreads over every core; concurrent runs only multiply
        # the activations held at once (measured at 1080p on 2 cores: 4 at a time, 760 MiB
        # peak and 0.23 CPU-s a photo; one at a time, 383 MiB and 0.26 CPU-s).
        runs = 1 if used[0] == CPU else MAX_CONCURRENT_RUNS
        super().__init__(max_side=max_side, info=RuntimeInfo("onnxruntime", used[0], precision), concurrent_runs=runs)
        self.load_seconds = time.perf_counter() - started
        log.info("model loaded from %s in %.2f s (%s)", model_file, self.load_seconds, self.info.describe())

    @classmethod
    def from_graph(cls, model_cfg: ModelConfig, graph_file: Path) -> OnnxRuntimeEngine:
        export = find_export(model_cfg, graph_file, "onnxruntime", model_cfg.precision)
        return cls.from_export(model_cfg, export, precision=model_cfg.precision)

    @classmethod
    def from_export(cls, model_cfg: ModelConfig, export: Export, *, precision: str,
                    cache: bool = True) -> OnnxRuntimeEngine:
        return cls(export.model_file, max_side=model_cfg.max_side, providers=model_cfg.providers,
                   strict=model_cfg.strict, precision=precision, device=model_cfg.device,
                   intra_op_threads=model_cfg.intra_op_threads, inter_op_threads=model_cfg.inter_op_threads,
                   cache_dir=export.folder / "tensorrt-cache" if cache else None)

    @staticmethod
    def _options(name: str, device_id: int, precision: str, max_side: int, cache_dir: Path | None) -> dict[str, Any]:
        if name == CUDA:
            return {"device_id": device_id, "cudnn_conv_algo_search": "HEURISTIC"}
        if name != TENSORRT:
            return {}
        options: dict[str, Any] = {
            "device_id": device_id,
            "trt_fp16_enable": precision == "fp16",
            # One profile from a pixel to max_side on each side: every size bshmd feeds fits it.
            "trt_profile_min_shapes": f"{INPUT_NAME}:1x1x3",
            "trt_profile_opt_shapes": f"{INPUT_NAME}:{max_side * 9 // 16}x{max_side}x3",  # 16:9 landscape
            "trt_profile_max_shapes": f"{INPUT_NAME}:{max_side}x{max_side}x3",
        }
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            options.update({"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache_dir),
                            "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache_dir)})
        return options

    # -- the runtime's part ------------------------------------------------------------------

    def _run_one(self, image: np.ndarray) -> np.ndarray:
        (rgba,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: image.astype("float32")})
        return rgba[:, :, 3].copy()

    def _is_out_of_memory(self, error: BaseException) -> bool:
        text = str(error).lower()
        return type(error).__module__.startswith("onnxruntime") and any(mark in text for mark in _OUT_OF_MEMORY)

    def _release(self) -> None:
        del self._session


def check_onnx_contract(session: Any, model_file: Path) -> None:
    """BSHM's input and output by name, element type and rank, or a ModelLoadError saying which."""
    expected = ((session.get_inputs(), INPUT_NAME, "tensor(float)", 3),
                (session.get_outputs(), OUTPUT_NAME, "tensor(uint8)", 4))
    for values, name, dtype, channels in expected:
        found = {value.name: value for value in values}
        if name not in found:
            raise ModelLoadError(f"ONNX export {model_file} has no {name} (it has {', '.join(found)}): "
                                 "it is not an export of BSHM's graph; run `bshmd model export` again")
        value = found[name]
        shape = list(value.shape)
        if value.type != dtype or len(shape) != 3 or shape[-1] not in (channels, None) and not isinstance(shape[-1], str):
            raise ModelLoadError(f"ONNX export {model_file}: {name} is {value.type} {shape}, expected "
                                 f"{dtype} (H, W, {channels}): run `bshmd model export` again")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
