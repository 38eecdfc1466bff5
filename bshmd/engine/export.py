"""``bshmd model export``: the frozen graph converted for ONNX Runtime or OpenVINO, checked, with a manifest.

tf2onnx converts the graph; OpenVINO's ``convert_model`` reads that ONNX. Each export lives in
its own folder, ``<export_dir>/<graph SHA-256, 16 hex>/<onnx|openvino>-<precision>/``, beside a
``manifest.json`` that names the graph it was made from by its full SHA-256, the tool versions,
the input and output, and the largest matte difference from TensorFlow measured at several
photo sizes. A daemon that runs another runtime loads only the export of its own graph.

An fp16 export keeps float32 input and uint8 output (the contract), with float16 weights and
arithmetic inside: for ONNX through onnxconverter-common, for OpenVINO as compressed weights
plus an f16 inference precision hint where the device has it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bshmd.engine.loader import GRAPH_FILE, INPUT_TENSOR, OUTPUT_TENSOR
from bshmd.errors import ModelLoadError

if TYPE_CHECKING:
    from bshmd.config import ModelConfig

log = logging.getLogger("bshmd.engine")

MANIFEST = "manifest.json"
INPUT_NAME = "input_image"  # the export's names: TensorRT's shape profiles cannot hold a ':'
OUTPUT_NAME = "output_png"
MODEL_FILES = {"onnx": "model.onnx", "openvino": "model.xml"}
RUNTIME_FORMAT = {"onnxruntime": "onnx", "openvino": "openvino"}
# (width, height) of the photos an export is compared on: tiny, odd, landscape, portrait, large.
CHECK_SIZES = ((31, 17), (333, 250), (480, 640), (1280, 720), (1920, 1080))
OPSET = 17
_CHUNK = 1 << 20


def graph_sha256(graph_file: Path) -> str:
    digest = hashlib.sha256()
    try:
        with Path(graph_file).open("rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise ModelLoadError(f"model file {graph_file} cannot be read ({exc.strerror})") from exc
    return digest.hexdigest()


def export_root(model_cfg: ModelConfig) -> Path:
    return Path(model_cfg.export_dir) if model_cfg.export_dir is not None else Path(model_cfg.cache_dir) / "exports"


def export_folder(model_cfg: ModelConfig, sha256: str, fmt: str, precision: str) -> Path:
    return export_root(model_cfg) / sha256[:16] / f"{fmt}-{precision}"


def export_command(fmt: str, precision: str) -> str:
    return f"bshmd model export -c FILE --to {fmt} --precision {precision}"


@dataclass(frozen=True)
class Export:
    """An export found for the configured graph: its model file and its manifest."""

    model_file: Path
    manifest: dict[str, Any]

    @property
    def folder(self) -> Path:
        return self.model_file.parent


def find_export(model_cfg: ModelConfig, graph_file: Path, runtime: str, precision: str) -> Export:
    """The export of ``graph_file`` for ``runtime``, or a ModelLoadError naming the command to run."""
    fmt = RUNTIME_FORMAT[runtime]
    sha256 = (model_cfg.sha256 or graph_sha256(graph_file)).lower()
    folder = export_folder(model_cfg, sha256, fmt, precision)
    fix = f"run `{export_command(fmt, precision)}` with this configuration file"
    manifest_file = folder / MANIFEST
    if not manifest_file.is_file():
        raise ModelLoadError(
            f"model.runtime {runtime} needs a {fmt} {precision} export of {graph_file} "
            f"(SHA-256 {sha256}), and {folder} holds none: {fix}")
    try:
        manifest = json.loads(manifest_file.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"export manifest {manifest_file} cannot be read ({exc}): {fix}") from exc
    if manifest.get("source_sha256") != sha256:
        raise ModelLoadError(
            f"the export in {folder} was made from a graph with SHA-256 {manifest.get('source_sha256')}, "
            f"not from {graph_file} (SHA-256 {sha256}): {fix}")
    model_file = folder / MODEL_FILES[fmt]
    if not model_file.is_file():
        raise ModelLoadError(f"export {folder} has a manifest but no {model_file.name}: {fix}")
    return Export(model_file, manifest)


# -- making an export ---------------------------------------------------------------------------


def export_model(model_cfg: ModelConfig, graph_file: Path, *, to: str, precision: str,
                 sizes: tuple[tuple[int, int], ...] = CHECK_SIZES) -> Export:
    """Convert ``graph_file``, compare it with TensorFlow at ``sizes`` and write it with its manifest."""
    from bshmd.engine.loader import read_graph_def

    sha256 = graph_sha256(graph_file)
    if model_cfg.sha256 is not None and model_cfg.sha256.lower() != sha256:
        raise ModelLoadError(f"model file {graph_file} has SHA-256 {sha256}, but model.sha256 expects "
                             f"{model_cfg.sha256.lower()}: replace the file or correct model.sha256")
    started = time.perf_counter()
    onnx_model = to_onnx(read_graph_def(graph_file))
    if precision == "fp16" and to == "onnx":  # OpenVINO halves the weights itself (save_model)
        onnx_model = onnx_to_fp16(onnx_model)
    target = export_folder(model_cfg, sha256, to, precision)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        onnx_file = staging / MODEL_FILES["onnx"]
        onnx_file.write_bytes(onnx_model.SerializeToString())
        if to == "openvino":
            _onnx_to_openvino(onnx_file, staging / MODEL_FILES["openvino"], precision)
            onnx_file.unlink()
        model_file = staging / MODEL_FILES[to]
        log.info("converted %s to %s %s in %.1f s; comparing with TensorFlow", graph_file, to, precision,
                 time.perf_counter() - started)
        comparison = compare_with_tensorflow(model_cfg, graph_file, model_file, to, precision, sizes)
        manifest = {
            "format": to,
            "precision": precision,
            "model_file": model_file.name,
            "source_graph": str(graph_file),
            "source_sha256": sha256,
            "tools": _tool_versions(to),
            "input": {"name": INPUT_NAME, "source_name": INPUT_TENSOR, "dtype": "float32", "shape": ["H", "W", 3]},
            "output": {"name": OUTPUT_NAME, "source_name": OUTPUT_TENSOR, "dtype": "uint8", "shape": ["H", "W", 4]},
            "opset": OPSET,
            "comparison": comparison,
            "max_matte_difference": max(row["max_difference"] for row in comparison),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Export(target / MODEL_FILES[to], manifest)


def to_onnx(graph_def: Any) -> Any:
    """The ONNX ModelProto of BSHM's GraphDef, its input and output renamed without ':0'."""
    try:
        import tf2onnx
    except ImportError as exc:
        raise ModelLoadError(f"exporting needs tf2onnx and onnx ({exc}): pip install 'bshmd[onnx]'") from exc
    model, _ = tf2onnx.convert.from_graph_def(
        graph_def, input_names=[INPUT_TENSOR], output_names=[OUTPUT_TENSOR], opset=OPSET)
    renames = {INPUT_TENSOR: INPUT_NAME, OUTPUT_TENSOR: OUTPUT_NAME}
    for value in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        value.name = renames.get(value.name, value.name)
    for node in model.graph.node:
        for field in (node.input, node.output):
            for index, name in enumerate(field):
                if name in renames:
                    field[index] = renames[name]
    return model


def onnx_to_fp16(model: Any) -> Any:
    """Float16 weights and arithmetic inside; float32 in, uint8 out as before."""
    try:
        from onnxconverter_common import float16
    except ImportError as exc:
        raise ModelLoadError(f"an fp16 ONNX export needs onnxconverter-common ({exc}): "
                             "pip install 'bshmd[onnx]'") from exc
    # The scaling in and out (×1/255, ×255, rounding) shares its constants with the clipping
    # that the converter keeps in float32 (Min, Max); it stays float32 with them.
    blocked = [*float16.DEFAULT_OP_BLOCK_LIST, "Mul", "Div", "Round"]
    return float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=blocked)


def _onnx_to_openvino(onnx_file: Path, xml_file: Path, precision: str) -> None:
    try:
        import openvino as ov
    except ImportError as exc:
        raise ModelLoadError(f"an OpenVINO export needs openvino ({exc}): pip install 'bshmd[openvino]'") from exc
    model = ov.convert_model(str(onnx_file))
    # save_model halves the weights by default; an fp32 export keeps them whole.
    ov.save_model(model, str(xml_file), compress_to_fp16=precision == "fp16")


def compare_with_tensorflow(model_cfg: ModelConfig, graph_file: Path, model_file: Path, fmt: str,
                            precision: str, sizes: tuple[tuple[int, int], ...]) -> list[dict[str, Any]]:
    """For each (width, height): the largest matte difference and the share of pixels within 1 level."""
    from bshmd.engine.engine import MattingEngine
    from bshmd.engine.registry import runtime_class

    runtime = {"onnx": "onnxruntime", "openvino": "openvino"}[fmt]
    exported = runtime_class(runtime).from_export(model_cfg, Export(model_file, {}), precision=precision,
                                                  cache=False)
    rows = []
    with MattingEngine(graph_file, max_side=model_cfg.max_side, device="cpu") as reference, exported:
        for seed, (width, height) in enumerate(sizes):
            photo = _check_photo(width, height, seed)
            (expected,), (got,) = reference.predict([photo]), exported.predict([photo])
            difference = abs(expected.astype("int16") - got.astype("int16"))
            rows.append({"size": f"{width}x{height}", "max_difference": int(difference.max()),
                         "within_one": round(float((difference <= 1).mean()), 6)})
    return rows


def _check_photo(width: int, height: int, seed: int) -> Any:
    """A portrait-like photo: a dark ellipse with soft noise on a light backdrop."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    inside = ((xx - width / 2) / (width * 0.28)) ** 2 + ((yy - height * 0.55) / (height * 0.4)) ** 2 <= 1
    image = np.where(inside[:, :, None], np.float32((90, 60, 50)), np.float32((225, 228, 222)))
    image = image + rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _tool_versions(fmt: str) -> dict[str, str]:
    names = ["tensorflow", "tf2onnx", "onnx", "onnxconverter-common"]
    names.append("openvino" if fmt == "openvino" else "onnxruntime")
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def graph_file_of(model_cfg: ModelConfig, *, fetch: bool) -> Path:
    from bshmd.engine.source import resolve_model_dir

    return resolve_model_dir(model_cfg, fetch=fetch) / GRAPH_FILE


def export_command_main(model_cfg: ModelConfig, *, to: str, precision: str) -> str:
    """``bshmd model export``: export the configured graph; what to print (comparison, then the folder)."""
    made = export_model(model_cfg, graph_file_of(model_cfg, fetch=True), to=to, precision=precision)
    lines = [f"{row['size']:>10}: largest matte difference from TensorFlow {row['max_difference']}, "
             f"{100 * row['within_one']:.3f} % of pixels within 1 level" for row in made.manifest["comparison"]]
    return "\n".join([*lines, str(made.folder)])
