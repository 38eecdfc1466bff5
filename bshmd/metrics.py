"""Prometheus metrics of one bshmd process, kept in their own registry.

Each ``Metrics`` owns a fresh ``CollectorRegistry`` (never prometheus-client's global one), so
two pipelines in one process — tests, or a one-shot run beside a daemon — never collide.
The service serves ``metrics.registry`` on ``/metrics``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Seconds: from a few milliseconds (small JPEG decode) to minutes (huge TIFF on a slow share).
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class Metrics:
    """The counters, gauges and histograms the pipeline and the service update."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.files_seen = Counter(
            "bshmd_files_seen", "Input files handed to the pipeline.", registry=r)
        self.files_processed = Counter(
            "bshmd_files_processed", "Input files turned into results.", ["folder"], registry=r)
        self.files_quarantined = Counter(
            "bshmd_files_quarantined", "Input files sent to quarantine.", ["folder", "reason"], registry=r)
        self.files_released = Counter(
            "bshmd_files_released", "Input files given back unprocessed (shutdown, disk full).",
            ["reason"], registry=r)
        self.queue_depth = Gauge(
            "bshmd_queue_depth", "Files waiting in or passing through each pipeline stage.", ["stage"],
            registry=r)
        self.batch_size = Histogram(
            "bshmd_batch_size", "Images per inference batch.",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 128, 256), registry=r)
        self.decode_seconds = Histogram(
            "bshmd_decode_seconds", "Time to read and decode one input.", buckets=_DURATION_BUCKETS, registry=r)
        self.inference_seconds = Histogram(
            "bshmd_inference_seconds", "Time of one inference batch.", buckets=_DURATION_BUCKETS, registry=r)
        self.write_seconds = Histogram(
            "bshmd_write_seconds", "Time to encode and write one input's results.",
            buckets=_DURATION_BUCKETS, registry=r)
        self.latency_seconds = Histogram(
            "bshmd_latency_seconds", "Time from a file being settled to its results being written.",
            buckets=_LATENCY_BUCKETS, registry=r)
        self.model_load_seconds = Gauge(
            "bshmd_model_load_seconds", "Time the model took to load and warm up.", registry=r)
        self.last_success_time = Gauge(
            "bshmd_last_success_time", "Unix time of the last file turned into results.", registry=r)
        self.disk_full = Gauge(
            "bshmd_disk_full", "1 while writing results fails with 'no space left on device'.", registry=r)
        self.files_backing_off = Gauge(
            "bshmd_files_backing_off",
            "Input files given back because their quarantine or output folder failed, waiting to be retried.",
            ["reason"], registry=r)
        self.stage_timeouts = Counter(
            "bshmd_stage_timeouts", "Files abandoned because a stage took too long.", ["stage"], registry=r)
        self.internal_errors = Counter(
            "bshmd_internal_errors", "Unexpected errors caught while handling one file.", ["stage"], registry=r)
        self.runtime_info = Gauge(
            "bshmd_runtime_info", "1 for what runs the network: its runtime, device and precision.",
            ["runtime", "device", "precision"], registry=r)

    def set_runtime(self, info: object) -> None:
        """Labels from the engine's RuntimeInfo (an engine without one leaves them unset)."""
        fields = ("runtime", "device", "precision")
        if all(hasattr(info, name) for name in fields):
            self.runtime_info.labels(*(str(getattr(info, name)) for name in fields)).set(1)
