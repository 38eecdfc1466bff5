"""``bshmd run``: the daemon's lifecycle, ``startup → main loop → shutdown`` as in uvicorn.

- startup: logging, HTTP endpoint (so ``/healthz`` answers while the model loads), the model
  loaded and warmed in a ``bshmd-model-load`` thread while systemd's start timeout is
  extended, then the pipeline and the folder watches; READY=1 once all of that stands.
- main loop (the main thread): takes signals off the queue, pings systemd's watchdog while
  the pipeline is healthy, refreshes ``STATUS=`` and the disk checks.
- shutdown (SIGTERM/SIGINT): stop intake, finish the batch in flight within
  ``shutdown_timeout``, release the claims of everything else, exit 0. A second signal exits
  at once with 130; results are written atomically, so nothing half-written is left.
- SIGHUP reloads the configuration file: folders and thresholds change in place, the model
  and queued work stay (reload.py decides what applies now and what waits for a restart).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from bshmd import __version__
from bshmd.config import Config
from bshmd.errors import EXIT_FORCED, EXIT_OK, ConfigError
from bshmd.service.health import ServiceCollector, ServiceState
from bshmd.service.signals import SignalQueue, capture_signals
from bshmd.service.systemd import Notifier
from bshmd.timed import CallTimeout, call_with_limit, in_thread

log = logging.getLogger("bshmd.service")

LOOP_TICK_SECONDS = 0.5  # longest the main loop sleeps between looks at its duties
STATUS_EVERY_SECONDS = 5.0
DISK_CHECK_EVERY_SECONDS = 30.0
WATCH_WAIT_SECONDS = 30.0  # READY=1 waits this long at most for every watch to be set
EXTEND_STEP_SECONDS = 60.0
FORCED_EXIT_GRACE_SECONDS = 3.0  # a second signal gives abort() this long before the exit
REVIEW_MOUNT = "/review"


def check_state_dir(config: Config) -> None:
    """Refuse a SQLite ledger on a network or FUSE filesystem (the ledger's own rule)."""
    from bshmd.ledger.local import state_dir_problem

    problem = state_dir_problem(config)
    if problem:
        raise ConfigError(problem)


def _review_app(config: Config) -> Any:
    """The quarantine review page, served by the daemon at /review."""
    from bshmd.review.app import ReviewApp

    return ReviewApp(config)


def run_daemon(config: Config) -> int:
    """Run until SIGTERM/SIGINT; returns the exit status (errors raise ``BshmdError``)."""
    # First: under systemd without systemd-python, refuse before doing anything else.
    notifier = Notifier()
    return Daemon(config, notifier).run()


class Daemon:
    def __init__(self, config: Config, notifier: Notifier) -> None:
        self.config = config
        self.notifier = notifier
        self.instance_id = config.effective_instance_id  # file, else $BSHMD_INSTANCE_ID, else host-pid
        self.state = ServiceState(instance_id=self.instance_id,
                                  output_folders=lambda: [f.output for f in self.config.folders])
        self.signals = SignalQueue(on_force=self._force_exit)
        self.metrics: Any = None
        self.engine: Any = None
        self.pipeline: Any = None
        self.ingestor: Any = None
        self.ledger: Any = None
        self.http: Any = None
        self.http_app: Any = None
        self._intake_closed = threading.Event()
        self._last_status = ""

    # --- lifecycle ---------------------------------------------------------------------------

    def run(self) -> int:
        from bshmd.service.httpserver import check_exposure
        from bshmd.service.logsetup import configure_logging

        configure_logging(self.config.logging)
        check_exposure(self.config.http)
        log.info("bshmd %s starting: instance %s, configuration %s", __version__, self.instance_id,
                 self.config.source)
        with capture_signals(self.signals):
            try:
                if not self._startup():
                    return self._stopped_during_startup()
                self._main_loop()
                return self._shutdown()
            finally:
                self._close()

    def _startup(self) -> bool:
        """Everything up to READY=1; False when a stop signal came first."""
        from bshmd.engine.telemetry import register_gpu_collector
        from bshmd.metrics import Metrics

        self.metrics = Metrics()
        self.metrics.registry.register(ServiceCollector(self.state))
        register_gpu_collector(self.metrics.registry)  # GPU gauges, only where NVML sees a GPU
        self._start_http()
        self._open_ledger()
        if not self._load_model():
            return False
        self._start_pipeline()
        self._wait_for_watches()
        self.state.set_phase("running")
        status = self.state.status_line()
        self.notifier.ready(status)
        self._last_status = status
        log.info("ready: %d folder(s), %s", len(self.config.folders), status)
        return True

    def _start_http(self) -> None:
        if not self.config.http.enabled:
            return
        from bshmd.httpd import HttpServer
        from bshmd.service.httpserver import ServiceApp

        http = self.config.http
        self.http_app = ServiceApp(self.state, self.metrics.registry, token=http.token,
                                   mounts=[(REVIEW_MOUNT, _review_app(self.config))])
        self.http = HttpServer(http.host, http.port, self.http_app)
        self.http.start()
        log.info("http: serving /metrics, /healthz, /readyz, /status and /review on %s", self.http.url)
        log.info("review page: %s%s/", self.http.url, REVIEW_MOUNT)

    def _open_ledger(self) -> None:
        """Connect to the job ledger and check every reachable output share's marker, before
        the model loads: a share tracked by another ledger ends the start (exit 2) at once."""
        from bshmd.errors import LedgerUnavailable, ShareOwnedElsewhere
        from bshmd.ledger import describe_ledger, open_ledger
        from bshmd.ledger.share import ensure_marker

        self.state.set_phase("opening ledger")
        check_state_dir(self.config)
        self.ledger = open_ledger(self.config, self.instance_id)
        log.info("job ledger: %s %s (id %s)", self.ledger.dialect, describe_ledger(self.config),
                 self.ledger.ledger_id)
        for folder in self.config.folders:
            if not folder.output.is_dir():
                continue  # the ingestor reports it and checks the marker once the share is there
            try:
                ensure_marker(self.ledger, folder.input, folder.output)
            except ShareOwnedElsewhere as exc:
                self.notifier.status(f"refusing to start: {exc}")
                log.error("refusing to start: %s", exc)
                raise
            except (LedgerUnavailable, OSError) as exc:
                log.warning("cannot check the share marker of %s now (%s); the ingestor retries", folder.output, exc)

    def _load_model(self) -> bool:
        """Fetch, load and warm the model in a thread while the main loop stays responsive."""
        self.state.set_phase("loading model")

        def load() -> tuple[Any, float]:
            from bshmd.engine import MattingEngine

            started = time.monotonic()
            engine = MattingEngine.from_config(self.config.model, fetch=True)
            if self.config.model.warmup:
                engine.warmup()
            return engine, time.monotonic() - started

        with self.notifier.extending_timeout("loading model", step_seconds=EXTEND_STEP_SECONDS):
            loading = in_thread(load, name="bshmd-model-load")
            while not loading.done():
                if self._wait_and_dispatch(LOOP_TICK_SECONDS):
                    return False  # the thread cannot be interrupted; the exit leaves it behind
        error = loading.exception()
        if error is not None:
            self.notifier.status(f"cannot load the model: {error}")
            raise error
        self.engine, seconds = loading.result()
        self.state.model_loaded = True
        self.state.model_load_seconds = round(seconds, 3)
        self.metrics.model_load_seconds.set(seconds)
        self.metrics.set_runtime(getattr(self.engine, "info", None))
        log.info("model ready in %.2f s (loaded%s)", seconds,
                 " and warmed up" if self.config.model.warmup else "")
        return True

    def _start_pipeline(self) -> None:
        from bshmd.ingest import Ingestor
        from bshmd.pipeline.pipeline import Pipeline

        self.pipeline = Pipeline(self.config, self.engine, instance_id=self.instance_id, metrics=self.metrics)
        self.pipeline.start()
        self.state.pipeline_health = self.pipeline.health
        self.ingestor = Ingestor(self.config, self._offer, instance_id=self.instance_id, on_event=self._on_event,
                                 ledger=self.ledger)
        self.state.ingest_health = self.ingestor.health
        self.state.ledger_status = self.ingestor.ledger_status
        self.ingestor.start()

    def _wait_for_watches(self) -> None:
        """Ready means every folder is watched; a folder that is unavailable (NAS down) does
        not hold up the start for ever: it is reported and retried by the ingestor."""
        deadline = time.monotonic() + WATCH_WAIT_SECONDS
        while time.monotonic() < deadline:
            folders = self.ingestor.health().get("folders", {})
            if len(folders) == len(self.config.folders) and all(f.get("watching") for f in folders.values()):
                return
            if self._wait_and_dispatch(0.05):
                return  # a stop request: the main loop sees it at once
        log.warning("starting although not every folder is watched: %s", "; ".join(self.state.conditions()))

    def _offer(self, job: Any) -> bool:
        """The ingestor's hand-over: wait for room in the pipeline, but not past a shutdown."""
        while not self._intake_closed.is_set():
            if self.pipeline.submit(job, timeout=LOOP_TICK_SECONDS):
                return True
            if self.pipeline.health().stopping:
                break
        return False

    def _on_event(self, name: str, fields: dict[str, Any]) -> None:
        log.debug("ingest event %s %s", name, fields)

    # --- main loop ---------------------------------------------------------------------------

    def _main_loop(self) -> None:
        watchdog = self.notifier.watchdog_seconds
        ping_every = watchdog / 2 if watchdog else None
        now = time.monotonic()
        next_ping = now if ping_every is not None else None
        next_status = now + STATUS_EVERY_SECONDS
        next_disk = now
        while not self.signals.stop_requested:
            now = time.monotonic()
            if next_ping is not None and now >= next_ping:
                ok, why = self.state.watchdog_verdict(wedge_seconds=watchdog, now=now)
                if ok:
                    self.notifier.watchdog()
                    next_ping = now + ping_every
                else:
                    # No ping: systemd restarts the service once WatchdogSec runs out.
                    log.error("watchdog: withholding the ping: %s", why)
                    next_ping = now + ping_every
            if now >= next_disk:
                self.state.check_disks()
                next_disk = now + DISK_CHECK_EVERY_SECONDS
            if now >= next_status:
                self._send_status()
                next_status = now + STATUS_EVERY_SECONDS
            wake = min(x for x in (next_ping, next_status, next_disk, now + LOOP_TICK_SECONDS) if x is not None)
            self._wait_and_dispatch(max(wake - time.monotonic(), 0.0))

    def _wait_and_dispatch(self, timeout: float) -> bool:
        """Wait for a signal up to ``timeout``; True when a stop was requested."""
        sig = self.signals.get(timeout)
        self.state.loop_tick()
        if sig == signal.SIGHUP:
            self.reload()
        return self.signals.stop_requested

    def _send_status(self) -> None:
        status = self.state.status_line()
        if status != self._last_status:
            self.notifier.status(status)
            self._last_status = status

    # --- reload ------------------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read the configuration file; on any problem keep the running configuration."""
        from bshmd.service.reload import note_applied, reread, take_over

        path = self.config.source
        if path is None:
            log.error("reload: the configuration did not come from a file; nothing to reload")
            return False
        self.notifier.notify(f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")
        new = reread(path)
        if new is None:
            self.notifier.ready(self.state.status_line())
            return False
        applied = take_over(self.config, new)
        if self.pipeline is not None:
            self.pipeline.update_config(applied)
        if self.ingestor is not None:
            self.ingestor.reconfigure(applied)
        if self.http_app is not None:
            self.http_app.replace_mount(REVIEW_MOUNT, _review_app(applied))
        note_applied(self.config, applied)
        self.config = applied
        self.notifier.ready(self.state.status_line())
        return True

    # --- shutdown ----------------------------------------------------------------------------

    def _stopped_during_startup(self) -> int:
        self.state.set_phase("stopping")
        self.notifier.stopping("stopped before the model was loaded")
        log.info("stopped while loading the model; nothing was claimed")
        # The loader thread cannot be interrupted, and TensorFlow must not be torn down under
        # it by the interpreter's exit: leave at once.
        self._close()
        logging.shutdown()
        os._exit(EXIT_OK)

    def _shutdown(self) -> int:
        log.info("shutting down on request (a second SIGTERM or SIGINT stops at once)")
        self.state.set_phase("stopping")
        timeout = self.config.shutdown_timeout
        self.notifier.stopping(f"stopping: finishing the batch in flight (up to {timeout:g} s)")
        started = time.monotonic()
        self._intake_closed.set()
        if self.ingestor is not None:
            self.ingestor.stop()
            self.ingestor = None
        finished = True
        if self.pipeline is not None:
            finished = self.pipeline.stop(max(timeout - (time.monotonic() - started), 0.1))
        health = self.state.pipeline()
        if finished:
            log.info("stopped after %.1f s: processed %s, quarantined %s, released %s",
                     time.monotonic() - started, getattr(health, "processed", 0),
                     getattr(health, "quarantined", 0), getattr(health, "released", 0))
        else:
            log.warning("shutdown_timeout (%g s) ran out: unfinished files were released for a later run",
                        timeout)
            self._exit_leaving_engine()
        return EXIT_OK

    def _exit_leaving_engine(self) -> None:
        """Exit 0 now, leaving behind a call that may still run in the engine. Nothing can
        interrupt it, and waiting for it (MattingEngine.close; the interpreter's exit joins the
        engine's executor threads, so a daemon thread would not do) may take a batch more,
        past Kubernetes' grace period. The abort released every unfinished claim and results
        are written atomically (a cut write leaves a dot-named temporary the next start sweeps)."""
        self.engine = None  # not closed: TensorFlow must not be torn down under the call
        self._close()  # closes the ledger
        logging.shutdown()
        os._exit(EXIT_OK)

    def _close(self) -> None:
        """Release whatever was started; after an error, stop the parts still running."""
        self._intake_closed.set()
        if self.ingestor is not None:
            self.ingestor.stop()
            self.ingestor = None
        if self.pipeline is not None and not self.pipeline.health().stopping:
            self.pipeline.abort()  # only after an unexpected error: releases every claim
        if self.http is not None:
            self.http.stop()
            self.http = None
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        if self.ledger is not None:
            self.ledger.close()
            self.ledger = None

    def _force_exit(self, sig: signal.Signals) -> None:
        """A second stop signal. Called in the signal handler, so the work happens in a
        thread: the main thread may be holding a lock the abort needs."""

        def force() -> None:
            log.warning("received a second %s: stopping now", sig.name)
            if self.pipeline is not None:
                try:
                    call_with_limit(self.pipeline.abort, FORCED_EXIT_GRACE_SECONDS, name="bshmd-abort")
                except CallTimeout:
                    pass  # stuck in a call nothing can interrupt: the process exits all the same
                except Exception:
                    log.exception("aborting the pipeline failed; exiting all the same")
            self.notifier.stopping("forced stop")
            sys.stderr.flush()
            os._exit(EXIT_FORCED)

        threading.Thread(target=force, name="bshmd-force-exit", daemon=True).start()
