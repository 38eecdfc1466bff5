"""The job ledger: one row per input file, the only record of what is in flight and what is done.

A row's ``state`` is ``ready`` (settled, waiting for any instance: the folder's scanner puts
it there), ``claimed`` (an instance works on it: ``holder``, ``token``, ``epoch``,
``lease_expires``), ``done`` (``outcome``/``reason``; permanent for that size and mtime) or
``released`` (given back; anyone may claim it once ``retry_after`` has passed).

**Claiming** (``claim``): in one transaction, for a batch of files, each row is read (locked;
``SKIP LOCKED`` on PostgreSQL, so rows another instance is claiming right now are simply
left to it) and taken when it is missing, released and due, claimed by an earlier run of
this instance, claimed with an expired lease, or of another size/mtime (the file changed).
Taking a row adds one to its ``epoch``: the fencing number. Every later write by the holder
(``renew``, ``complete``, ``release``) names ``token`` and ``epoch`` in its ``WHERE``; once
another instance has taken the row, it matches nothing and the holder learns it lost the
claim (``ClaimLost``): a stalled holder cannot record anything over a newer one.

Leases are judged by the database's clock (``{now}``), never a host's.

Idempotence: a transaction whose commit acknowledgement was lost runs again (backend.py).
Claiming a row this token already holds returns it again; completing a row this token
already completed succeeds.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bshmd.ledger.backend import Backend, Tx
from bshmd.ledger.keys import FileKey
from bshmd.ledger.outcome import RELEASED, Outcome
from bshmd.ledger.schema import migrate

log = logging.getLogger("bshmd.ledger")

CLAIMED = "claimed"
DONE = "done"
BATCH = 200  # rows per statement in batch operations (SQLite allows 32766 parameters)


def encode(relpath: str) -> bytes:
    """Relative paths are stored as bytes: names that are not UTF-8 survive unchanged."""
    return os.fsencode(relpath)


def decode(raw: bytes) -> str:
    return os.fsdecode(bytes(raw))


@dataclass(frozen=True)
class Taken:
    """A claim won: the fencing ``epoch``, and whose claim it replaced (None: nobody's, or a release)."""

    key: FileKey
    epoch: int
    taken_from: str | None
    reason: str  # new | released | lease expired | earlier run of this instance | stale key | held


@dataclass(frozen=True)
class Verdict:
    """Why a file was not taken: ``done``, ``held`` (live lease elsewhere), ``waiting`` (released,
    retry not yet due; ``due_in`` seconds) or ``busy`` (row locked by a concurrent claimer)."""

    key: FileKey
    why: str
    due_in: float = 0.0


@dataclass(frozen=True)
class JobRow:
    folder: str
    relpath: str
    size: int
    mtime_ns: int
    state: str
    epoch: int
    holder: str | None
    host: str | None
    lease_expires: float | None
    outcome: str | None
    reason: str | None
    retry_after: float | None
    attempts: int
    updated_at: float
    completed_at: float | None


_JOB_COLUMNS = ("folder, relpath, size, mtime_ns, state, epoch, holder, host, lease_expires, outcome, "
                "reason, retry_after, attempts, updated_at, completed_at")


def _job(row: tuple) -> JobRow:
    values = list(row)
    values[1] = decode(values[1])
    return JobRow(*values)


class Ledger:
    """The ledger database of this process (one per daemon, whatever the number of folders)."""

    def __init__(self, backend: Backend, *, instance_id: str = "bshmd-cli") -> None:
        self.backend = backend
        self.instance_id = instance_id
        self.token = uuid.uuid4().hex  # tells this run's claims from an earlier run's
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.ledger_id = migrate(backend)

    @property
    def dialect(self) -> str:
        return self.backend.dialect

    def describe(self) -> str:
        return self.backend.describe()

    def close(self) -> None:
        self.backend.close()

    # --- folders --------------------------------------------------------------------------

    def register_folder(self, folder_id: str, input: str, output: str) -> None:
        self.backend.transaction(lambda tx: tx.execute(
            "INSERT INTO folders (id, input, output, host, created_at) VALUES (?, ?, ?, ?, {now}) "
            "ON CONFLICT (id) DO NOTHING", (folder_id, input, output, self.host)))

    def folders(self) -> list[tuple[str, str, str, str]]:
        return self.backend.transaction(lambda tx: tx.query("SELECT id, input, output, host FROM folders ORDER BY input"))

    # --- claiming -------------------------------------------------------------------------

    def claim(self, folder: str, keys: Sequence[FileKey], lease_seconds: float) -> list[Taken | Verdict]:
        """Claim each of ``keys`` (one transaction per BATCH); one Taken or Verdict per key, in order."""
        results: list[Taken | Verdict] = []
        for start in range(0, len(keys), BATCH):
            chunk = list(keys[start:start + BATCH])
            results += self.backend.transaction(lambda tx, chunk=chunk: self._claim_tx(tx, folder, chunk, lease_seconds))
        return results

    def _claim_tx(self, tx: Tx, folder: str, keys: list[FileKey], lease: float) -> list[Taken | Verdict]:
        now = tx.now()
        wanted = {encode(k.relpath): k for k in keys}
        marks = ", ".join("?" * len(wanted))
        rows = tx.query(
            f"SELECT relpath, size, mtime_ns, state, epoch, holder, token, lease_expires, retry_after, taken_from "
            f"FROM jobs "
            f"WHERE folder = ? AND relpath IN ({marks}){tx.skip_locked}", (folder, *wanted))
        found = {bytes(row[0]): row for row in rows}
        out: list[Taken | Verdict] = []
        for raw, key in wanted.items():
            row = found.get(raw)
            if row is None:
                inserted = tx.execute(
                    "INSERT INTO jobs (folder, relpath, size, mtime_ns, state, epoch, holder, token, host, pid, "
                    "lease_expires, attempts, updated_at) VALUES (?, ?, ?, ?, 'claimed', 1, ?, ?, ?, ?, ?, 1, ?) "
                    "ON CONFLICT (folder, relpath) DO NOTHING",
                    (folder, raw, key.size, key.mtime_ns, self.instance_id, self.token, self.host, self.pid,
                     now + lease, now))
                # 0 rows: another instance holds the row locked (or inserted it just now).
                out.append(Taken(key, 1, None, "new") if inserted == 1 else Verdict(key, "busy"))
                continue
            _, size, mtime_ns, state, epoch, holder, token, lease_expires, retry_after, before = row
            same = (int(size), int(mtime_ns)) == (key.size, key.mtime_ns)
            taken_from: str | None = None
            if not same:
                reason = "stale key"
            elif state == DONE:
                out.append(Verdict(key, "done"))
                continue
            elif state == "ready":
                reason = "new"
            elif state == RELEASED:
                if retry_after is not None and float(retry_after) > now:
                    out.append(Verdict(key, "waiting", float(retry_after) - now))
                    continue
                # An adopted 0.1 claim (or a release after a takeover) keeps whose it was.
                reason, taken_from = "released", before
            elif token == self.token:
                out.append(Taken(key, int(epoch), None, "held"))  # a retried transaction: ours already
                continue
            elif holder == self.instance_id:
                reason, taken_from = "earlier run of this instance", str(holder)
            elif lease_expires is None or float(lease_expires) < now:
                reason, taken_from = "lease expired", str(holder)
            else:
                out.append(Verdict(key, "held"))
                continue
            changed = tx.execute(
                "UPDATE jobs SET size = ?, mtime_ns = ?, state = 'claimed', epoch = epoch + 1, holder = ?, "
                "token = ?, host = ?, pid = ?, lease_expires = ?, outcome = NULL, reason = NULL, "
                "retry_after = NULL, completed_at = NULL, taken_from = ?, "
                "attempts = CASE WHEN ? THEN attempts + 1 ELSE 1 END, updated_at = ? "
                "WHERE folder = ? AND relpath = ? AND epoch = ?",
                (key.size, key.mtime_ns, self.instance_id, self.token, self.host, self.pid, now + lease,
                 taken_from, same, now, folder, raw, epoch))
            if changed != 1:
                out.append(Verdict(key, "busy"))
                continue
            out.append(Taken(key, int(epoch) + 1, taken_from, reason))
        return out

    def mark_ready(self, folder: str, keys: Sequence[FileKey]) -> dict[FileKey, str]:
        """The scanner's hand-over: each settled file becomes a ``ready`` row unless its row
        already has this size and mtime. A row of another version is replaced (and fenced: its
        epoch grows, so a holder of the old version records nothing). Returns each key's row
        state afterwards: ready, claimed, done or released."""

        def run(tx: Tx, chunk: list[FileKey]) -> dict[FileKey, str]:
            wanted = {encode(k.relpath): k for k in chunk}
            marks = ", ".join("?" * len(wanted))
            rows = {bytes(r[0]): r for r in tx.query(
                f"SELECT relpath, size, mtime_ns, state, epoch FROM jobs WHERE folder = ? AND relpath IN ({marks})",
                (folder, *wanted))}
            out: dict[FileKey, str] = {}
            for raw, key in wanted.items():
                row = rows.get(raw)
                if row is None:
                    tx.execute("INSERT INTO jobs (folder, relpath, size, mtime_ns, state, epoch, attempts, updated_at) "
                               "VALUES (?, ?, ?, ?, 'ready', 0, 0, {now}) ON CONFLICT (folder, relpath) DO NOTHING",
                               (folder, raw, key.size, key.mtime_ns))
                    out[key] = "ready"
                elif (int(row[1]), int(row[2])) != (key.size, key.mtime_ns):
                    tx.execute("UPDATE jobs SET size = ?, mtime_ns = ?, state = 'ready', epoch = epoch + 1, "
                               "holder = NULL, token = NULL, lease_expires = NULL, outcome = NULL, reason = NULL, "
                               "retry_after = NULL, taken_from = NULL, attempts = 0, completed_at = NULL, "
                               "updated_at = {now} WHERE folder = ? AND relpath = ? AND epoch = ?",
                               (key.size, key.mtime_ns, folder, raw, row[4]))
                    out[key] = "ready"
                else:
                    out[key] = str(row[3])
            return out

        result: dict[FileKey, str] = {}
        for start in range(0, len(keys), BATCH):
            chunk = list(keys[start:start + BATCH])
            result.update(self.backend.transaction(lambda tx, chunk=chunk: run(tx, chunk)))
        return result

    def claim_ready(self, folder: str, limit: int, lease_seconds: float) -> list[Taken]:
        """Claim up to ``limit`` files waiting in ``folder`` in one transaction: ready rows,
        released rows whose retry is due, claims of an earlier run of this instance and
        claims whose lease ran out (by the database clock), oldest first. On PostgreSQL rows
        another instance is claiming right now are skipped (SKIP LOCKED), not waited for."""

        def run(tx: Tx) -> list[Taken]:
            now = tx.now()
            rows = tx.query(
                # state IN (...) first: the (folder, state) index then skips the done rows,
                # which are nearly all of them.
                "SELECT relpath, size, mtime_ns, state, epoch, holder, taken_from FROM jobs WHERE folder = ? "
                "AND state IN ('ready', 'released', 'claimed') AND ("
                "state = 'ready' OR (state = 'released' AND (retry_after IS NULL OR retry_after <= ?)) "
                "OR (state = 'claimed' AND (lease_expires < ? OR (holder = ? AND token <> ?)))) "
                f"ORDER BY updated_at LIMIT ?{tx.skip_locked}",
                (folder, now, now, self.instance_id, self.token, limit))
            taken: list[Taken] = []
            for raw, size, mtime_ns, state, epoch, holder, before in rows:
                key = FileKey(decode(raw), int(size), int(mtime_ns))
                if state == CLAIMED:
                    reason = "earlier run of this instance" if holder == self.instance_id else "lease expired"
                    taken_from = str(holder)
                else:
                    reason, taken_from = ("new", None) if state == "ready" else ("released", before)
                changed = tx.execute(
                    "UPDATE jobs SET state = 'claimed', epoch = epoch + 1, holder = ?, token = ?, host = ?, pid = ?, "
                    "lease_expires = ?, retry_after = NULL, taken_from = ?, attempts = attempts + 1, updated_at = ? "
                    "WHERE folder = ? AND relpath = ? AND epoch = ?",
                    (self.instance_id, self.token, self.host, self.pid, now + lease_seconds, taken_from, now,
                     folder, raw, epoch))
                if changed == 1:
                    taken.append(Taken(key, int(epoch) + 1, taken_from, reason))
            return taken

        return self.backend.transaction(run)

    def known_among(self, folder: str, keys: Iterable[FileKey]) -> set[FileKey]:
        """Which of ``keys`` have a row of exactly that size and mtime, in any state."""
        return self._matching(folder, keys, "")

    def drop(self, folder: str, key: FileKey, epoch: int) -> bool:
        """Delete a row this token holds (its file is gone from the folder)."""
        return self.backend.transaction(lambda tx: tx.execute(
            "DELETE FROM jobs WHERE folder = ? AND relpath = ? AND token = ? AND epoch = ?",
            (folder, encode(key.relpath), self.token, epoch)) == 1)

    def renew(self, lease_seconds: float) -> set[tuple[str, str, int]]:
        """Extend every lease of this token; returns the (folder, relpath, epoch) still held."""

        def run(tx: Tx) -> set[tuple[str, str, int]]:
            rows = tx.query(
                "UPDATE jobs SET lease_expires = {now} + ?, updated_at = {now} "
                "WHERE token = ? AND state = 'claimed' RETURNING folder, relpath, epoch",
                (lease_seconds, self.token))
            return {(row[0], decode(row[1]), int(row[2])) for row in rows}

        return self.backend.transaction(run)

    def finish(self, folder: str, key: FileKey, epoch: int, outcome: Outcome) -> bool:
        """Record ``outcome`` for a claim this token holds at ``epoch``; False when it is not ours."""
        raw = encode(key.relpath)

        def run(tx: Tx) -> bool:
            if outcome.done:
                changed = tx.execute(
                    "UPDATE jobs SET state = 'done', outcome = ?, reason = ?, lease_expires = NULL, "
                    "retry_after = NULL, completed_at = {now}, updated_at = {now} "
                    "WHERE folder = ? AND relpath = ? AND token = ? AND epoch = ? AND state = 'claimed'",
                    (outcome.kind, outcome.reason, folder, raw, self.token, epoch))
            else:
                delay = outcome.retry_after
                changed = tx.execute(
                    "UPDATE jobs SET state = 'released', reason = ?, lease_expires = NULL, "
                    f"retry_after = {'NULL' if delay is None else '{now} + ?'}, updated_at = {{now}} "
                    "WHERE folder = ? AND relpath = ? AND token = ? AND epoch = ? AND state = 'claimed'",
                    (outcome.reason, *(() if delay is None else (float(delay),)), folder, raw, self.token, epoch))
            if changed == 1:
                return True
            # Retried after a lost acknowledgement: the row already says what we wrote.
            row = tx.one("SELECT state, token, epoch, outcome FROM jobs WHERE folder = ? AND relpath = ?",
                         (folder, raw))
            wanted = DONE if outcome.done else RELEASED
            return row is not None and row[0] == wanted and row[1] == self.token and int(row[2]) == epoch

        return self.backend.transaction(run)

    def extend(self, folder: str, key: FileKey, epoch: int, lease_seconds: float) -> bool:
        """Renew one claim if this token still holds it at ``epoch``: the fencing check right
        before results are renamed into place. Once it returns True nobody can take the file
        for ``lease_seconds``, so a write that follows at once cannot race a takeover."""
        return self.backend.transaction(lambda tx: tx.execute(
            "UPDATE jobs SET lease_expires = {now} + ?, updated_at = {now} WHERE folder = ? AND relpath = ? "
            "AND token = ? AND epoch = ? AND state = 'claimed' AND size = ? AND mtime_ns = ?",
            (lease_seconds, folder, encode(key.relpath), self.token, epoch, key.size, key.mtime_ns)) == 1)

    def holds(self, folder: str, key: FileKey, epoch: int) -> bool:
        """Whether this token still holds ``key`` at ``epoch`` (one read): the fencing check."""
        row = self.backend.transaction(lambda tx: tx.one(
            "SELECT state, token, epoch, size, mtime_ns FROM jobs WHERE folder = ? AND relpath = ?",
            (folder, encode(key.relpath))))
        return (row is not None and row[0] == CLAIMED and row[1] == self.token and int(row[2]) == epoch
                and (int(row[3]), int(row[4])) == (key.size, key.mtime_ns))

    # --- queries --------------------------------------------------------------------------

    def done_among(self, folder: str, keys: Iterable[FileKey]) -> set[FileKey]:
        """Which of ``keys`` have a done row for exactly that size and mtime."""
        return self._matching(folder, keys, "AND state = 'done' ")

    def _matching(self, folder: str, keys: Iterable[FileKey], condition: str) -> set[FileKey]:
        """Which of ``keys`` have a row of exactly that size and mtime that meets ``condition``
        (a fixed SQL fragment, never user input), asked in chunks of ``BATCH`` names."""
        keys = list(keys)
        found: set[FileKey] = set()
        for start in range(0, len(keys), BATCH):
            chunk = {encode(k.relpath): k for k in keys[start:start + BATCH]}
            marks = ", ".join("?" * len(chunk))
            rows = self.backend.transaction(lambda tx, chunk=chunk, marks=marks: tx.query(
                f"SELECT relpath, size, mtime_ns FROM jobs WHERE folder = ? {condition}"
                f"AND relpath IN ({marks})", (folder, *chunk)))
            for raw, size, mtime_ns in rows:
                key = chunk[bytes(raw)]
                if (int(size), int(mtime_ns)) == (key.size, key.mtime_ns):
                    found.add(key)
        return found

    def job(self, folder: str, relpath: str) -> JobRow | None:
        row = self.backend.transaction(lambda tx: tx.one(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE folder = ? AND relpath = ?", (folder, encode(relpath))))
        return _job(row) if row else None

    def jobs(self, folder: str | None = None, state: str | None = None, limit: int | None = None) -> list[JobRow]:
        where, params = [], []
        if folder is not None:
            where.append("folder = ?")
            params.append(folder)
        if state is not None:
            where.append("state = ?")
            params.append(state)
        text = f"SELECT {_JOB_COLUMNS} FROM jobs"
        if where:
            text += " WHERE " + " AND ".join(where)
        text += " ORDER BY folder, relpath"
        if limit is not None:
            text += f" LIMIT {int(limit)}"
        return [_job(row) for row in self.backend.transaction(lambda tx: tx.query(text, params))]

    def counts(self) -> dict[str, dict[str, int]]:
        """folder id → {claimed, done, released, expired}: for /status, metrics and `ledger status`."""

        def run(tx: Tx) -> tuple[list[tuple], list[tuple]]:
            by_state = tx.query("SELECT folder, state, count(*) FROM jobs GROUP BY folder, state")
            expired = tx.query("SELECT folder, count(*) FROM jobs WHERE state = 'claimed' AND lease_expires < {now} "
                               "GROUP BY folder")
            return by_state, expired

        by_state, expired = self.backend.transaction(run, retry=False)
        out: dict[str, dict[str, int]] = {}
        empty = {"ready": 0, "claimed": 0, "done": 0, "released": 0, "expired": 0}
        for folder, state, count in by_state:
            out.setdefault(folder, dict(empty))[state] = int(count)
        for folder, count in expired:
            out.setdefault(folder, dict(empty))["expired"] = int(count)
        return out

    def now(self) -> float:
        return self.backend.transaction(lambda tx: tx.now())

    # --- operator commands ----------------------------------------------------------------

    def forget(self, folder: str, relpaths: Iterable[str] | None = None, *, state: str | None = None) -> int:
        """Delete rows (all of ``folder``'s, or the named ones): their files count as never seen."""

        def run(tx: Tx) -> int:
            if relpaths is None:
                sql, params = "DELETE FROM jobs WHERE folder = ?", [folder]
                if state is not None:
                    sql += " AND state = ?"
                    params.append(state)
                return tx.execute(sql, params)
            return sum(tx.execute("DELETE FROM jobs WHERE folder = ? AND relpath = ?", (folder, encode(r)))
                       for r in relpaths)

        return self.backend.transaction(run)

    def reprocess(self, folder: str, relpaths: Iterable[str] | None = None, *, reason: str = "reprocess") -> int:
        """Turn done rows back into released ones: the files are processed again."""

        def run(tx: Tx) -> int:
            base = ("UPDATE jobs SET state = 'released', reason = ?, retry_after = NULL, outcome = NULL, "
                    "token = NULL, lease_expires = NULL, updated_at = {now} WHERE folder = ? AND state = 'done'")
            if relpaths is None:
                return tx.execute(base, (reason, folder))
            return sum(tx.execute(base + " AND relpath = ?", (reason, folder, encode(r))) for r in relpaths)

        return self.backend.transaction(run)

    def record_done(self, folder: str, key: FileKey, outcome: Outcome, *, only_if_absent: bool = False) -> bool:
        """Write a done row directly (adoption of a 0.1 tree, a reviewer's accept). False when
        ``only_if_absent`` and a row exists, or when the row is claimed by a live lease."""
        raw = encode(key.relpath)

        def run(tx: Tx) -> bool:
            now = tx.now()
            row = tx.one(f"SELECT state, lease_expires, token FROM jobs WHERE folder = ? AND relpath = ?{tx.skip_locked}",
                         (folder, raw))
            if row is not None:
                if only_if_absent:
                    return False
                if row[0] == CLAIMED and row[2] != self.token and row[1] is not None and float(row[1]) >= now:
                    return False
                tx.execute(
                    "UPDATE jobs SET size = ?, mtime_ns = ?, state = 'done', outcome = ?, reason = ?, "
                    "epoch = epoch + 1, holder = ?, token = ?, host = ?, pid = ?, lease_expires = NULL, "
                    "retry_after = NULL, completed_at = ?, updated_at = ? WHERE folder = ? AND relpath = ?",
                    (key.size, key.mtime_ns, outcome.kind, outcome.reason, self.instance_id, self.token,
                     self.host, self.pid, now, now, folder, raw))
                return True
            return tx.execute(
                "INSERT INTO jobs (folder, relpath, size, mtime_ns, state, epoch, holder, token, host, pid, "
                "outcome, reason, attempts, updated_at, completed_at) "
                "VALUES (?, ?, ?, ?, 'done', 1, ?, ?, ?, ?, ?, ?, 0, ?, ?) ON CONFLICT (folder, relpath) DO NOTHING",
                (folder, raw, key.size, key.mtime_ns, self.instance_id, self.token, self.host, self.pid,
                 outcome.kind, outcome.reason, now, now)) == 1

        return self.backend.transaction(run)

    def record_released(self, folder: str, key: FileKey, *, taken_from: str, reason: str) -> bool:
        """A file an earlier ledger-less run had claimed (a 0.1 claim file): released, so the next
        claim carries ``taken_from`` and the pipeline looks for its stamped results first."""
        raw = encode(key.relpath)
        return self.backend.transaction(lambda tx: tx.execute(
            "INSERT INTO jobs (folder, relpath, size, mtime_ns, state, epoch, holder, reason, taken_from, "
            "attempts, updated_at) VALUES (?, ?, ?, ?, 'released', 0, ?, ?, ?, 0, {now}) "
            "ON CONFLICT (folder, relpath) DO NOTHING",
            (folder, raw, key.size, key.mtime_ns, taken_from, reason, taken_from)) == 1)

    def taken_from_of(self, folder: str, key: FileKey) -> str | None:
        row = self.backend.transaction(lambda tx: tx.one(
            "SELECT taken_from FROM jobs WHERE folder = ? AND relpath = ?", (folder, encode(key.relpath))))
        return row[0] if row else None

    # --- named leases ---------------------------------------------------------------------

    def take_lease(self, name: str, seconds: float) -> bool:
        """Hold the lease ``name`` for ``seconds`` more: True while it is this token's."""

        def run(tx: Tx) -> bool:
            now = tx.now()
            row = tx.one(f"SELECT token, expires FROM leases WHERE name = ?{tx.skip_locked}", (name,))
            if row is None:
                return tx.execute(
                    "INSERT INTO leases (name, holder, token, host, epoch, expires) VALUES (?, ?, ?, ?, 1, ?) "
                    "ON CONFLICT (name) DO NOTHING",
                    (name, self.instance_id, self.token, self.host, now + seconds)) == 1
            token, expires = row
            if token != self.token and float(expires) >= now:
                return False
            tx.execute("UPDATE leases SET holder = ?, token = ?, host = ?, expires = ?, "
                       "epoch = CASE WHEN token = ? THEN epoch ELSE epoch + 1 END WHERE name = ?",
                       (self.instance_id, self.token, self.host, now + seconds, self.token, name))
            return True

        return self.backend.transaction(run)

    def drop_lease(self, name: str) -> None:
        self.backend.transaction(lambda tx: tx.execute(
            "DELETE FROM leases WHERE name = ? AND token = ?", (name, self.token)), retry=False)

    def lease_holder(self, name: str) -> tuple[str, str, float] | None:
        """(instance, host, seconds left) of a live lease ``name``, else None."""

        def run(tx: Tx) -> tuple | None:
            return tx.one("SELECT holder, host, expires - {now} FROM leases WHERE name = ? AND expires >= {now}",
                          (name,))

        row = self.backend.transaction(run)
        return (row[0], row[1], float(row[2])) if row else None
