"""Reading the ledger and the operator's changes to it: listings and counts for ``bshmd ledger``,
``/status`` and metrics, ``forget`` and ``reprocess``, and done or released rows written
directly (a 0.1 tree adopted, a reviewer's accept). A mixin of ``Ledger`` (store.py)."""

from __future__ import annotations

from collections.abc import Iterable

from bshmd.ledger.backend import Backend, Tx
from bshmd.ledger.keys import FileKey
from bshmd.ledger.outcome import Outcome
from bshmd.ledger.rows import CLAIMED, JOB_COLUMNS, JobRow, encode, job_row


class LedgerAdmin:
    """Listings and operator commands over the ``jobs`` table."""

    backend: Backend
    instance_id: str
    token: str
    host: str
    pid: int

    def job(self, folder: str, relpath: str) -> JobRow | None:
        row = self.backend.transaction(lambda tx: tx.one(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE folder = ? AND relpath = ?", (folder, encode(relpath))))
        return job_row(row) if row else None

    def jobs(self, folder: str | None = None, state: str | None = None, limit: int | None = None) -> list[JobRow]:
        where, params = [], []
        if folder is not None:
            where.append("folder = ?")
            params.append(folder)
        if state is not None:
            where.append("state = ?")
            params.append(state)
        text = f"SELECT {JOB_COLUMNS} FROM jobs"
        if where:
            text += " WHERE " + " AND ".join(where)
        text += " ORDER BY folder, relpath"
        if limit is not None:
            text += f" LIMIT {int(limit)}"
        return [job_row(row) for row in self.backend.transaction(lambda tx: tx.query(text, params))]

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
