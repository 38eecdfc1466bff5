"""The ledger's tables, as numbered migrations applied in order, once, under a lock.

Never edit a migration that has shipped: add the next number. ``{blob}``, ``{real}`` and
``{big}`` become each dialect's type (see backend.py).
"""

from __future__ import annotations

import logging
import uuid

from bshmd.ledger.backend import Backend, Tx

log = logging.getLogger("bshmd.ledger")

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "jobs, folders, leases", [
        """CREATE TABLE IF NOT EXISTS meta (
               name TEXT PRIMARY KEY,
               value TEXT NOT NULL)""",
        # One row per folder pair; ``id`` is the uuid in the output share's marker, so hosts
        # that mount the share at different paths still agree on which folder it is.
        """CREATE TABLE IF NOT EXISTS folders (
               id TEXT PRIMARY KEY,
               input TEXT NOT NULL,
               output TEXT NOT NULL,
               host TEXT NOT NULL,
               created_at {real} NOT NULL)""",
        # One row per input file (its relative path); size and mtime tell its version.
        """CREATE TABLE IF NOT EXISTS jobs (
               folder TEXT NOT NULL,
               relpath {blob} NOT NULL,
               size {big} NOT NULL,
               mtime_ns {big} NOT NULL,
               state TEXT NOT NULL CHECK (state IN ('ready', 'claimed', 'done', 'released')),
               epoch {big} NOT NULL DEFAULT 0,
               holder TEXT,
               token TEXT,
               host TEXT,
               pid {big},
               lease_expires {real},
               outcome TEXT,
               reason TEXT,
               retry_after {real},
               attempts {big} NOT NULL DEFAULT 0,
               taken_from TEXT,
               updated_at {real} NOT NULL,
               completed_at {real},
               PRIMARY KEY (folder, relpath))""",
        "CREATE INDEX IF NOT EXISTS jobs_token ON jobs (token) WHERE state = 'claimed'",
        "CREATE INDEX IF NOT EXISTS jobs_state ON jobs (folder, state)",
        "CREATE INDEX IF NOT EXISTS jobs_waiting ON jobs (folder, updated_at) WHERE state IN ('ready', 'released')",
        # Named leases: one scanner per folder, and anything else only one instance may do.
        """CREATE TABLE IF NOT EXISTS leases (
               name TEXT PRIMARY KEY,
               holder TEXT NOT NULL,
               token TEXT NOT NULL,
               host TEXT NOT NULL,
               epoch {big} NOT NULL DEFAULT 1,
               expires {real} NOT NULL)""",
    ]),
    # claim_ready asks for the oldest claimable rows (ready, released, or claimed with a lease
    # that ran out) with LIMIT: with jobs_waiting, which leaves out the claimed rows, PostgreSQL
    # could only read and sort every waiting row, 131 ms a claim at 100,000 ready rows
    # (bench/bench_fleet.py). This one lets it read the oldest few in order and stop.
    (2, "claimable rows in claim order", [
        "CREATE INDEX IF NOT EXISTS jobs_claimable ON jobs (folder, updated_at) "
        "WHERE state IN ('ready', 'released', 'claimed')",
        "DROP INDEX IF EXISTS jobs_waiting",
    ]),
]

LATEST = MIGRATIONS[-1][0]


def migrate(backend: Backend) -> str:
    """Bring the database up to LATEST; returns the ledger's id (made by the first migration)."""

    def apply(tx: Tx) -> str:
        if tx.dialect == "postgresql":
            tx.execute("SELECT pg_advisory_xact_lock(?)", (0x6273686D64,))  # 'bshmd'
        tx.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
                          version INTEGER PRIMARY KEY,
                          name TEXT NOT NULL,
                          applied_at {real} NOT NULL)""")
        done = {row[0] for row in tx.query("SELECT version FROM schema_migrations")}
        for version, name, statements in MIGRATIONS:
            if version in done:
                continue
            for statement in statements:
                tx.execute(statement)
            tx.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, {now})",
                       (version, name))
            log.info("job ledger %s: applied migration %d (%s)", backend.describe(), version, name)
        newer = [v for v in done if v > LATEST]
        if newer:
            from bshmd.errors import LedgerUnavailable

            raise LedgerUnavailable(f"the job ledger {backend.describe()} has schema version {max(newer)}, "
                                    f"newer than this bshmd knows ({LATEST}): upgrade bshmd")
        row = tx.one("SELECT value FROM meta WHERE name = 'ledger_id'")
        if row is None:
            ledger_id = uuid.uuid4().hex
            tx.execute("INSERT INTO meta (name, value) VALUES ('ledger_id', ?)", (ledger_id,))
            return ledger_id
        return str(row[0])

    return backend.transaction(apply)


def schema_version(tx: Tx) -> int:
    row = tx.one("SELECT max(version) FROM schema_migrations")
    return int(row[0]) if row and row[0] is not None else 0
