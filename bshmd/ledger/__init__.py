"""The job ledger: one database row per input file, the single record of what is in flight and
what is done, shared by every instance that watches the same folders.

- SQLite (default): ``<state_dir>/ledger.db``, for the instances of one host (one per GPU).
- PostgreSQL (``ledger.url`` or ``$BSHMD_LEDGER_URL``): for instances on several hosts.

Public API: ``open_ledger`` (a ``Ledger`` for a configuration), ``Claims``/``FolderClaims``
(the claims of this process), ``Outcome``; see store.py for the claim protocol (admin.py:
listings and operator commands; leases.py: role leases), share.py for the share marker that
keeps two ledgers off one output folder, and local.py for where the SQLite ledger may live.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from bshmd.config.redact import redact_url
from bshmd.errors import ClaimLost, LedgerUnavailable, ShareOwnedElsewhere
from bshmd.ledger.outcome import Outcome

if TYPE_CHECKING:
    from bshmd.config import Config
    from bshmd.ledger.store import Ledger

LEDGER_URL_ENV = "BSHMD_LEDGER_URL"
STATE_DIR_ENV = "BSHMD_STATE_DIR"
DEFAULT_STATE_DIR = Path("/var/lib/bshmd")
LEDGER_FILE = "ledger.db"

__all__ = ["ClaimLost", "LedgerUnavailable", "Outcome", "ShareOwnedElsewhere", "ledger_url", "open_ledger",
           "redact_url", "state_dir"]


def state_dir(config: Config, environ: dict[str, str] | None = None) -> Path:
    """This host's state folder: ``state_dir``, else $BSHMD_STATE_DIR, else systemd's
    $STATE_DIRECTORY (its first entry), else /var/lib/bshmd."""
    env = os.environ if environ is None else environ
    if config.state_dir is not None:
        return config.state_dir
    if env.get(STATE_DIR_ENV):
        return Path(env[STATE_DIR_ENV])
    if env.get("STATE_DIRECTORY"):
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    return DEFAULT_STATE_DIR


def ledger_url(config: Config, environ: dict[str, str] | None = None) -> str | None:
    """The PostgreSQL URL ($BSHMD_LEDGER_URL wins over ``ledger.url``), or None for SQLite."""
    env = os.environ if environ is None else environ
    return env.get(LEDGER_URL_ENV) or config.ledger.url


def describe_ledger(config: Config, environ: dict[str, str] | None = None) -> str:
    """Where the ledger is, password never included."""
    url = ledger_url(config, environ)
    return redact_url(url) if url else str(state_dir(config, environ) / LEDGER_FILE)


def open_ledger(config: Config, instance_id: str = "bshmd-cli", environ: dict[str, str] | None = None) -> Ledger:
    """Connect to (and migrate) the ledger the configuration names. Raises LedgerUnavailable."""
    from bshmd.ledger.backend import PostgresBackend, SQLiteBackend, read_password
    from bshmd.ledger.store import Ledger

    url = ledger_url(config, environ)
    retry = config.ledger.retry_seconds
    if url:
        backend = PostgresBackend(url, read_password(config.ledger.password_file, environ), retry_seconds=retry)
    else:
        backend = SQLiteBackend(state_dir(config, environ) / LEDGER_FILE, retry_seconds=retry)
    try:
        return Ledger(backend, instance_id=instance_id)
    except LedgerUnavailable:
        backend.close()
        raise
    except Exception as exc:
        backend.close()
        raise LedgerUnavailable(f"cannot open the job ledger {backend.describe()}: {exc}") from exc
