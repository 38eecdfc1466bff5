"""The HTTP endpoint on a real socket: metrics, health, readiness, status, mounts, tokens."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bshmd.config import HttpConfig
from bshmd.errors import ConfigError
from bshmd.httpd import HttpServer
from bshmd.metrics import Metrics
from bshmd.pipeline.pipeline import PipelineHealth
from bshmd.service.health import ServiceCollector, ServiceState
from bshmd.service.httpserver import ServiceApp, check_exposure

TOKEN = "s3cret-token-for-tests"


def pipeline_health(inference_started: float | None = None) -> PipelineHealth:
    return PipelineHealth(queued=3, in_flight={"intake": 0, "decode": 0, "batch": 0, "infer": 1, "write": 0},
                          last_progress=None, inference_started=inference_started, processed=120,
                          quarantined=2)


@pytest.fixture
def state(tmp_path: Path) -> ServiceState:
    folders = {str(tmp_path / "in"): {"available": True, "mode": "events", "watching": True}}
    return ServiceState(instance_id="test-1", pipeline_health=pipeline_health,
                        ingest_health=lambda: {"folders": folders, "pending": 1, "last_rescan": None},
                        output_folders=lambda: [tmp_path])


def _serve(state: ServiceState, **kwargs) -> Iterator[HttpServer]:
    metrics = Metrics()
    metrics.registry.register(ServiceCollector(state))
    metrics.files_processed.labels(folder="in").inc(5)
    server = HttpServer("127.0.0.1", 0, ServiceApp(state, metrics.registry, **kwargs))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(state: ServiceState) -> Iterator[HttpServer]:
    yield from _serve(state, mounts=[("/review", _echo_app)])


def _echo_app(environ, start_response):
    body = json.dumps({"script": environ["SCRIPT_NAME"], "path": environ["PATH_INFO"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_port_zero_binds_a_free_port_and_exposes_it(server: HttpServer) -> None:
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"


def test_metrics_serves_the_pipeline_registry(server: HttpServer) -> None:
    status, body = _get(server.url + "/metrics")
    assert status == 200
    assert 'bshmd_files_processed_total{folder="in"} 5.0' in body
    assert "bshmd_latency_seconds_bucket" in body
    # The service's own gauges, read from its state at scrape time.
    assert "bshmd_ready 0.0" in body
    assert re.search(r'bshmd_folder_watching\{folder="[^"]*/in"\} 1.0', body), body
    assert "bshmd_files_settling 1.0" in body


def test_healthz_follows_the_main_loop(server: HttpServer, state: ServiceState) -> None:
    state.loop_tick()
    assert _get(server.url + "/healthz")[0] == 200
    state.last_loop = time.monotonic() - 60  # as if the main loop had been stuck a minute
    status, body = _get(server.url + "/healthz")
    assert status == 503 and "unresponsive" in json.loads(body)["reason"]


def test_healthz_fails_on_an_inference_call_that_never_returns(state: ServiceState) -> None:
    started = [time.monotonic() - 120]  # two minutes into one batch: alive
    state.pipeline_health = lambda: pipeline_health(inference_started=started[0])
    for server in _serve(state):
        state.loop_tick()
        assert _get(server.url + "/healthz")[0] == 200
        started[0] = time.monotonic() - 700
        status, body = _get(server.url + "/healthz")
        assert status == 503 and "inference running for" in json.loads(body)["reason"]


def test_readyz_waits_for_the_model_and_every_watch(server: HttpServer, state: ServiceState) -> None:
    status, body = _get(server.url + "/readyz")
    assert status == 503 and json.loads(body)["reasons"] == ["model not loaded (starting)"]
    state.model_loaded = True
    state.set_phase("running")
    assert _get(server.url + "/readyz")[0] == 200
    folders = state.ingest_health()["folders"]
    next(iter(folders.values()))["available"] = False
    status, body = _get(server.url + "/readyz")
    assert status == 503 and json.loads(body)["reasons"][0].startswith("folder unavailable: ")


def test_readyz_waits_for_the_ledger(server: HttpServer, state: ServiceState) -> None:
    state.model_loaded = True
    state.set_phase("running")
    ledger = {"backend": "postgresql", "database": "postgresql://bshmd@db/bshmd", "reachable": True}
    state.ledger_status = lambda: dict(ledger)
    assert _get(server.url + "/readyz")[0] == 200
    ledger["reachable"] = False  # as the renewer thread finds it
    status, body = _get(server.url + "/readyz")
    assert status == 503
    assert json.loads(body)["reasons"] == ["job ledger unreachable: postgresql://bshmd@db/bshmd"]


def test_status_reports_counts_and_folders(server: HttpServer, state: ServiceState) -> None:
    state.model_loaded, state.model_load_seconds = True, 1.5
    state.set_phase("running")
    status, body = _get(server.url + "/status")
    doc = json.loads(body)
    assert status == 200
    assert doc["instance"] == "test-1" and doc["ready"] is True
    assert doc["counts"] == {"queued": 3, "in_flight": 1, "processed": 120, "quarantined": 2,
                             "released": 0}
    assert doc["stages"]["infer"] == 1
    assert doc["model"] == {"loaded": True, "load_seconds": 1.5}
    assert list(doc["folders"].values())[0]["watching"] is True
    assert state.status_line() == "queued 3, in flight 1, processed 120, quarantined 2"


def test_mounted_apps_see_their_prefix_as_script_name(server: HttpServer) -> None:
    status, body = _get(server.url + "/review/items/7")
    assert status == 200 and json.loads(body) == {"script": "/review", "path": "/items/7"}
    assert _get(server.url + "/reviewer")[0] == 404


def test_token_guards_everything_but_health(state: ServiceState) -> None:
    for server in _serve(state, token=TOKEN, mounts=[("/review", _echo_app)]):
        assert _get(server.url + "/healthz")[0] == 200
        assert _get(server.url + "/readyz")[0] == 503
        for path in ("/metrics", "/status", "/review/"):
            assert _get(server.url + path)[0] == 401
            assert _get(server.url + path, token="wrong-token-0000000")[0] == 401
            assert _get(server.url + path, token=TOKEN)[0] == 200


def test_listening_beyond_loopback_needs_a_token() -> None:
    check_exposure(HttpConfig(host="127.0.0.1"))
    check_exposure(HttpConfig(host="::1"))
    check_exposure(HttpConfig(host="0.0.0.0", token=TOKEN))
    check_exposure(HttpConfig(host="0.0.0.0", enabled=False))
    with pytest.raises(ConfigError, match="http.token"):
        check_exposure(HttpConfig(host="0.0.0.0"))
    with pytest.raises(ConfigError, match="http.token"):
        check_exposure(HttpConfig(host="nas.example"))


def test_a_busy_port_is_a_clear_config_error(server: HttpServer, state: ServiceState) -> None:
    with pytest.raises(ConfigError, match="cannot listen"):
        HttpServer("127.0.0.1", server.port, ServiceApp(state, Metrics().registry))


def test_watchdog_verdict_turns_on_a_wedged_inference(state: ServiceState) -> None:
    now = time.monotonic()
    state.loop_tick()
    assert state.watchdog_verdict(2.0, now=now)[0]
    state.pipeline_health = lambda: pipeline_health(now - 1.0)
    assert state.watchdog_verdict(2.0, now=now)[0]
    state.pipeline_health = lambda: pipeline_health(now - 5.0)
    ok, why = state.watchdog_verdict(2.0, now=now)
    assert not ok and "inference running" in why
