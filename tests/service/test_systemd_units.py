"""The shipped unit files: systemd accepts them, and their exposure rating stays low."""

from __future__ import annotations

import re
import shutil
import subprocess
from configparser import ConfigParser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = {"bshmd.service": REPO / "systemd" / "bshmd.service", "bshmd@.service": REPO / "systemd" / "bshmd@.service"}
SHIPPED_EXEC = "/opt/bshmd/.venv/bin/bshmd"
MAX_EXPOSURE = 3.0

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is missing (Debian package 'systemd'; scripts/setup --dev installs it)",
)


def _service_section(path: Path) -> dict[str, list[str]]:
    """Every key of [Service] with all its values (units repeat keys)."""
    values: dict[str, list[str]] = {}
    section = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def _verifiable_copy(unit: Path, tmp_path: Path, name: str) -> Path:
    """The unit with ExecStart pointing at an executable that exists here.

    ``systemd-analyze verify`` fails a unit whose ExecStart binary is missing; the shipped
    path only exists once bshmd is installed in /opt/bshmd. The copy swaps that one path for
    a stub script and changes nothing else.
    """
    stub = tmp_path / "bin" / "bshmd"
    stub.parent.mkdir(exist_ok=True)
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text = unit.read_text()
    assert SHIPPED_EXEC in text
    copy = tmp_path / name
    copy.write_text(text.replace(SHIPPED_EXEC, str(stub)))
    return copy


@needs_analyze
@pytest.mark.parametrize("name", ["bshmd.service", "bshmd@.service", "bshmd@0.service"])
def test_systemd_analyze_verify_accepts_the_unit(name: str, tmp_path: Path) -> None:
    template = UNITS["bshmd@.service" if "@" in name else "bshmd.service"]
    copy = _verifiable_copy(template, tmp_path, "bshmd@.service" if "@" in name else name)
    target = tmp_path / name
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(target)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert copy.exists()
    assert result.returncode == 0, result.stdout + result.stderr
    # verify reports unknown keys and bad values as warnings with a zero exit status.
    assert not result.stderr.strip(), result.stderr


@needs_analyze
@pytest.mark.parametrize("name", ["bshmd.service", "bshmd@0.service"])
def test_security_exposure_is_at_most_3(name: str, tmp_path: Path) -> None:
    template = UNITS["bshmd@.service" if "@" in name else "bshmd.service"]
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    shutil.copy(template, unit_dir / template.name)
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", name],
                            capture_output=True, text=True, cwd=unit_dir, timeout=60)
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", output)
    assert match, output
    exposure = float(match.group(1))
    print(f"{name}: overall exposure {exposure}")
    assert exposure <= MAX_EXPOSURE, output


@pytest.mark.parametrize("unit", list(UNITS.values()), ids=list(UNITS))
def test_unit_runs_the_daemon_the_way_it_expects(unit: Path) -> None:
    service = _service_section(unit)
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service["Restart"] == ["on-failure"]
    assert service["User"] == ["bshmd"] and service["Group"] == ["bshmd"]
    exec_start = service["ExecStart"][0].split()
    assert exec_start[:2] == [SHIPPED_EXEC, "run"] and exec_start[2] == "-c"
    # The watchdog must leave room for pings every half interval; stop must outlast
    # shutdown_timeout's default of 30 s.
    assert int(service["WatchdogSec"][0]) >= 10
    assert _seconds(service["TimeoutStopSec"][0]) > 30
    assert _seconds(service["TimeoutStartSec"][0]) >= 600
    assert service["CapabilityBoundingSet"] == [""]
    assert "MemoryDenyWriteExecute" in service and service["MemoryDenyWriteExecute"] == ["no"]
    assert service["DevicePolicy"] == ["closed"]
    assert any("nvidia-uvm" in allow for allow in service["DeviceAllow"])


def test_template_selects_its_gpu_and_instance_id() -> None:
    service = _service_section(UNITS["bshmd@.service"])
    env = dict(value.split("=", 1) for value in service["Environment"])
    assert env["CUDA_VISIBLE_DEVICES"] == "%i"
    assert env["BSHMD_INSTANCE_ID"] == "%H-gpu%i"
    assert "/etc/bshmd/bshmd@%i.yaml" in service["ExecStart"][0]
    assert "/dev/nvidia%i rw" in service["DeviceAllow"]


def test_unit_files_parse_as_ini() -> None:
    for unit in UNITS.values():
        parser = ConfigParser(strict=False, interpolation=None)
        parser.read_string(unit.read_text())
        assert {"Unit", "Service", "Install"} <= set(parser.sections())


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(min|s)?", value)
    assert match, value
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)
