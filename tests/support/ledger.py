"""Asking the ledger, by its own clock, what a test waits for.

A lease in the ledger runs out by the *database's* clock (bshmd.ledger.store), never a host's:
a test that needs one expired gives it a short lease and waits until the database says so,
rather than sleeping a guess (and the fencing stays exactly as strict as in service)."""

from __future__ import annotations

from bshmd.ledger.store import Ledger
from tests.support.waiting import wait_until


def claim_ran_out(ledger: Ledger, folder: str, relpath: str) -> bool:
    """Whether the claim on ``relpath`` has run out by the database's clock."""
    row = ledger.job(folder, relpath)
    return row is not None and row.lease_expires is not None and row.lease_expires < ledger.now()


def retry_due(ledger: Ledger, folder: str, relpath: str) -> bool:
    """Whether a released row's ``retry_after`` has passed by the database's clock."""
    row = ledger.job(folder, relpath)
    return row is not None and (row.retry_after is None or row.retry_after <= ledger.now())


def wait_claim_ran_out(ledger: Ledger, folder: str, relpath: str, timeout: float = 30.0) -> None:
    wait_until(lambda: claim_ran_out(ledger, folder, relpath), timeout, f"the claim on {relpath!r} to run out",
               interval=0.02)


def wait_lease_ran_out(ledger: Ledger, name: str, timeout: float = 30.0) -> None:
    """Until the named lease (a folder's scanner lease, say) has no holder by the database's clock."""
    wait_until(lambda: ledger.lease_holder(name) is None, timeout, f"the lease {name!r} to run out", interval=0.02)


def every_row_done(ledger: Ledger, count: int) -> bool:
    """Whether the ledger holds ``count`` rows, all done: from then on no instance can pick any
    of those files up again (done is permanent while a file is unchanged)."""
    rows = ledger.jobs()
    return len(rows) >= count and all(row.state == "done" for row in rows)
