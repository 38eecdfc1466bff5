"""The runtime in use as a metric's labels, the doctor's runtime rows, and GPU gauges only with a GPU."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest

from bshmd.config import ModelConfig
from bshmd.engine.base import RuntimeInfo
from bshmd.engine.report import runtime_checks
from bshmd.engine.telemetry import _nvml, register_gpu_collector
from bshmd.metrics import Metrics


def test_the_runtime_info_metric_carries_runtime_device_and_precision() -> None:
    metrics = Metrics()
    metrics.set_runtime(RuntimeInfo("onnxruntime", "CPUExecutionProvider", "fp32"))
    text = generate_latest(metrics.registry).decode()
    assert 'bshmd_runtime_info{device="CPUExecutionProvider",precision="fp32",runtime="onnxruntime"} 1.0' in text


def test_without_a_gpu_there_are_no_gpu_series_and_metrics_still_work() -> None:
    assert _nvml() is None, "this test expects a host without an NVIDIA GPU"
    metrics = Metrics()
    assert register_gpu_collector(metrics.registry) is False
    metrics.files_seen.inc()
    text = generate_latest(metrics.registry).decode()
    assert "bshmd_gpu_" not in text and "bshmd_files_seen_total 1.0" in text


def test_doctor_rows_name_missing_providers_and_a_missing_export(unet_dir: Path, tmp_path: Path) -> None:
    config = ModelConfig(path=unet_dir, export_dir=tmp_path, runtime="onnxruntime",
                         providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
    rows = {name: (status, detail, fix) for status, name, detail, fix in runtime_checks(config)}
    assert rows["runtime"][0] == "OK" and "CPUExecutionProvider" in rows["runtime"][1]
    assert rows["providers"][0] == "WARN" and "CUDAExecutionProvider" in rows["providers"][1]
    assert rows["export"][0] == "FAIL" and "bshmd model export -c FILE --to onnx" in rows["export"][1]
    strict = {name: status for status, name, _, _ in runtime_checks(config.model_copy(update={"strict": True}))}
    assert strict["providers"] == "FAIL"
    (status, _, detail, _), = runtime_checks(ModelConfig())
    assert status == "OK" and detail.startswith("tensorflow")
