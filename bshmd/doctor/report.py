"""Running every check for a configuration, and printing them one line each.

Everything a check reads from the host (the mount table, the inotify limit, the service user)
comes through ``Host`` and can be pointed elsewhere, so each broken set-up can be tested for real.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from bshmd.config import load_config
from bshmd.doctor.check import Check, Host
from bshmd.doctor.folders import ServiceUser, folder_checks, local_state_checks, space_checks
from bshmd.doctor.host import clock_check, http_check, inotify_checks, instance_check, systemd_check
from bshmd.doctor.model import model_checks, tensorflow_checks
from bshmd.engine.report import runtime_checks
from bshmd.errors import BshmdError
from bshmd.ledger import ledger_url, state_dir
from bshmd.ledger.statedir import state_dir_check


def run_checks(config_file: Path, host: Host | None = None, *, tensorflow: bool = True) -> list[Check]:
    """Every check for the configuration in ``config_file``; a bad file is the only one then."""
    host = host or Host()
    try:
        config = load_config(config_file)
    except BshmdError as exc:
        return [Check("FAIL", "config", str(exc), "correct the key named above, then run `bshmd check-config`")]
    checks = [Check("OK", "config", f"{config.source} is valid")]
    mounts = host.mounts()
    try:
        account = ServiceUser.named(host.user)
    except KeyError:
        checks.append(Check("FAIL", "service user", f"{host.user} does not exist on this host",
                            "create it (useradd --system bshmd) or name the account the service runs as"))
        account = ServiceUser.named(None)
    checks += model_checks(config)
    if tensorflow and config.model.runtime == "tensorflow":
        checks += tensorflow_checks(config)
    checks += [Check(*row) for row in runtime_checks(config.model)]
    for folder in config.folders:
        checks += folder_checks(config, folder, account, host)
    checks += space_checks(config)
    checks += local_state_checks(config, mounts, host.environ)
    # The daemon's own test of its state folder (bshmd.ledger.statedir), in its words.
    checks.append(Check(*state_dir_check(None if ledger_url(config, host.environ) else state_dir(config, host.environ))))
    checks += inotify_checks(config, mounts, host.inotify_watches)
    checks.append(instance_check(config, host.environ))
    checks.append(systemd_check(config, host.environ))
    checks.append(http_check(config))
    checks.append(clock_check())
    return checks


def render(checks: Iterable[Check]) -> str:
    """One line per check: status, what was checked, what was found and, if any, the fix."""
    rows = list(checks)
    width = max((len(c.name) for c in rows), default=0)
    lines = []
    for c in rows:
        line = f"{c.status:<4}  {c.name:<{width}}  {c.detail}"
        if c.fix:
            line += f"  → fix: {c.fix}"
        lines.append(line)
    failed = sum(c.status == "FAIL" for c in rows)
    warned = sum(c.status == "WARN" for c in rows)
    lines.append(f"{len(rows)} checks: {failed} failed, {warned} warnings")
    return "\n".join(lines) + "\n"


def exit_status(checks: list[Check]) -> int:
    return 1 if any(c.status == "FAIL" for c in checks) else 0
