"""What the daemon knows about its own health, in one place.

The main loop, the HTTP endpoints, ``STATUS=`` and the systemd watchdog all read the same
``ServiceState``, so ``/readyz``, ``bshmd status`` and systemd never disagree.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bshmd import __version__

# /healthz fails when the main loop has not come round for this long.
LOOP_STALL_SECONDS = 15.0
# ... or when one inference call has run this long: a hung GPU call cannot be interrupted,
# only restarted. Decoding and writing (a 61 MP photo's seconds) run beside the main loop and
# the model sees at most model.max_side pixels, so no healthy batch comes near it.
INFERENCE_STALL_SECONDS = 600.0
# Below this much free space an output folder counts as full: a result may be larger.
LOW_DISK_BYTES = 256 * 1024 * 1024

PHASES = ("starting", "opening ledger", "loading model", "running", "reloading", "stopping")


@dataclass
class ServiceState:
    """Shared, thread-safe view of the running daemon."""

    instance_id: str
    pipeline_health: Callable[[], Any] | None = None  # -> PipelineHealth
    ingest_health: Callable[[], dict[str, Any]] | None = None
    ledger_status: Callable[[], dict[str, Any]] | None = None  # cached: never waits for the database
    output_folders: Callable[[], list[Path]] = list
    phase: str = "starting"
    model_loaded: bool = False
    model_load_seconds: float | None = None
    started_at: float = field(default_factory=time.time)
    started_monotonic: float = field(default_factory=time.monotonic)
    last_loop: float = field(default_factory=time.monotonic)
    disk_conditions: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- updated by the main loop -----------------------------------------------------

    def loop_tick(self) -> None:
        self.last_loop = time.monotonic()

    def set_phase(self, phase: str) -> None:
        assert phase in PHASES, phase
        self.phase = phase

    def check_disks(self) -> None:
        """Note output folders that are (nearly) full. Folders the ingestor reports as
        unavailable are skipped: a stat on a dead NAS mount can hang."""
        unavailable = {Path(p) for p, s in self._folders().items() if not s.get("available", True)}
        found = []
        for folder in self.output_folders():
            if any(folder == u or u in folder.parents for u in unavailable):
                continue
            try:
                free = shutil.disk_usage(folder).free
            except OSError:
                continue  # not created yet, or the share is gone: ingest health says which
            if free < LOW_DISK_BYTES:
                found.append(f"disk full: {folder} ({free // (1024 * 1024)} MiB free)")
        with self._lock:
            self.disk_conditions = found

    # --- read by endpoints, STATUS= and the watchdog -----------------------------------

    def pipeline(self) -> Any | None:
        return self.pipeline_health() if self.pipeline_health else None

    def _ingest(self) -> dict[str, Any]:
        return (self.ingest_health() if self.ingest_health else None) or {}

    def _ledger(self) -> dict[str, Any]:
        return (self.ledger_status() if self.ledger_status else None) or {}

    def _folders(self) -> dict[str, dict[str, Any]]:
        return {str(k): dict(v) for k, v in (self._ingest().get("folders") or {}).items()}

    def liveness(self, now: float | None = None) -> tuple[bool, str]:
        now = time.monotonic() if now is None else now
        stalled = now - self.last_loop
        if stalled > LOOP_STALL_SECONDS:
            return False, f"main loop unresponsive for {stalled:.0f} s"
        health = self.pipeline()
        started = getattr(health, "inference_started", None) if health is not None else None
        if started is not None and now - started > INFERENCE_STALL_SECONDS:
            return False, f"inference running for {now - started:.0f} s"
        return True, "alive"

    def readiness(self) -> tuple[bool, list[str]]:
        reasons = []
        if not self.model_loaded:
            reasons.append(f"model not loaded ({self.phase})")
        elif self.phase not in ("running", "reloading"):
            reasons.append(self.phase)
        folders = self._folders()
        if self.model_loaded and self.ingest_health and not folders:
            reasons.append("no folder is watched")
        for path, state in folders.items():
            if not state.get("available", False):
                reasons.append(f"folder unavailable: {path}")
            elif not state.get("watching", False):
                reasons.append(f"folder not watched: {path}")
        ledger = self._ledger()
        if ledger and not ledger.get("reachable", True):
            reasons.append(f"job ledger unreachable: {ledger.get('database')}")
        return not reasons, reasons

    def watchdog_verdict(self, wedge_seconds: float, now: float | None = None) -> tuple[bool, str]:
        """Whether systemd's watchdog may be told all is well.

        An inference call cannot be interrupted from Python: if one hangs (a GPU fault, a
        driver stuck in a syscall), only a restart helps. So the pings stop once the batch in
        flight has run longer than ``wedge_seconds``, and systemd restarts the service.
        """
        now = time.monotonic() if now is None else now
        alive, why = self.liveness(now)
        if not alive:
            return False, why
        health = self.pipeline()
        started = getattr(health, "inference_started", None) if health is not None else None
        if started is not None and now - started > wedge_seconds:
            return False, f"inference running for {now - started:.0f} s"
        return True, "healthy"

    def conditions(self) -> list[str]:
        found = []
        for path, state in self._folders().items():
            if not state.get("available", True):
                found.append(f"folder unavailable: {path}")
            if state.get("output_available") is False:
                found.append(f"output unavailable: {path}: its files wait")
            if state.get("refused"):
                found.append(f"output tracked by another ledger: {path}")
        ledger = self._ledger()
        if ledger and not ledger.get("reachable", True):
            found.append(f"job ledger unreachable: {ledger.get('database')}")
        with self._lock:
            found.extend(self.disk_conditions)
        health = self.pipeline()
        if getattr(health, "disk_full", False):
            found.append("disk full: writing results paused, inputs wait")
        if getattr(health, "output_unavailable", False):
            found.append("output unavailable: writing results paused, inputs wait")
        if getattr(health, "quarantine_unavailable", False):
            found.append("quarantine unavailable: inputs to quarantine wait in place, retried with backoff")
        return found

    def counts(self) -> dict[str, int]:
        health = self.pipeline()
        counts = {}
        for name in ("queued", "in_flight", "processed", "quarantined", "released"):
            value = getattr(health, name, 0) or 0
            # in_flight is counted per stage: intake, decode, batch, infer, write.
            counts[name] = int(sum(value.values()) if isinstance(value, dict) else value)
        return counts

    def stage_depths(self) -> dict[str, int]:
        value = getattr(self.pipeline(), "in_flight", None)
        return dict(value) if isinstance(value, dict) else {}

    def status_line(self) -> str:
        """The one line systemctl status shows (``STATUS=``)."""
        if self.phase != "running":
            head = self.phase
        else:
            c = self.counts()
            head = f"queued {c['queued']}, in flight {c['in_flight']}, processed {c['processed']}, " \
                   f"quarantined {c['quarantined']}"
        conditions = self.conditions()
        return "; ".join([head, *conditions])

    def snapshot(self) -> dict[str, Any]:
        """The ``/status`` document."""
        now = time.monotonic()
        ready, reasons = self.readiness()
        ingest = self._ingest()
        health = self.pipeline()
        inference_started = getattr(health, "inference_started", None) if health is not None else None
        return {
            "instance": self.instance_id,
            "version": __version__,
            "phase": self.phase,
            "ready": ready,
            "not_ready_because": reasons,
            "started_at": self.started_at,
            "uptime_seconds": round(now - self.started_monotonic, 3),
            "model": {"loaded": self.model_loaded, "load_seconds": self.model_load_seconds},
            "counts": self.counts(),
            "stages": self.stage_depths(),
            "inference_running_seconds": (
                round(now - inference_started, 3) if inference_started is not None else None),
            "pending_settle": ingest.get("pending"),
            "last_rescan": ingest.get("last_rescan"),
            "folders": self._folders(),
            "ledger": self._ledger(),
            "conditions": self.conditions(),
        }


class ServiceCollector:
    """Prometheus gauges read from the service state at scrape time."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        ready, _ = self.state.readiness()
        yield GaugeMetricFamily("bshmd_ready", "1 when the model is loaded, every folder is watched and the ledger answers.",
                                value=1 if ready else 0)
        yield GaugeMetricFamily("bshmd_uptime_seconds", "Seconds since the daemon started.",
                                value=time.monotonic() - self.state.started_monotonic)
        available = GaugeMetricFamily("bshmd_folder_available", "1 while an input folder can be read.",
                                      labels=["folder"])
        watching = GaugeMetricFamily("bshmd_folder_watching", "1 while an input folder is watched.",
                                     labels=["folder"])
        for path, folder in self.state._folders().items():
            available.add_metric([path], 1 if folder.get("available") else 0)
            watching.add_metric([path], 1 if folder.get("watching") else 0)
        yield available
        yield watching
        ledger = self.state._ledger()
        if ledger:
            yield GaugeMetricFamily("bshmd_ledger_reachable", "1 while the job ledger answers.",
                                    value=1 if ledger.get("reachable") else 0)
            yield GaugeMetricFamily("bshmd_ledger_claims_held", "Claims this instance holds in the ledger.",
                                    value=ledger.get("held", 0))
            jobs = GaugeMetricFamily("bshmd_ledger_jobs", "Rows of the job ledger by folder and state "
                                     "(every instance's).", labels=["folder", "state"])
            for folder, counts in (ledger.get("jobs") or {}).items():
                for state_name in ("ready", "claimed", "done", "released", "expired"):
                    jobs.add_metric([folder, state_name], counts.get(state_name, 0))
            yield jobs
        pending = self.state._ingest().get("pending")
        if pending is not None:
            yield GaugeMetricFamily("bshmd_files_settling", "Files seen and waiting to settle.", value=pending)
