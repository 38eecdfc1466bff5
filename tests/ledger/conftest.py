"""Both ledger backends, real: a SQLite file in the test's folder and a PostgreSQL server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bshmd.ledger.backend import Backend, PostgresBackend, SQLiteBackend
from bshmd.ledger.store import Ledger


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_factory(request, tmp_path: Path) -> Iterator[Callable[[], Backend]]:
    """Makes connections to one fresh ledger database of the parametrised kind."""
    made: list[Backend] = []
    if request.param == "sqlite":
        path = tmp_path / "state" / "ledger.db"

        def make() -> Backend:
            made.append(SQLiteBackend(path, retry_seconds=5))
            return made[-1]
    else:
        url = request.getfixturevalue("pg_url")

        def make() -> Backend:
            made.append(PostgresBackend(url, retry_seconds=5))
            return made[-1]
    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def ledger_factory(backend_factory) -> Callable[[str], Ledger]:
    """``ledger_factory(instance)``: one more instance (own connection, own token) on the ledger."""
    return lambda instance: Ledger(backend_factory(), instance_id=instance)
