"""Where this host's state folder is when the configuration names none, and whether the account
the daemon runs as can keep its SQLite ledger there.

The rule, first match wins:

1. ``$BSHMD_STATE_DIR`` (the test suite gives every test its own);
2. systemd's ``$STATE_DIRECTORY`` (its first entry), set by ``StateDirectory=bshmd`` in the units;
3. root: ``/var/lib/bshmd``, the system install's place;
4. any other account: ``/var/lib/bshmd`` if it already holds a ledger this account can write
   (a 0.2 install run by hand as its service account keeps its history), else
   ``$XDG_STATE_HOME/bshmd``, else ``~/.local/state/bshmd`` — so a photographer's own account
   can start the daemon without a folder that only root may create.

A folder that cannot be created or written ends the start with one sentence naming the
folder, the account and the key to set; ``bshmd doctor`` shows the same sentence.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from bshmd.errors import ConfigError
from bshmd.fs.paths import mode_and_owner

STATE_DIR_ENV = "BSHMD_STATE_DIR"
SYSTEMD_STATE_ENV = "STATE_DIRECTORY"
SYSTEM_STATE_DIR = Path("/var/lib/bshmd")
LEDGER_FILE = "ledger.db"
APP_NAME = "bshmd"


def default_state_dir(environ: Mapping[str, str] | None = None, *, euid: int | None = None,
                      system_dir: Path = SYSTEM_STATE_DIR) -> Path:
    """The state folder for a configuration without ``state_dir`` (the rule in the docstring)."""
    env = os.environ if environ is None else environ
    uid = os.geteuid() if euid is None else euid
    if env.get(STATE_DIR_ENV):
        return Path(env[STATE_DIR_ENV])
    if env.get(SYSTEMD_STATE_ENV):
        return Path(env[SYSTEMD_STATE_ENV].split(":")[0])
    if uid == 0:
        return system_dir
    # os.path, not Path: False, not PermissionError, for root's 0750 folder left by a run as root.
    if os.path.isfile(system_dir / LEDGER_FILE) and os.access(system_dir, os.W_OK | os.X_OK):
        return system_dir
    xdg = env.get("XDG_STATE_HOME", "")
    if os.path.isabs(xdg):  # the XDG spec: a relative value is invalid and ignored
        return Path(xdg) / APP_NAME
    home = _home(env, uid)
    return home / ".local" / "state" / APP_NAME if home else system_dir


def _home(env: Mapping[str, str], uid: int) -> Path | None:
    if os.path.isabs(env.get("HOME", "")):
        return Path(env["HOME"])
    try:
        return Path(pwd.getpwuid(uid).pw_dir)
    except KeyError:
        return None  # an account without a passwd entry: the system folder, and its error if any


def account_name(uid: int | None = None) -> str:
    """The account's login name, or ``uid N`` for an account without a passwd entry."""
    uid = os.geteuid() if uid is None else uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def state_dir_problem(folder: Path, *, create: bool) -> str | None:
    """None when this account can keep its ledger in ``folder``, else the one sentence that says
    why not. ``create``: make the folder (the daemon); without it nothing is touched (the doctor)
    and a missing folder only needs a writable nearest existing parent. Both find the reason the
    same way, so the doctor says what the daemon would."""
    failed: OSError | None = None
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o750)
        except OSError as exc:
            failed = exc
    verdict = _why_not(folder)
    if verdict is None and failed is not None:
        where = f"{failed.filename}: " if failed.filename else ""
        verdict = ("create", f"{where}{failed.strerror or type(failed).__name__}")
    if verdict is None:
        return None
    verb, reason = verdict
    name = account_name()
    user = name if name.startswith("uid ") else f"{name} (uid {os.geteuid()})"
    return (f"user {user} cannot {verb} the state folder {folder} ({reason}): "
            f"set state_dir in the configuration to a folder {name} can write")


def _why_not(folder: Path) -> tuple[str, str] | None:
    """("create" or "write", why) when this account cannot use ``folder``, judged at its nearest
    existing ancestor; None when it can."""
    target = folder
    while not os.path.exists(target) and target != target.parent:  # False too where a parent is closed
        target = target.parent
    verb = "write" if target == folder else "create"
    if not target.is_dir():
        return "create", f"{target} is not a folder"
    if os.statvfs(target).f_flag & os.ST_RDONLY:
        return verb, f"{target} is on a read-only file system"
    if not os.access(target, os.W_OK | os.X_OK):
        return verb, f"{target}: {mode_and_owner(target)}"
    return None


def ensure_state_dir(folder: Path) -> Path:
    """Create ``folder`` if needed and check this account may write it; ConfigError (exit 2) if not."""
    problem = state_dir_problem(folder, create=True)
    if problem:
        raise ConfigError(problem)
    return folder


class StateDirCheck(NamedTuple):
    """A ``bshmd doctor`` line (status, name, detail, fix), in the doctor's own field order."""

    status: str
    name: str
    detail: str
    fix: str = ""


def state_dir_check(folder: Path | None) -> StateDirCheck:
    """The doctor's look at the state folder (None: the ledger is PostgreSQL, no folder needed)."""
    if folder is None:
        return StateDirCheck("OK", "state folder", "not used: the job ledger is on PostgreSQL")
    problem = state_dir_problem(folder, create=False)
    if problem:
        return StateDirCheck("FAIL", f"state folder {folder}", problem,
                             "set state_dir (or $BSHMD_STATE_DIR) to a folder this account can write")
    exists = "writable" if folder.is_dir() else "does not exist yet: `bshmd run` creates it"
    return StateDirCheck("OK", f"state folder {folder}", f"{exists} (user {account_name()})")
