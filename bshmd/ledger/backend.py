"""One small interface over the two databases the ledger runs on: SQLite and PostgreSQL.

``Backend.transaction(fn)`` runs ``fn(tx)`` in one write transaction and commits it:

- SQLite (``<state_dir>/ledger.db``, one host): WAL journal, ``BEGIN IMMEDIATE`` so writers
  queue on the database lock instead of failing half-way, ``synchronous=NORMAL`` (see _connect).
- PostgreSQL (``ledger.url``, several hosts): READ COMMITTED; rows a transaction means to
  change are read with ``FOR UPDATE SKIP LOCKED`` (``tx.skip_locked``), so two instances
  claiming at once never wait on each other: each takes the rows the other is not holding.

Time comes from the database (``tx.now()``, ``NOW`` in SQL): leases written by one host and
judged by another compare one clock, so the hosts' own clocks do not matter.

A lost connection (server restart, network cut, idle timeout) is retried: the connection is
opened anew and ``fn`` runs again from the start, for up to ``retry_seconds``; then
``LedgerUnavailable``. A commit whose acknowledgement was lost may thus run ``fn`` twice;
every ledger operation is written to be idempotent for its own token (see store.py).

SQL is written once with ``?`` placeholders and ``{blob}``/``{real}``/``{big}`` types.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from bshmd.config.redact import redact_url
from bshmd.errors import LedgerUnavailable

log = logging.getLogger("bshmd.ledger")

T = TypeVar("T")

# The database clock as seconds since the epoch, as a float, in each dialect.
_NOW = {
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
    "postgresql": "(extract(epoch from clock_timestamp())::float8)",
}
_TYPES = {
    "sqlite": {"blob": "BLOB", "real": "REAL", "big": "INTEGER"},
    "postgresql": {"blob": "BYTEA", "real": "DOUBLE PRECISION", "big": "BIGINT"},
}


class Tx:
    """The handle ``fn`` gets inside a transaction."""

    def __init__(self, backend: Backend, cursor: Any) -> None:
        self.backend = backend
        self._cursor = cursor
        self.dialect = backend.dialect
        self.skip_locked = " FOR UPDATE SKIP LOCKED" if backend.dialect == "postgresql" else ""

    def sql(self, text: str) -> str:
        return self.backend.sql(text)

    def execute(self, text: str, params: Sequence[Any] = ()) -> int:
        self._cursor.execute(self.sql(text), tuple(params))
        return self._cursor.rowcount

    def query(self, text: str, params: Sequence[Any] = ()) -> list[tuple]:
        self._cursor.execute(self.sql(text), tuple(params))
        return [tuple(_plain(v) for v in row) for row in self._cursor.fetchall()]

    def one(self, text: str, params: Sequence[Any] = ()) -> tuple | None:
        rows = self.query(text, params)
        return rows[0] if rows else None

    def now(self) -> float:
        row = self.one("SELECT {now}")
        assert row is not None
        return float(row[0])


def _plain(value: Any) -> Any:
    return bytes(value) if isinstance(value, memoryview) else value


class Backend:
    """A connection to one ledger database, shared by the threads of one process (serialised)."""

    dialect = ""

    def __init__(self, retry_seconds: float = 15.0) -> None:
        self.retry_seconds = retry_seconds
        self._lock = threading.RLock()
        self._conn: Any = None
        self._down_since: float | None = None

    # --- to be provided by each dialect ---------------------------------------------------

    def _connect(self) -> Any:
        raise NotImplementedError

    def _begin(self, conn: Any) -> Any:
        raise NotImplementedError

    def _is_connection_error(self, exc: BaseException) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    # --- shared ---------------------------------------------------------------------------

    def sql(self, text: str) -> str:
        text = text.replace("{now}", _NOW[self.dialect])
        for name, value in _TYPES[self.dialect].items():
            text = text.replace("{" + name + "}", value)
        if self.dialect == "postgresql":
            text = text.replace("?", "%s")
        return text

    def transaction(self, fn: Callable[[Tx], T], *, retry: bool = True) -> T:
        deadline = time.monotonic() + (self.retry_seconds if retry else 0.0)
        delay = 0.05
        with self._lock:
            while True:
                try:
                    if self._conn is None:
                        self._conn = self._connect()
                    result = self._run(fn)
                    if self._down_since is not None:
                        log.warning("the job ledger %s is reachable again (after %.1f s)", self.describe(),
                                    time.monotonic() - self._down_since)
                        self._down_since = None
                    return result
                except Exception as exc:
                    if not self._is_connection_error(exc):
                        raise
                    self._drop()
                    if self._down_since is None:
                        self._down_since = time.monotonic()
                        log.warning("lost the job ledger %s (%s); retrying", self.describe(), _one_line(exc))
                    if time.monotonic() >= deadline:
                        raise LedgerUnavailable(f"the job ledger {self.describe()} cannot be reached: "
                                                f"{_one_line(exc)}") from exc
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)

    def _run(self, fn: Callable[[Tx], T]) -> T:
        cursor = self._begin(self._conn)
        try:
            result = fn(Tx(self, cursor))
        except BaseException:
            with contextlib.suppress(Exception):
                self._conn.rollback()
            raise
        self._conn.commit()
        return result

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        with self._lock:
            self._drop()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class SQLiteBackend(Backend):
    dialect = "sqlite"

    def __init__(self, path: Path, retry_seconds: float = 15.0) -> None:
        super().__init__(retry_seconds)
        self.path = Path(path)

    def describe(self) -> str:
        return str(self.path)

    def _connect(self) -> Any:
        if not self.path.parent.is_dir():
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL: in WAL mode a crash of the process loses nothing; a power cut may lose the last
        # commits (never corrupts): a lost done row is then a claim of an earlier run, and the
        # next claim finds the stamped results and records them. FULL costs an fsync per commit.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _begin(self, conn: Any) -> Any:
        cursor = conn.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        return cursor

    def _is_connection_error(self, exc: BaseException) -> bool:
        # A locked database past the busy timeout, or the file's folder gone away.
        return isinstance(exc, sqlite3.OperationalError) and any(
            word in str(exc) for word in ("locked", "unable to open", "disk I/O", "busy"))


class PostgresBackend(Backend):
    dialect = "postgresql"

    def __init__(self, url: str, password: str | None = None, retry_seconds: float = 15.0,
                 connect_timeout: float = 5.0) -> None:
        super().__init__(retry_seconds)
        self.url = url
        self._password = password
        self.connect_timeout = connect_timeout

    def describe(self) -> str:
        return redact_url(self.url)

    def __repr__(self) -> str:  # never the password
        return f"PostgresBackend({self.describe()!r})"

    def _connect(self) -> Any:
        import psycopg

        kwargs: dict[str, Any] = {"connect_timeout": max(1, int(self.connect_timeout)),
                                  "application_name": "bshmd"}
        if self._password is not None:
            kwargs["password"] = self._password
        conn = psycopg.connect(self.url, **kwargs)
        with conn.cursor() as cursor:
            # A connection left inside a transaction by a stalled holder must not block others.
            cursor.execute("SET idle_in_transaction_session_timeout = '60s'")
            cursor.execute("SET lock_timeout = '30s'")
        conn.commit()
        return conn

    def _begin(self, conn: Any) -> Any:
        return conn.cursor()  # psycopg opens the transaction with the first statement

    def _is_connection_error(self, exc: BaseException) -> bool:
        import psycopg

        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
            return True
        # Serialisation failures and deadlocks: the transaction is simply run again.
        return isinstance(exc, psycopg.errors.SerializationFailure | psycopg.errors.DeadlockDetected |
                          psycopg.errors.LockNotAvailable | psycopg.errors.AdminShutdown)


def read_password(password_file: Path | None, environ: dict[str, str] | None = None) -> str | None:
    """The PostgreSQL password: ``ledger.password_file``, else systemd's credential
    ``ledger-password`` (``LoadCredential=``), else none (the URL or ~/.pgpass may carry it)."""
    env = os.environ if environ is None else environ
    candidates = []
    if password_file is not None:
        candidates.append(Path(password_file))
    elif env.get("CREDENTIALS_DIRECTORY"):
        candidates.append(Path(env["CREDENTIALS_DIRECTORY"]) / "ledger-password")
    for path in candidates:
        try:
            return path.read_text().strip("\r\n")
        except FileNotFoundError:
            if password_file is not None:
                raise
        except OSError as exc:
            raise LedgerUnavailable(f"cannot read the ledger password file {path}: {exc.strerror or exc}") from exc
    return None
