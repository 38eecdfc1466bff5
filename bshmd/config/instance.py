"""Which instance this process is: one answer for the daemon, the review page and every command.

Instances that share folders tell their claims apart by this id, and the quarantine records
who acted (``by``) with it; the daemon, ``bshmd review``, ``bshmd quarantine accept`` and
``bshmd process`` must therefore agree on it for the same configuration and environment.
"""

from __future__ import annotations

import os
import re
import socket

from bshmd.errors import ConfigError

INSTANCE_ENV = "BSHMD_INSTANCE_ID"  # set per GPU by the systemd template and docker-compose.yml
INSTANCE_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"


def default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def instance_id(configured: str | None, environ: dict[str, str] | None = None) -> str:
    """``instance_id`` from the file, else ``$BSHMD_INSTANCE_ID``, else ``<host>-<pid>``."""
    if configured:
        return configured
    value = (os.environ if environ is None else environ).get(INSTANCE_ENV, "")
    if value:
        if not re.fullmatch(INSTANCE_PATTERN, value):
            raise ConfigError(f"${INSTANCE_ENV} = {value!r}: expected 1-64 letters, digits, '.', '_' or '-'")
        return value
    return default_instance_id()
