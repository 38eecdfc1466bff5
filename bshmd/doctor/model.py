"""The model file and the runtime that runs it: the graph is there and pinned, TensorFlow
imports, and the devices it sees are the ones ``model.device`` asks for."""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
from pathlib import Path

from bshmd.config import Config
from bshmd.doctor.check import Check, Status
from bshmd.errors import BshmdError


def model_checks(config: Config) -> list[Check]:
    from bshmd.engine.loader import GRAPH_FILE
    from bshmd.engine.source import cached_model_dir

    model = config.model
    if model.path is not None:
        graph = model.path / GRAPH_FILE
        where = "model.path"
    else:
        try:
            graph = cached_model_dir(model) / GRAPH_FILE
        except BshmdError:
            return [Check("FAIL", "model", f"{model.id} is not in the cache {model.cache_dir}",
                          f"run `bshmd model fetch -c FILE` on a host with network access, or place "
                          f"{GRAPH_FILE} in a folder and set model.path to it")]
        where = "model.cache_dir"
    if not graph.is_file():
        return [Check("FAIL", "model", f"{graph} ({where}) is missing",
                      f"place BSHM's {GRAPH_FILE} there, or unset model.path and run `bshmd model fetch`")]
    try:
        digest = _sha256(graph)
    except OSError as exc:
        return [Check("FAIL", "model", f"{graph} cannot be read ({exc.strerror})",
                      "make it readable by the service user (chmod a+r)")]
    size = f"{graph.stat().st_size / 1e6:.1f} MB"
    if model.sha256 is None:
        return [Check("OK", "model", f"{graph} ({size}, sha256 {digest}; not pinned: set model.sha256 to pin it)")]
    if digest != model.sha256.lower():
        return [Check("FAIL", "model", f"{graph} has sha256 {digest}, model.sha256 expects {model.sha256.lower()}",
                      "replace the file (`bshmd model fetch`) or correct model.sha256")]
    return [Check("OK", "model", f"{graph} ({size}, sha256 matches model.sha256)")]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def tensorflow_checks(config: Config) -> list[Check]:
    try:
        from bshmd.engine.tf import import_tf

        tf = import_tf()
    except Exception as exc:  # an import can fail in many ways; each is the same finding
        return [Check("FAIL", "tensorflow", f"cannot be imported ({type(exc).__name__}: {exc})",
                      "reinstall: .venv/bin/pip install 'tensorflow>=2.15,<3'")]
    checks = [Check("OK", "tensorflow", f"{tf.__version__} imports")]
    gpus = tf.config.list_physical_devices("GPU")
    wants_gpu = config.model.device.startswith("gpu")
    if gpus:
        names = []
        for index, gpu in enumerate(gpus):
            details = tf.config.experimental.get_device_details(gpu)
            names.append(f"GPU:{index} {details.get('device_name', '?')}{_gpu_memory(index)}")
        checks.append(Check("OK", "devices", "; ".join(names)))
        return checks
    missing = _missing_cuda_libraries(tf)
    if config.model.device == "cpu":
        checks.append(Check("OK", "devices", "CPU only, as model.device: cpu asks"))
    else:
        status: Status = "FAIL" if wants_gpu else "WARN"
        detail = "no GPU visible: inference runs on the CPU" if not wants_gpu else (
            f"model.device is {config.model.device} but TensorFlow sees no GPU")
        why = f" ({missing})" if missing else ""
        checks.append(Check(status, "devices", detail + why,
                            "install the NVIDIA driver and `.venv/bin/pip install 'tensorflow[and-cuda]>=2.15,<3'`, "
                            "or set model.device: cpu"))
    return checks


def _gpu_memory(index: int) -> str:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ""
    try:
        out = subprocess.run([smi, f"--id={index}", "--query-gpu=memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f", {out}" if out else ""


def _missing_cuda_libraries(tf: object) -> str:
    """Why TensorFlow sees no GPU, as far as the build and the dynamic loader tell."""
    build = getattr(getattr(tf, "sysconfig", None), "get_build_info", dict)()
    if not build.get("is_cuda_build"):
        return "this TensorFlow build has no CUDA support"
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no NVIDIA driver: libcuda.so.1 not found"
    return "the NVIDIA driver is there: CUDA runtime or cuDNN libraries missing?"
