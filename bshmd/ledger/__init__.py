"""The job ledger: one database row per input file, the single record of what is in flight and
what is done, shared by every instance that watches the same folders.

- SQLite (default): ``<state_dir>/ledger.db``, for the instances of one host (one per GPU).
- PostgreSQL (``ledger.url`` or ``$BSHMD_LEDGER_URL``): for instances on several hosts.

Public API: ``open_ledger`` (a ``Ledger`` for a configuration), ``Claims``/``FolderClaims``
(the claims of this process), ``Outcome``; see store.py for the claim protocol, share.py
for the share marker that keeps two ledgers off one output folder, and statedir.py for where
the SQLite ledger lives when ``state_dir`` is not set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from bshmd.errors import ClaimLost, LedgerUnavailable, ShareOwnedElsewhere
from bshmd.ledger.backend import redact_url
from bshmd.ledger.outcome import Outcome
from bshmd.ledger.statedir import LEDGER_FILE, default_state_dir, ensure_state_dir

if TYPE_CHECKING:
    from bshmd.config import Config
    from bshmd.ledger.store import Ledger

LEDGER_URL_ENV = "BSHMD_LEDGER_URL"

__all__ = ["ClaimLost", "LedgerUnavailable", "Outcome", "ShareOwnedElsewhere", "ledger_url", "open_ledger",
           "redact_url", "state_dir"]


def state_dir(config: Config, environ: dict[str, str] | None = None) -> Path:
    """This host's state folder: ``state_dir``, else the default of statedir.py ($BSHMD_STATE_DIR,
    systemd's $STATE_DIRECTORY, /var/lib/bshmd for root, ~/.local/state/bshmd for other users)."""
    return config.state_dir if config.state_dir is not None else default_state_dir(environ)


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
        backend = SQLiteBackend(ensure_state_dir(state_dir(config, environ)) / LEDGER_FILE, retry_seconds=retry)
    try:
        return Ledger(backend, instance_id=instance_id)
    except LedgerUnavailable:
        backend.close()
        raise
    except Exception as exc:
        backend.close()
        raise LedgerUnavailable(f"cannot open the job ledger {backend.describe()}: {exc}") from exc
