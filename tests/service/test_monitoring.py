"""The Prometheus alerts and the Grafana dashboard in etc/ hold up against promtool and the real metrics."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from bshmd.engine.telemetry import GPU_METRICS
from bshmd.metrics import Metrics
from bshmd.service.health import ServiceCollector, ServiceState

ETC = Path(__file__).resolve().parents[2] / "etc"
ALERTS = ETC / "prometheus" / "bshmd-alerts.yml"
ALERT_TESTS = ETC / "prometheus" / "bshmd-alerts.test.yml"
DASHBOARD = ETC / "grafana" / "bshmd-dashboard.json"
OUR_METRIC = re.compile(r"\bbshmd_[a-z0-9_]+")
# Alerts may use what Prometheus and node_exporter provide besides bshmd's own metrics.
OTHER_METRICS = {"up", "node_filesystem_avail_bytes", "node_filesystem_size_bytes"}
SAMPLE_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exposed_samples() -> set[str]:
    """Every sample name a daemon's /metrics can carry: its Metrics plus the service's collector."""
    metrics = Metrics()
    metrics.registry.register(ServiceCollector(ServiceState(instance_id="test", ingest_health=lambda: {"pending": 0})))
    names = set()
    for family in metrics.registry.collect():
        names.update(family.name + suffix for suffix in SAMPLE_SUFFIXES[family.type])
    return names | set(GPU_METRICS)  # present only where NVML sees a GPU


def alert_expressions() -> dict[str, str]:
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    return {rule["alert"]: rule["expr"] for rule in rules}


def dashboard_expressions() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = {f"{panel['title']} / {target['refId']}": target["expr"]
             for panel in dashboard["panels"] for target in panel["targets"]}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found[f"variable {variable['name']}"] = variable["query"]
    return found


def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    checked = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 7 rules found" in checked.stdout
    tested = subprocess.run(["promtool", "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True,
                            timeout=120)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_alerts_cover_what_an_operator_must_hear_about() -> None:
    assert set(alert_expressions()) >= {"BshmdQueueStuck", "BshmdQuarantineRateHigh", "BshmdDiskFull",
                                         "BshmdDiskNearlyFull", "BshmdNotReady", "BshmdRestarting"}


def test_every_alert_names_only_metrics_that_exist() -> None:
    real = exposed_samples()
    for name, expr in alert_expressions().items():
        ours = set(OUR_METRIC.findall(expr))
        others = {m for m in OTHER_METRICS if re.search(rf"\b{m}\b", expr)}
        assert ours or others, f"{name} names no metric: {expr}"
        assert ours <= real, f"{name}: {sorted(ours - real)} are not metrics bshmd exposes"


def test_every_dashboard_expression_names_a_real_bshmd_metric() -> None:
    real = exposed_samples()
    expressions = dashboard_expressions()
    assert len(expressions) >= 20
    for where, expr in expressions.items():
        ours = set(OUR_METRIC.findall(expr))
        assert ours, f"{where} names no bshmd metric: {expr}"
        assert ours <= real, f"{where}: {sorted(ours - real)} are not metrics bshmd exposes"
    used = {m for expr in expressions.values() for m in OUR_METRIC.findall(expr)}
    # Each of the pipeline's own metrics is on the dashboard, in one form or another.
    families = {family.name for family in Metrics().registry.collect()}
    assert {re.sub(r"_(total|bucket|sum|count)$", "", m) for m in used} >= families
