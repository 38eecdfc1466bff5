"""``bshmd doctor`` on a good set-up and on broken ones, each broken for real (mounts, sockets, modes)."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bshmd.cli import main
from bshmd.doctor import Check, Host, clock_check, exit_status, render, run_checks


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bshmd.testing.standin import write_standin_graph

    return write_standin_graph(tmp_path_factory.mktemp("doctor-model"))


def write_setup(root: Path, graph: Path, extra: str = "", sha256: str | None = None) -> Path:
    """A folder layout and a configuration that passes every check, apart from what ``extra`` breaks."""
    for name in ("in", "out", "quarantine", "model", "cache"):
        (root / name).mkdir(exist_ok=True)
    shutil.copy(graph, root / "model" / "tf_graph.pb")
    digest = sha256 or hashlib.sha256(graph.read_bytes()).hexdigest()
    config = root / "bshmd.yaml"
    config.write_text(
        f"model:\n  path: model\n  cache_dir: cache\n  sha256: '{digest}'\n"
        "folders:\n  - {input: in, output: out, quarantine: quarantine}\n"
        "http:\n  port: 0\n" + extra
    )
    return config


def checks_for(config: Path, **host: object) -> list[Check]:
    return run_checks(config, Host(**host), tensorflow=False)


def finding(checks: list[Check], status: str, name: str) -> Check:
    """The one check in ``checks`` named ``name`` (a folder's check: ``name`` then its path)."""
    found = [c for c in checks if (c.name + " ").startswith(name + " ")]
    assert len(found) == 1, render(checks)
    assert found[0].status == status, render(checks)
    return found[0]


def rendered_line(checks: list[Check], status: str, name: str) -> str:
    """The output line of that check: status first, the fix on the same line."""
    [line] = [line for line in render(checks).splitlines() if line.startswith(status) and line[6:].startswith(name + " ")]
    assert "→ fix: " in line and line.split("→ fix: ")[1].strip(), line
    return line


def tree_state(root: Path) -> dict[str, tuple[int, int, float]]:
    return {str(p): (p.stat().st_mode, p.stat().st_size, p.stat().st_mtime) for p in sorted(root.rglob("*"))}


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[list[Path]]:
    """Mount points made in the test, unmounted afterwards."""
    points: list[Path] = []
    yield points
    for point in reversed(points):
        subprocess.run(["fusermount", "-u", str(point)], check=False)
        subprocess.run(["umount", str(point)], check=False, capture_output=True)


def bindfs(source: Path, target: Path, mounted: list[Path], *options: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["bindfs", *options, str(source), str(target)], check=True, timeout=30)
    mounted.append(target)


@pytest.mark.slow
def test_good_setup_passes_with_tensorflow_and_changes_nothing(tmp_path: Path, graph: Path) -> None:
    config = write_setup(tmp_path, graph)
    before = tree_state(tmp_path)
    result = CliRunner().invoke(main, ["doctor", "-c", str(config)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert not [line for line in lines if line.startswith("FAIL")], result.output
    for name in ("config", "model", "tensorflow", "devices", "input", "output", "quarantine", "free space",
                 "model.cache_dir", "inotify watches", "systemd-python", "http", "clock"):
        assert any(line[6:].startswith(name) for line in lines), (name, result.output)
    assert "sha256 matches model.sha256" in result.output
    assert "watched by inotify events" in result.output
    assert lines[-1].startswith(f"{len(lines) - 1} checks: 0 failed, ")
    assert tree_state(tmp_path) == before


def test_invalid_config_is_the_one_failure_and_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bshmd.yaml"
    config.write_text("folders:\n  - {input: in, output: out, quarantine: q}\nsettle_seconds: soon\n")
    checks = checks_for(config)
    assert [c.status for c in checks] == ["FAIL"] and "settle_seconds" in checks[0].detail
    assert exit_status(checks) == 1


def test_missing_input_folder_fails(tmp_path: Path, graph: Path) -> None:
    config = write_setup(tmp_path, graph)
    (tmp_path / "in").rmdir()
    checks = checks_for(config)
    assert finding(checks, "FAIL", "input").detail == "does not exist"
    assert f"mkdir -p {tmp_path / 'in'}" in rendered_line(checks, "FAIL", "input")
    assert exit_status(checks) == 1


def test_output_the_service_user_cannot_write_fails(tmp_path: Path, graph: Path) -> None:
    config = write_setup(tmp_path, graph)
    for name in ("in", "out", "quarantine"):
        os.chown(tmp_path / name, 0, 0)
        (tmp_path / name).chmod(0o755)
    (tmp_path / "quarantine").chmod(0o777)
    checks = checks_for(config, user="nobody")
    assert "nobody cannot write it (mode 0755, owner root)" in finding(checks, "FAIL", "output").detail
    assert "chown nobody" in rendered_line(checks, "FAIL", "output")
    finding(checks, "OK", "input")  # other can read and enter it
    finding(checks, "OK", "quarantine")
    assert exit_status(checks) == 1


def test_output_on_a_read_only_mount_fails(tmp_path: Path, graph: Path, mounted: list[Path]) -> None:
    config = write_setup(tmp_path, graph)
    (tmp_path / "out-source").mkdir()
    bindfs(tmp_path / "out-source", tmp_path / "out", mounted, "-o", "ro")
    checks = checks_for(config)
    assert "read-only mount" in finding(checks, "FAIL", "output").detail
    assert "remount it read-write" in rendered_line(checks, "FAIL", "output")


def test_missing_model_fails(tmp_path: Path, graph: Path) -> None:
    config = write_setup(tmp_path, graph)
    (tmp_path / "model" / "tf_graph.pb").unlink()
    checks = checks_for(config)
    assert "is missing" in finding(checks, "FAIL", "model").detail
    assert "tf_graph.pb" in rendered_line(checks, "FAIL", "model")


def test_model_missing_from_the_cache_fails_without_downloading(tmp_path: Path, graph: Path) -> None:
    config = write_setup(tmp_path, graph)
    text = config.read_text().replace("  path: model\n", "").replace("  sha256:", "  fetch_timeout_seconds: 5\n  sha256:")
    config.write_text(text)
    checks = checks_for(config)
    assert "is not in the cache" in finding(checks, "FAIL", "model").detail
    assert "bshmd model fetch" in rendered_line(checks, "FAIL", "model")
    assert not any((tmp_path / "cache").rglob("*.pb"))


def test_wrong_checksum_fails(tmp_path: Path, graph: Path) -> None:
    config = write_setup(tmp_path, graph, sha256="0" * 64)
    checks = checks_for(config)
    assert f"model.sha256 expects {'0' * 64}" in finding(checks, "FAIL", "model").detail
    assert "correct model.sha256" in rendered_line(checks, "FAIL", "model")


def test_too_few_inotify_watches_fails(tmp_path: Path, graph: Path) -> None:
    config = write_setup(tmp_path, graph)
    for shoot in range(6):
        (tmp_path / "in" / f"shoot-{shoot}").mkdir()
    limit = tmp_path / "max_user_watches"
    limit.write_text("4\n")
    checks = checks_for(config, inotify_watches=limit)
    assert finding(checks, "FAIL", "inotify").detail.startswith("5 folders to watch, fs.inotify.max_user_watches is 4")
    assert "sysctl -w fs.inotify.max_user_watches=" in rendered_line(checks, "FAIL", "inotify")
    limit.write_text("10\n")
    finding(checks_for(config, inotify_watches=limit), "WARN", "inotify")  # more than half of them
    limit.write_text("1000\n")
    finding(checks_for(config, inotify_watches=limit), "OK", "inotify")


def test_port_in_use_fails(tmp_path: Path, graph: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_setup(tmp_path, graph, extra="")
        config.write_text(config.read_text().replace("  port: 0", f"  port: {port}"))
        checks = checks_for(config)
    assert f"127.0.0.1:{port} cannot be bound" in finding(checks, "FAIL", "http").detail
    assert "set http.port to a free one" in rendered_line(checks, "FAIL", "http")


def test_local_state_on_a_network_mount_warns(tmp_path: Path, graph: Path, mounted: list[Path]) -> None:
    config = write_setup(tmp_path, graph)
    (tmp_path / "share").mkdir()
    bindfs(tmp_path / "share", tmp_path / "cache", mounted)  # FUSE: changes can come from elsewhere
    checks = checks_for(config)
    assert "is on a network mount (fuse" in finding(checks, "WARN", "model.cache_dir").detail
    assert "point model.cache_dir at a local disk" in rendered_line(checks, "WARN", "model.cache_dir")
    assert exit_status(checks) == 0  # a warning alone does not fail


def test_input_on_a_share_is_polled_and_needs_no_watches(tmp_path: Path, graph: Path, mounted: list[Path]) -> None:
    config = write_setup(tmp_path, graph)
    (tmp_path / "share").mkdir()
    bindfs(tmp_path / "share", tmp_path / "in", mounted)
    limit = tmp_path / "max_user_watches"
    limit.write_text("0\n")
    checks = checks_for(config, inotify_watches=limit)
    assert "polled" in finding(checks, "OK", "input").detail
    assert finding(checks, "OK", "inotify").detail.startswith("no folder is watched by events")


def test_nearly_full_output_disk_fails(tmp_path: Path, graph: Path, mounted: list[Path]) -> None:
    config = write_setup(tmp_path, graph)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(tmp_path / "out")], check=True)
    mounted.append(tmp_path / "out")
    checks = checks_for(config)
    assert "GiB free" in finding(checks, "FAIL", f"free space {tmp_path / 'out'}").detail
    assert "free space on that disk" in rendered_line(checks, "FAIL", "free space")


def test_a_clock_before_2025_fails() -> None:
    assert clock_check(now=86400 * 365 * 30).status == "FAIL"  # 1999
    assert clock_check().status in ("OK", "WARN")


def test_an_unknown_service_user_fails(tmp_path: Path, graph: Path) -> None:
    checks = checks_for(write_setup(tmp_path, graph), user="no-such-user-here")
    assert "does not exist" in finding(checks, "FAIL", "service user").detail


def test_missing_folders_are_fine_when_the_daemon_creates_them(tmp_path: Path, graph: Path) -> None:
    config = write_setup(tmp_path, graph, extra="create_folders: true\n")
    (tmp_path / "in").rmdir()
    checks = checks_for(config)
    assert "creates it" in finding(checks, "OK", "input").detail
    assert not (tmp_path / "in").exists()  # the doctor itself creates nothing


def test_an_nfs_attribute_cache_longer_than_settling_warns(tmp_path: Path, graph: Path) -> None:
    config = write_setup(tmp_path, graph)
    # The mount table as the doctor reads it, with the input folder on an NFS share.
    table = tmp_path / "mountinfo"
    real = Path("/proc/self/mountinfo").read_text()
    table.write_text(real + f"999 1 0:99 / {tmp_path / 'in'} rw,relatime shared:99 - nfs4 nas:/hot "
                            "rw,vers=4.2,acregmin=3,acregmax=30,hard\n")
    checks = checks_for(config, mountinfo=table)
    assert "polled" in finding(checks, "OK", "input").detail and "nfs4" in finding(checks, "OK", "input").detail
    warning = finding(checks, "WARN", "attribute cache")
    assert "nfs4 caches attributes up to 30 s, longer than settle_seconds (2 s)" in warning.detail
    assert "actimeo=1" in rendered_line(checks, "WARN", "attribute cache")


def test_a_ledger_state_dir_on_a_network_mount_fails_as_the_daemon_refuses_it(
        tmp_path: Path, graph: Path, mounted: list[Path]) -> None:
    from bshmd.config import load_config
    from bshmd.errors import ConfigError
    from bshmd.service.daemon import check_state_dir

    config = write_setup(tmp_path, graph, extra="state_dir: state\n")
    (tmp_path / "share").mkdir()
    bindfs(tmp_path / "share", tmp_path / "state", mounted)
    checks = checks_for(config)
    failed = finding(checks, "FAIL", "state_dir")
    with pytest.raises(ConfigError) as refused:
        check_state_dir(load_config(config))
    assert failed.detail == str(refused.value)  # one rule, one wording
    assert "ledger.url" in rendered_line(checks, "FAIL", "state_dir")
    # A PostgreSQL ledger keeps nothing there: neither the daemon nor the doctor objects.
    checks = checks_for(config, environ={"BSHMD_LEDGER_URL": "postgresql://db/bshmd"})
    assert "PostgreSQL" in finding(checks, "OK", "state_dir").detail


def test_the_doctor_judges_a_full_disk_by_the_daemons_threshold(
        tmp_path: Path, graph: Path, mounted: list[Path]) -> None:
    from bshmd.fs.space import LOW_DISK_BYTES
    from bshmd.service.health import ServiceState

    config = write_setup(tmp_path, graph)
    size_mib = LOW_DISK_BYTES // 2**20 + 64  # free, yet under the doctor's old 1 GiB
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(tmp_path / "out")], check=True)
    mounted.append(tmp_path / "out")
    checks = checks_for(config)
    finding(checks, "OK", f"free space {tmp_path / 'out'}")
    state = ServiceState(instance_id="test", output_folders=lambda: [tmp_path / "out"])
    state.check_disks()
    assert state.disk_conditions == []


def test_the_doctor_says_how_the_ingestor_will_watch_a_forced_mode(tmp_path: Path, graph: Path) -> None:
    config = write_setup(tmp_path, graph)
    config.write_text(config.read_text().replace("quarantine: quarantine}", "quarantine: quarantine, watch: poll}"))
    checks = checks_for(config)
    assert "watched by poll (watch: poll)" in finding(checks, "OK", "input").detail
    assert finding(checks, "OK", "inotify").detail.startswith("no folder is watched by events")


def test_the_instance_id_is_the_one_the_daemon_will_use(tmp_path: Path, graph: Path) -> None:
    config = write_setup(tmp_path, graph)
    assert "gpu2 ($BSHMD_INSTANCE_ID)" in finding(checks_for(config, environ={"BSHMD_INSTANCE_ID": "gpu2"}),
                                                 "OK", "instance id").detail
    bad = checks_for(config, environ={"BSHMD_INSTANCE_ID": "two words"})
    assert "$BSHMD_INSTANCE_ID = 'two words'" in finding(bad, "FAIL", "instance id").detail
