"""Many instances taking over one expired claim at the same instant, on both backends: real
threads (each with its own connection) and real processes. Exactly one may win each round,
and the row left behind must be the winner's. Between rounds the winner "dies": a restart
under its instance id with a zero lease leaves an already expired claim for the next round."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest

from bshmd.ledger.backend import PostgresBackend, SQLiteBackend
from bshmd.ledger.keys import FileKey
from bshmd.ledger.store import Ledger, Taken

KEY = FileKey("race/contested.jpg", 4321, 1_700_000_000_000_000_000)
FOLDER = "r" * 32
BARRIER_TIMEOUT = 60.0


def leave_expired_claim(ledger_factory, instance: str) -> None:
    ledger = ledger_factory(instance)
    [result] = ledger.claim(FOLDER, [KEY], 0.0)
    assert isinstance(result, Taken), result
    ledger.close()


def test_threads_taking_over_one_expired_claim_have_exactly_one_winner_per_round(ledger_factory):
    racers, rounds = 8, 60
    ledgers = [ledger_factory(f"racer-{n}") for n in range(racers)]
    leave_expired_claim(ledger_factory, "dead")
    barrier = threading.Barrier(racers + 1)
    won: list[list[bool]] = [[False] * racers for _ in range(rounds)]
    errors: list[BaseException] = []

    def race(index: int) -> None:
        try:
            for round_ in range(rounds):
                barrier.wait(BARRIER_TIMEOUT)
                [result] = ledgers[index].claim(FOLDER, [KEY], 60)
                won[round_][index] = isinstance(result, Taken)
                barrier.wait(BARRIER_TIMEOUT)
                barrier.wait(BARRIER_TIMEOUT)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=race, args=(n,), name=f"bshmd-test-racer-{n}") for n in range(racers)]
    owners, epochs = [], []
    checker = ledger_factory("checker")
    for thread in threads:
        thread.start()
    try:
        for round_ in range(rounds):
            barrier.wait(BARRIER_TIMEOUT)
            barrier.wait(BARRIER_TIMEOUT)
            row = checker.job(FOLDER, KEY.relpath)
            owners.append(row.holder)
            epochs.append(row.epoch)
            winners = [n for n in range(racers) if won[round_][n]]
            leave_expired_claim(ledger_factory, f"racer-{winners[0]}" if len(winners) == 1 else "dead")
            barrier.wait(BARRIER_TIMEOUT)
    except BaseException:
        barrier.abort()
        raise
    finally:
        for thread in threads:
            thread.join(30)
    assert not errors, errors
    for round_, flags in enumerate(won):
        assert flags.count(True) == 1, f"round {round_}: winners {[n for n, f in enumerate(flags) if f]}"
        assert owners[round_] == f"racer-{flags.index(True)}"
    # Every take is a new epoch: the winner's, then the dying restart's.
    assert all(later > earlier for earlier, later in zip(epochs, epochs[1:], strict=False))


def _race_in_process(where: str, index: int, rounds: int, barrier: Any, won: Any) -> None:
    """One racing instance in its own process (spawned: imports this module afresh)."""
    backend = PostgresBackend(where) if where.startswith("postgresql:") else SQLiteBackend(Path(where))
    ledger = Ledger(backend, instance_id=f"proc-{index}")
    for round_ in range(rounds):
        barrier.wait(BARRIER_TIMEOUT)
        [result] = ledger.claim(FOLDER, [KEY], 60)
        won[round_ * barrier.parties + index] = 1 if isinstance(result, Taken) else 0
        barrier.wait(BARRIER_TIMEOUT)
        barrier.wait(BARRIER_TIMEOUT)
    ledger.close()


@pytest.mark.slow
def test_processes_taking_over_one_expired_claim_have_exactly_one_winner_per_round(ledger_factory):
    racers, rounds = 5, 30
    probe = ledger_factory("probe")
    where = probe.backend.url if probe.dialect == "postgresql" else str(probe.backend.path)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(racers + 1)
    won = context.Array("i", rounds * (racers + 1))
    leave_expired_claim(ledger_factory, "dead")
    procs = [context.Process(target=_race_in_process, args=(where, n, rounds, barrier, won), name=f"race-{n}")
             for n in range(racers)]
    owners = []
    for proc in procs:
        proc.start()
    try:
        for round_ in range(rounds):
            barrier.wait(BARRIER_TIMEOUT)
            barrier.wait(BARRIER_TIMEOUT)
            owners.append(probe.job(FOLDER, KEY.relpath).holder)
            flags = won[round_ * (racers + 1):round_ * (racers + 1) + racers]
            leave_expired_claim(ledger_factory, f"proc-{flags.index(1)}" if flags.count(1) == 1 else "dead")
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
    for round_ in range(rounds):
        flags = won[round_ * (racers + 1):round_ * (racers + 1) + racers]
        assert flags.count(1) == 1, f"round {round_}: winners {[n for n, f in enumerate(flags) if f]}"
        assert owners[round_] == f"proc-{flags.index(1)}"
