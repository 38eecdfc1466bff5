"""The ingestor's parts on a driven clock: the scanner role, the claimer's batches, the renewer.

No thread of the ingestor runs here: each test calls the parts as the ingest and renewer
threads would, and moves the clock itself, so nothing sleeps through a settle window or a
renewal interval. The scanner lease runs out by the database's clock (the ledger judges
leases by it, never by a host's): that one test gives the lease its minimum length and waits
for the database to say it is over.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bshmd.ingest import Ingestor
from bshmd.ingest.folders import Folder
from bshmd.ingest.scanner import scan_lease
from bshmd.pipeline.job import Job
from tests.ingest.helpers import test_ledger
from tests.support.clock import DrivenClock
from tests.support.config import QUICK_INGEST, make_config
from tests.support.ledger import wait_lease_ran_out


class Handed:
    """on_ready: takes every job, keeps it (its claim stays held)."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def __call__(self, job: Job) -> bool:
        self.jobs.append(job)
        return True


@pytest.fixture
def clock() -> DrivenClock:
    return DrivenClock()


@pytest.fixture
def made() -> Iterator[list[Ingestor]]:
    ingestors: list[Ingestor] = []
    yield ingestors
    for ingestor in ingestors:
        ingestor.stop()  # the observers a scanner started; ledgers close after the test


def instance(made: list[Ingestor], hot: dict[str, Path], clock: DrivenClock, name: str,
             on_ready: Handed | None = None, **settings: object) -> Ingestor:
    settings.setdefault("ledger", {"lease_seconds": 1.0})  # the shortest scanner lease
    config = make_config(hot, defaults=QUICK_INGEST, folder={"watch": "poll"}, **settings)
    ingestor = Ingestor(config, on_ready or Handed(), instance_id=name, ledger=test_ledger(name), clock=clock)
    made.append(ingestor)
    return ingestor


def only_folder(ingestor: Ingestor) -> Folder:
    [folder] = list(ingestor.folders)
    return folder


def drop(folder: Path, count: int) -> list[str]:
    names = [f"img-{index:02d}.jpg" for index in range(count)]
    for name in names:
        (folder / name).write_bytes(name.encode() * 50)
    return names


def test_one_scanner_per_folder_and_another_takes_the_lease_once_it_runs_out(hot, clock, made):
    a, b = instance(made, hot, clock, "a"), instance(made, hot, clock, "b")
    a.scanner.check_available(only_folder(a))
    b.scanner.check_available(only_folder(b))
    assert only_folder(a).scanner and not only_folder(b).scanner
    assert a.health()["folders"][str(hot["in"])]["scanner"]
    # b only claims: it watches nothing and settles nothing of its own.
    assert only_folder(b).observer is None
    lease = scan_lease(only_folder(a).store.folder_id)
    assert b.ledger.lease_holder(lease)[0] == "a"

    # a stops renewing (stopped, frozen, dead): the lease runs out by the database's clock.
    wait_lease_ran_out(b.ledger, lease)
    b.scanner.check_available(only_folder(b))
    assert only_folder(b).scanner and only_folder(b).observer is not None
    assert only_folder(b).rescan_due == 0.0  # a new scanner rescans at once
    # a notices at its next check and stops scanning; what it was settling is b's now.
    a.scanner.check_available(only_folder(a))
    assert not only_folder(a).scanner and only_folder(a).observer is None
    assert len(only_folder(a).tracker) == 0


def test_the_scanner_settles_on_its_clock_and_marks_files_ready(hot, clock, made):
    a = instance(made, hot, clock, "a", settle_seconds=5.0)
    folder = only_folder(a)
    a.scanner.check_available(folder)
    names = drop(hot["in"], 3)
    a.scanner.rescan(folder)
    assert len(folder.tracker) == 3
    a.scanner.settle_due(folder)
    assert len(folder.tracker) == 3 and a.ledger.jobs(folder.store.folder_id) == []  # not settled yet
    clock.advance(4.0)
    a.scanner.settle_due(folder)
    assert len(folder.tracker) == 3
    assert folder.tracker.next_deadline() == clock() + 1.0
    clock.advance(1.0)  # five seconds unchanged: settled
    a.scanner.settle_due(folder)
    assert len(folder.tracker) == 0 and folder.tracker.finished_count() == 3
    rows = a.ledger.jobs(folder.store.folder_id)
    assert sorted(row.relpath for row in rows) == names and {row.state for row in rows} == {"ready"}


def test_the_claimer_takes_ready_files_in_batches_and_looks_again_on_its_clock(hot, clock, made):
    handed = Handed()
    a = instance(made, hot, clock, "a", on_ready=handed, batch={"max_size": 2}, poll_seconds=0.5)
    folder = only_folder(a)
    a.scanner.check_available(folder)
    names = drop(hot["in"], 5)
    a.scanner.rescan(folder)
    clock.advance(QUICK_INGEST["settle_seconds"])
    a.scanner.settle_due(folder)

    a.claimer.take_ready(folder)
    assert len(handed.jobs) == 2 and folder.ledger_due == 0.0  # a full batch: more may wait
    a.claimer.take_ready(folder)
    assert len(handed.jobs) == 4 and folder.ledger_due == 0.0
    a.claimer.take_ready(folder)
    assert len(handed.jobs) == 5 and folder.ledger_due == clock() + 0.5  # the last, short batch
    assert sorted(job.key.relpath for job in handed.jobs) == names
    assert all(job.claim is not None and not job.claim.finished for job in handed.jobs)

    # One comes back (the pipeline had no room after all): claimable in the ledger at once,
    # yet the claimer looks again only when its clock says so.
    handed.jobs[0].claim.release()
    a.claimer.take_ready(folder)
    assert len(handed.jobs) == 5
    clock.advance(0.5)
    a.claimer.take_ready(folder)
    assert [job.key.relpath for job in handed.jobs[5:]] == [names[0]]


def test_the_renewer_renews_a_third_of_a_lease_ahead_on_its_clock(hot, clock, made, monkeypatch):
    a = instance(made, hot, clock, "a", ledger={"lease_seconds": 30.0})
    folder = only_folder(a)
    a.scanner.check_available(folder)
    renewals: list[float] = []
    renew = a.claims.renew
    monkeypatch.setattr(a.claims, "renew", lambda: (renewals.append(clock()), renew())[1])
    beats: list[float] = []
    monkeypatch.setattr(folder.store, "heartbeat", lambda: beats.append(clock()))

    start = clock()
    assert a.renewer.tick() == 5.0  # the ledger's counts are due again first
    assert renewals == [start] and beats == [start]
    assert a.ledger_status()["reachable"] and a.ledger_status()["id"] == a.ledger.ledger_id
    clock.advance(9.0)
    a.renewer.tick()
    assert renewals == [start] and beats == [start, start + 9.0]
    clock.advance(1.0)  # a third of the 30 s lease since the last renewal
    a.renewer.tick()
    assert renewals == [start, start + 10.0] and beats == [start, start + 9.0]
    # The scanner lease was renewed with the claims: a second instance cannot take it.
    b = instance(made, hot, clock, "b", ledger={"lease_seconds": 30.0})
    b.scanner.check_available(only_folder(b))
    assert folder.scanner and not only_folder(b).scanner
