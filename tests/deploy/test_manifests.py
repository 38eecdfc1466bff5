"""deploy/kubernetes: every overlay renders with kubectl, every object validates offline
against Kubernetes' own schemas (built-in kinds) or the vendored CRD schemas (KEDA, Prometheus
operator), and the safety points hold in each overlay."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from bshmd.config import load_config
from tests.deploy.render import KUBERNETES, OVERLAYS, objects, one, render, workloads

SCHEMAS = Path(__file__).resolve().parent / "schemas"
CUSTOM_KINDS = {  # apiVersion, kind -> vendored schema (tests/deploy/schemas/README.md)
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "triggerauthentication.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.json",
}
# The oldest Kubernetes these manifests are for, and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def _closed(schema: Any) -> Any:
    """A CRD schema that refuses unknown fields, as the API server's strict field validation
    does (a CRD's schema alone would let a misspelt field through, to be pruned)."""
    if isinstance(schema, dict):
        schema = {key: _closed(value) for key, value in schema.items()}
        if isinstance(schema.get("pattern"), str) and schema["pattern"].startswith("^(?i)"):
            schema["pattern"] = "(?i)^" + schema["pattern"][5:]  # Go's RE2 takes the flag anywhere
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    return schema


def _custom_schema(name: str) -> dict[str, Any]:
    schema = _closed(json.loads((SCHEMAS / name).read_text())["schema"])
    # apiVersion/kind/metadata are the API server's to check; the CRD says nothing about them.
    schema["properties"]["metadata"] = {"type": "object"}
    return schema


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_offline(overlay: str) -> None:
    kinds = set()
    for doc in render(overlay):
        kinds.add(doc["kind"])
        custom = CUSTOM_KINDS.get((doc["apiVersion"], doc["kind"]))
        if custom is not None:
            jsonschema.validate(doc, _custom_schema(custom))
            continue
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(copy.deepcopy(doc), version, strict=True)
    assert {"Deployment", "Service", "PersistentVolumeClaim", "PodDisruptionBudget", "NetworkPolicy",
            "Secret", "ServiceMonitor", "PrometheusRule", "ScaledObject", "TriggerAuthentication"} <= kinds


def test_the_vendored_crd_schemas_catch_a_misspelt_field() -> None:
    scaled = copy.deepcopy(one("gpu", "ScaledObject", "bshmd"))
    scaled["spec"]["maxReplicas"] = 4
    with pytest.raises(jsonschema.ValidationError, match="maxReplicas"):
        jsonschema.validate(scaled, _custom_schema("scaledobject.json"))
    deployment = copy.deepcopy(one("gpu", "Deployment", "bshmd"))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRoot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.30.0", strict=True)


def _pod_and_containers(workload: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    pod = workload["spec"]["template"]["spec"]
    return pod, pod["containers"] + pod.get("initContainers", [])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_locked_down_and_sized(overlay: str) -> None:
    assert workloads(overlay)
    for workload in workloads(overlay):
        pod, containers = _pod_and_containers(workload)
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        for container in containers:
            where = f"{overlay}: {workload['metadata']['name']}/{container['name']}"
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"] == {"drop": ["ALL"]}, where
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert "privileged" not in security, where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), where
            assert "readinessProbe" in container and "livenessProbe" in container, where
        # Nothing writable but what the pod is given: every volume is a Secret, a claim or an emptyDir.
        for volume in pod["volumes"]:
            assert {"secret", "persistentVolumeClaim", "emptyDir"} & set(volume), (overlay, volume)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_worker_probes_its_own_health_and_drains_within_the_grace_period(overlay: str) -> None:
    pod = one(overlay, "Deployment", "bshmd")["spec"]["template"]["spec"]
    worker = pod["containers"][0]
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    live = worker["livenessProbe"]
    # bshmd's own /healthz bound (15 s of a stuck main loop) comes first, then the kubelet's.
    assert live["periodSeconds"] * live["failureThreshold"] >= 60
    config = _worker_config(overlay)
    assert pod["terminationGracePeriodSeconds"] >= config.shutdown_timeout + 15
    mounts = {mount["mountPath"]: mount for mount in worker["volumeMounts"]}
    assert str(config.ledger.password_file).startswith(next(p for p in mounts if p.startswith("/run/secrets/bshmd/ledger")))
    assert str(config.state_dir) in mounts and str(config.model.cache_dir) in mounts
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes[mounts[str(config.state_dir)]["name"]]
    env = {item["name"]: item for item in worker["env"]}
    assert env["BSHMD_LEDGER_URL"]["valueFrom"]["secretKeyRef"]["key"] == "url"
    assert env["BSHMD_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    hot = one(overlay, "PersistentVolumeClaim", "bshmd-hot")
    assert hot["spec"]["accessModes"] == (["ReadWriteOnce"] if overlay == "try" else ["ReadWriteMany"])


def test_only_the_gpu_overlay_asks_for_a_gpu() -> None:
    for overlay in OVERLAYS:
        for workload in workloads(overlay):
            _, containers = _pod_and_containers(workload)
            for container in containers:
                gpus = {bound: container["resources"][bound].get("nvidia.com/gpu")
                        for bound in ("requests", "limits")}
                wanted = 1 if overlay == "gpu" and workload["metadata"]["name"] == "bshmd" else None
                assert gpus == {"requests": wanted, "limits": wanted}, (overlay, container["name"])


def _worker_config(overlay: str):  # noqa: ANN202 - a bshmd Config
    """The bshmd.yaml the overlay's workers get, read by bshmd's own loader."""
    deployment = one(overlay, "Deployment", "bshmd")
    name = next(v["secret"]["secretName"] for v in deployment["spec"]["template"]["spec"]["volumes"]
                if v["name"] == "config")
    secret = next(doc for doc in objects(overlay, "Secret") if doc["metadata"]["name"] == name)
    import base64
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bshmd.yaml"
        path.write_bytes(base64.b64decode(secret["data"]["bshmd.yaml"]))
        return load_config(path)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_worker_configuration_loads_and_follows_the_pod(overlay: str) -> None:
    config = _worker_config(overlay)
    resources = one(overlay, "Deployment", "bshmd")["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert config.http.host == "0.0.0.0" and config.http.token
    assert config.ledger.url is None  # $BSHMD_LEDGER_URL, from the Secret
    # Workers follow the pod's CPU request, not the node's CPU count ("auto").
    for workers in (config.pipeline.decode_workers, config.pipeline.write_workers):
        assert isinstance(workers, int) and workers <= int(resources["requests"]["cpu"])
    monitor = one(overlay, "ServiceMonitor", "bshmd")
    token_secret = monitor["spec"]["endpoints"][0]["authorization"]["credentials"]
    secret = next(doc for doc in objects(overlay, "Secret") if doc["metadata"]["name"] == token_secret["name"])
    import base64

    assert base64.b64decode(secret["data"][token_secret["key"]]).decode() == config.http.token


def test_the_try_configuration_is_the_base_one_but_for_its_token_and_folders() -> None:
    base = yaml.safe_load((KUBERNETES / "base" / "bshmd.yaml").read_text())
    tried = yaml.safe_load((KUBERNETES / "overlays" / "try" / "bshmd.yaml").read_text())
    assert tried.pop("create_folders") is True
    assert tried["http"].pop("token") != base["http"].pop("token")
    assert tried == base


def test_the_prometheus_rule_is_rendered_from_the_alerting_rules() -> None:
    done = subprocess.run([sys.executable, str(KUBERNETES / "render-rules"), "--check"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    rules = yaml.safe_load((KUBERNETES.parent.parent / "etc" / "prometheus" / "bshmd-alerts.yml").read_text())
    for overlay in OVERLAYS:
        assert one(overlay, "PrometheusRule", "bshmd")["spec"] == rules


def test_the_scaler_reaches_the_workers_and_the_ledger_by_their_rendered_names() -> None:
    for overlay in OVERLAYS:
        scaled = one(overlay, "ScaledObject", "bshmd")
        deployments = {doc["metadata"]["name"] for doc in objects(overlay, "Deployment")}
        assert scaled["spec"]["scaleTargetRef"]["name"] in deployments
        auth = one(overlay, "TriggerAuthentication", scaled["spec"]["triggers"][0]["authenticationRef"]["name"])
        secrets = {doc["metadata"]["name"] for doc in objects(overlay, "Secret")}
        assert {ref["name"] for ref in auth["spec"]["secretTargetRef"]} <= secrets
        assert {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]} == {
            "host", "port", "userName", "dbName", "sslmode", "password"}
