"""GPU memory, utilisation and temperature for /metrics, read through NVML at each scrape.

Only where NVML answers (the ``gpu`` extra, nvidia-ml-py, and an NVIDIA driver) and sees at
least one GPU are the gauges there at all: a CPU host's /metrics has no empty GPU series.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("bshmd.metrics")

GPU_METRICS = ("bshmd_gpu_memory_used_bytes", "bshmd_gpu_memory_total_bytes", "bshmd_gpu_utilization_ratio",
               "bshmd_gpu_temperature_celsius")


def _nvml() -> Any | None:
    """The initialised ``pynvml`` module, or None where there is no NVML or no GPU."""
    try:
        import pynvml

        pynvml.nvmlInit()
        if pynvml.nvmlDeviceGetCount() == 0:
            pynvml.nvmlShutdown()
            return None
    except Exception:  # no package, no libnvidia-ml, no driver: all mean "no GPU to report"
        return None
    return pynvml


class GpuCollector:
    """A prometheus-client collector of each GPU's memory, utilisation and temperature."""

    def __init__(self, nvml: Any) -> None:
        self._nvml = nvml

    def describe(self) -> list[Any]:
        return []  # no scrape at registration: NVML is asked when /metrics is

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        nvml = self._nvml
        used = GaugeMetricFamily("bshmd_gpu_memory_used_bytes", "GPU memory in use (all processes).", labels=["gpu"])
        total = GaugeMetricFamily("bshmd_gpu_memory_total_bytes", "GPU memory in all.", labels=["gpu"])
        busy = GaugeMetricFamily("bshmd_gpu_utilization_ratio",
                                 "Share of the last sample period the GPU was running kernels.", labels=["gpu"])
        heat = GaugeMetricFamily("bshmd_gpu_temperature_celsius", "GPU core temperature.", labels=["gpu"])
        try:
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                label = [str(index)]
                used.add_metric(label, float(memory.used))
                total.add_metric(label, float(memory.total))
                busy.add_metric(label, nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0)
                heat.add_metric(label, float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)))
        except Exception as exc:  # a GPU fallen off the bus must not break /metrics
            log.debug("NVML read failed: %s", exc)
        yield from (used, total, busy, heat)


def register_gpu_collector(registry: Any) -> bool:
    """Add the GPU gauges to ``registry`` where NVML sees a GPU; whether it did."""
    nvml = _nvml()
    if nvml is None:
        return False
    registry.register(GpuCollector(nvml))
    return True
