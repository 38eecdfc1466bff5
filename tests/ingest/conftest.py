"""The ingest tests open and close their own observers, ledgers and files: none may leak."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.ingest.helpers import close_test_ledgers


@pytest.fixture(autouse=True)
def _no_leaked_fds(no_leaked_fds: None) -> Iterator[None]:  # tests/conftest.py
    yield


@pytest.fixture(autouse=True)
def _close_test_ledgers(_no_leaked_fds: None) -> Iterator[None]:
    """The extra instances a test made with test_ledger / folder_claims end with it (before
    the descriptor check)."""
    yield
    close_test_ledgers()
