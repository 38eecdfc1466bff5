"""Many instances taking over one expired claim at the same instant: real threads, real processes.

Each round, every racer is released from a barrier at once and tries to take over the same
expired claim. Exactly one may win, the claim file must exist at every moment, and the record
left behind must be the winner's. Between rounds the winner "dies": a restart under its
instance id with a zero lease leaves an already expired claim for the next round.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from bshmd.ingest.claims import ClaimStore, claim_name
from bshmd.records import FileKey

KEY = FileKey("race/contested.jpg", 4321, 1_700_000_000_000_000_000)
BARRIER_TIMEOUT = 60.0


def claim_file(state: Path) -> Path:
    name = claim_name(KEY.relpath)
    return state / "claims" / name[:2] / f"{name}.json"


def read_record(state: Path) -> dict[str, Any]:
    return json.loads(claim_file(state).read_bytes())


def leave_expired_claim(state: Path, instance: str) -> None:
    """A run of ``instance`` that claims the file with a zero lease and dies at once."""
    assert ClaimStore(state, instance, 0.0).try_claim(KEY) is not None


class ExistenceWatcher:
    """Checks in a tight loop that the claim file exists; counts the checks and the misses."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.checks = 0
        self.missing = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bshmd-test-claim-watch", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not os.path.exists(self.path):
                self.missing += 1
            self.checks += 1

    def __enter__(self) -> ExistenceWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def state(hot: dict[str, Path]) -> Path:
    return hot["out"] / ".bshmd"


def test_threads_taking_over_one_expired_claim_have_exactly_one_winner_per_round(state):
    racers, rounds = 8, 200
    stores = [ClaimStore(state, f"racer-{n}", 60) for n in range(racers)]
    leave_expired_claim(state, "dead")
    barrier = threading.Barrier(racers + 1)
    won: list[list[bool]] = [[False] * racers for _ in range(rounds)]
    errors: list[BaseException] = []

    def race(index: int) -> None:
        try:
            for round_ in range(rounds):
                barrier.wait(BARRIER_TIMEOUT)  # start together
                won[round_][index] = stores[index].try_claim(KEY) is not None
                barrier.wait(BARRIER_TIMEOUT)  # all tried
                barrier.wait(BARRIER_TIMEOUT)  # the winner has died
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=race, args=(n,), name=f"bshmd-test-racer-{n}") for n in range(racers)]
    owners: list[str] = []
    generations: list[int] = []
    with ExistenceWatcher(claim_file(state)) as watcher:
        for thread in threads:
            thread.start()
        try:
            for round_ in range(rounds):
                barrier.wait(BARRIER_TIMEOUT)
                barrier.wait(BARRIER_TIMEOUT)
                record = read_record(state)
                owners.append(record["instance"])
                generations.append(record["generation"])
                winners = [n for n in range(racers) if won[round_][n]]
                if len(winners) == 1:
                    leave_expired_claim(state, f"racer-{winners[0]}")
                    stores[winners[0]].renew()  # notices the loss, forgets the claim
                else:
                    leave_expired_claim(state, "dead")
                barrier.wait(BARRIER_TIMEOUT)
        except BaseException:
            barrier.abort()  # only now: an abort after the last round would break the racers' last wait
            raise
        finally:
            for thread in threads:
                thread.join(30)
    assert not errors, errors
    assert watcher.checks > rounds and watcher.missing == 0
    for round_, flags in enumerate(won):
        assert flags.count(True) == 1, f"round {round_}: winners {[n for n, f in enumerate(flags) if f]}"
        assert owners[round_] == f"racer-{flags.index(True)}"
    # Every write is a new generation: the winner's, then the dying restart's.
    assert all(later > earlier for earlier, later in zip(generations, generations[1:], strict=False))
    # Every round had a contest: all racers but the winner backed off, and the locks are gone.
    assert sorted(p.name for p in claim_file(state).parent.iterdir()) == [claim_file(state).name]


def _race_in_process(state: str, index: int, rounds: int, barrier: Any, won: Any) -> None:
    """One racing instance in its own process (spawned: imports this module afresh)."""
    store = ClaimStore(Path(state), f"proc-{index}", 60)
    for round_ in range(rounds):
        barrier.wait(BARRIER_TIMEOUT)
        won[round_ * barrier.parties + index] = 1 if store.try_claim(KEY) is not None else 0
        barrier.wait(BARRIER_TIMEOUT)
        barrier.wait(BARRIER_TIMEOUT)
        store.renew()  # forgets a claim taken over while it was parked


@pytest.mark.slow
def test_processes_taking_over_one_expired_claim_have_exactly_one_winner_per_round(state):
    racers, rounds = 5, 30
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(racers + 1)
    won = context.Array("i", rounds * (racers + 1))
    leave_expired_claim(state, "dead")
    procs = [context.Process(target=_race_in_process, args=(str(state), n, rounds, barrier, won),
                             name=f"race-{n}") for n in range(racers)]
    owners: list[str] = []
    with ExistenceWatcher(claim_file(state)) as watcher:
        for proc in procs:
            proc.start()
        try:
            for round_ in range(rounds):
                barrier.wait(BARRIER_TIMEOUT)
                barrier.wait(BARRIER_TIMEOUT)
                owners.append(read_record(state)["instance"])
                flags = won[round_ * (racers + 1):round_ * (racers + 1) + racers]
                winner = f"proc-{flags.index(1)}" if flags.count(1) == 1 else "dead"
                leave_expired_claim(state, winner)
                barrier.wait(BARRIER_TIMEOUT)
        except BaseException:
            barrier.abort()
            raise
        finally:
            for proc in procs:
                proc.join(30)
                if proc.is_alive():
                    proc.kill()
                    proc.join()
    assert [proc.exitcode for proc in procs] == [0] * racers
    assert watcher.checks > rounds and watcher.missing == 0
    for round_ in range(rounds):
        flags = won[round_ * (racers + 1):round_ * (racers + 1) + racers]
        assert flags.count(1) == 1, f"round {round_}: winners {[n for n, f in enumerate(flags) if f]}"
        assert owners[round_] == f"proc-{flags.index(1)}"
