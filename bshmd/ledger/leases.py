"""Named leases: a role one instance holds at a time (a folder's scanner), taken over by
another once the holder stops renewing it. Judged by the database's clock, like claims.
A mixin of ``Ledger`` (store.py)."""

from __future__ import annotations

from bshmd.ledger.backend import Backend, Tx


class NamedLeases:
    """``take_lease``, ``drop_lease`` and ``lease_holder`` over the ``leases`` table."""

    backend: Backend
    instance_id: str
    token: str
    host: str

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
