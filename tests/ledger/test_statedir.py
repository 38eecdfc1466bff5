"""Where the state folder is without ``state_dir``, and the one sentence when it cannot be used.

The account the rule is judged for is passed in (``euid``); the daemon running as an ordinary
account for real is in tests/service/test_quickstart.py.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bshmd.config import parse_config
from bshmd.doctor import Host, render, run_checks
from bshmd.errors import ConfigError
from bshmd.ledger import open_ledger, state_dir
from bshmd.ledger.statedir import (
    SYSTEM_STATE_DIR,
    default_state_dir,
    ensure_state_dir,
    state_dir_check,
    state_dir_problem,
)

USER = 1000  # an ordinary account's uid; the rule reads its home from $HOME here


def _config(hot: dict[str, Path], **extra):
    return parse_config({"folders": [{"input": str(hot["in"]), "output": str(hot["out"]),
                                      "quarantine": str(hot["quarantine"])}], **extra}, base_dir=hot["in"].parent)


def test_root_keeps_the_system_folder() -> None:
    assert default_state_dir({}, euid=0) == SYSTEM_STATE_DIR == Path("/var/lib/bshmd")
    assert default_state_dir({"HOME": "/root", "XDG_STATE_HOME": "/root/.state"}, euid=0) == SYSTEM_STATE_DIR


def test_systemd_state_directory_wins_for_root_and_for_a_service_account() -> None:
    env = {"STATE_DIRECTORY": "/var/lib/bshmd-gpu1:/var/lib/other", "HOME": "/home/ann"}
    assert default_state_dir(env, euid=0) == Path("/var/lib/bshmd-gpu1")
    assert default_state_dir(env, euid=USER) == Path("/var/lib/bshmd-gpu1")


def test_bshmd_state_dir_wins_over_systemd_and_the_account_rule() -> None:
    env = {"BSHMD_STATE_DIR": "/srv/bshmd-state", "STATE_DIRECTORY": "/var/lib/bshmd", "HOME": "/home/ann"}
    assert default_state_dir(env, euid=0) == Path("/srv/bshmd-state")
    assert default_state_dir(env, euid=USER) == Path("/srv/bshmd-state")


def test_an_ordinary_account_gets_its_xdg_state_home_or_local_state(tmp_path: Path) -> None:
    system = tmp_path / "var-lib-bshmd"  # no ledger there
    assert default_state_dir({"HOME": "/home/ann", "XDG_STATE_HOME": "/home/ann/.state"},
                             euid=USER, system_dir=system) == Path("/home/ann/.state/bshmd")
    assert default_state_dir({"HOME": "/home/ann"}, euid=USER, system_dir=system) == Path(
        "/home/ann/.local/state/bshmd")
    # The XDG specification: a relative value is invalid and ignored.
    assert default_state_dir({"HOME": "/home/ann", "XDG_STATE_HOME": "state"}, euid=USER,
                             system_dir=system) == Path("/home/ann/.local/state/bshmd")
    # No $HOME (a service started without one): the account's home from the passwd database.
    nobody = pwd.getpwnam("nobody")
    assert default_state_dir({}, euid=nobody.pw_uid, system_dir=system) == Path(nobody.pw_dir) / ".local/state/bshmd"


def test_an_account_that_already_keeps_a_ledger_in_the_system_folder_keeps_it(tmp_path: Path) -> None:
    # A 0.2 install run by hand as its service account: its history stays where it is.
    system = tmp_path / "var-lib-bshmd"
    system.mkdir()
    (system / "ledger.db").write_bytes(b"")
    assert default_state_dir({"HOME": "/home/bshmd"}, euid=USER, system_dir=system) == system


def test_the_configured_state_dir_wins_over_every_default(hot: dict[str, Path], tmp_path: Path) -> None:
    config = _config(hot, state_dir=str(tmp_path / "mine"))
    assert state_dir(config, {"BSHMD_STATE_DIR": "/elsewhere", "STATE_DIRECTORY": "/var/lib/bshmd"}) == tmp_path / "mine"
    assert state_dir(_config(hot), {"BSHMD_STATE_DIR": str(tmp_path / "env")}) == tmp_path / "env"


def test_a_missing_state_folder_is_created_for_the_ledger(hot: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "deep" / "state"
    assert state_dir_problem(folder, create=False) is None and not folder.exists()  # the doctor's look
    ledger = open_ledger(_config(hot, state_dir=str(folder)))
    try:
        assert (folder / "ledger.db").is_file()
        assert folder.stat().st_mode & 0o777 == 0o750
    finally:
        ledger.close()


def test_a_state_folder_that_cannot_be_created_stops_with_one_sentence(hot: dict[str, Path], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    folder = blocker / "state"
    with pytest.raises(ConfigError) as raised:
        open_ledger(_config(hot, state_dir=str(folder)))
    message = str(raised.value)
    user = pwd.getpwuid(os.geteuid()).pw_name
    assert message == (f"user {user} (uid {os.geteuid()}) cannot create the state folder {folder} "
                       f"({blocker} is not a folder): set state_dir in the configuration to a folder {user} can write")
    assert "\n" not in message
    assert raised.value.exit_status == 2


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A folder on a read-only tmpfs: not writable even for root."""
    point = tmp_path / "ro"
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(point)], check=True, timeout=30)
    try:
        yield point
    finally:
        subprocess.run(["umount", str(point)], check=False, timeout=30)


def test_a_state_folder_that_cannot_be_written_stops_and_the_doctor_says_the_same(
        hot: dict[str, Path], tmp_path: Path, read_only: Path) -> None:
    with pytest.raises(ConfigError, match=rf"cannot write the state folder {read_only} \(.*\): set state_dir"):
        ensure_state_dir(read_only)
    with pytest.raises(ConfigError, match=rf"cannot create the state folder {read_only / 'state'} "):
        ensure_state_dir(read_only / "state")

    config = tmp_path / "bshmd.yaml"
    config.write_text(f"folders:\n  - {{input: {hot['in']}, output: {hot['out']}, quarantine: {hot['quarantine']}}}\n"
                      f"state_dir: {read_only / 'state'}\nhttp:\n  port: 0\n")
    checks = run_checks(config, Host(), tensorflow=False)
    [check] = [c for c in checks if c.name.startswith("state folder")]
    assert (check.status, check.name) == ("FAIL", f"state folder {read_only / 'state'}")
    assert check.detail == state_dir_problem(read_only / "state", create=True)
    assert "set state_dir" in check.fix
    assert f"FAIL  state folder {read_only / 'state'}" in render(checks)


def test_the_doctor_passes_a_usable_state_folder_and_skips_it_for_postgresql(tmp_path: Path) -> None:
    assert state_dir_check(tmp_path).status == "OK" and "writable" in state_dir_check(tmp_path).detail
    assert "creates it" in state_dir_check(tmp_path / "new").detail
    assert not (tmp_path / "new").exists()
    assert state_dir_check(None) == ("OK", "state folder", "not used: the job ledger is on PostgreSQL", "")
