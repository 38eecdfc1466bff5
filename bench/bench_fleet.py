"""The job ledger at fleet scale: N worker processes claim from one PostgreSQL ledger.

    .venv/bin/python bench/bench_fleet.py [--workers 32 64] [--rows 100000] [--batch 4]
                                          [--seconds 150] [--scan-lease 10] [--pg-url URL]

Each worker runs bshmd's own ledger code with no model: ``claim_ready`` a batch, ``finish``
each row as processed, ``renew`` its leases every lease/3, as an instance does. The rows are
made ready by the scanner's ``mark_ready``. Per worker count it prints claims per second,
p50/p99 of one ``claim_ready`` call, rows claimed twice (must be 0) and, from two scanner
processes contending for the folder's scan lease (``take_lease``, renewed every lease/3 as the
ingestor does), the time from a SIGKILL of the scanner to the other one holding the lease.

PostgreSQL: --pg-url, else a throw-away server started like the tests do (tests/support/pg.py: needs
the postgresql package and root).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bshmd.ledger.backend import PostgresBackend  # noqa: E402
from bshmd.ledger.keys import FileKey  # noqa: E402
from bshmd.ledger.outcome import Outcome  # noqa: E402
from bshmd.ledger.store import Ledger  # noqa: E402

LEASE_SECONDS = 60.0  # ledger.lease_seconds' default


def _ledger(url: str, instance: str) -> Ledger:
    return Ledger(PostgresBackend(url, retry_seconds=60), instance_id=instance)


def fill(url: str, folder: str, rows: int) -> float:
    """``rows`` ready rows through the scanner's hand-over; returns its seconds."""
    ledger = _ledger(url, "bench-scanner")
    keys = [FileKey(f"shoot-{i // 500:04d}/img-{i:06d}.jpg", 5_000_000 + i, 1_700_000_000_000_000_000 + i)
            for i in range(rows)]
    started = time.monotonic()
    for start in range(0, rows, 5000):
        ledger.mark_ready(folder, keys[start:start + 5000])
    ledger.close()
    return time.monotonic() - started


def worker(url: str, folder: str, number: int, batch: int, go, deadline: float, results) -> None:  # noqa: ANN001
    ledger = _ledger(url, f"worker-{number:02d}")
    latencies: list[float] = []
    claimed: list[tuple[str, int]] = []
    go.wait()
    next_renew = time.monotonic() + LEASE_SECONDS / 3
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        taken = ledger.claim_ready(folder, batch, LEASE_SECONDS)
        latencies.append(time.perf_counter() - t0)
        if not taken:
            # Empty: every row is done, or the ones left are locked by others this instant.
            if ledger.counts().get(folder, {}).get("ready", 0) == 0:
                break
            continue
        for job in taken:
            claimed.append((job.key.relpath, job.epoch))
            ledger.finish(folder, job.key, job.epoch, Outcome("processed"))
        if time.monotonic() >= next_renew:
            ledger.renew(LEASE_SECONDS)
            next_renew = time.monotonic() + LEASE_SECONDS / 3
    ledger.close()
    results.put((number, latencies, claimed))


def scanner(url: str, folder: str, name: str, lease: float, events) -> None:  # noqa: ANN001
    """Holds the folder's scan lease as the ingestor does; reports each renewal it won."""
    ledger = _ledger(url, name)
    while True:
        if ledger.take_lease(f"scan:{folder}", lease):
            events.put((name, time.time()))
        time.sleep(max(0.2, lease / 3))


def _first_hold(events, name: str, after: float, timeout: float) -> float | None:  # noqa: ANN001
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            who, when = events.get(timeout=max(0.01, end - time.monotonic()))
        except Exception:  # noqa: BLE001 - queue.Empty
            return None
        if who == name and when >= after:
            return when
    return None


def run(url: str, workers: int, rows: int, batch: int, seconds: float, scan_lease: float) -> dict:
    folder = uuid.uuid4().hex
    fill_seconds = fill(url, folder, rows)
    ctx = mp.get_context("fork")
    go, results, events = ctx.Event(), ctx.Queue(), ctx.Queue()
    first = ctx.Process(target=scanner, args=(url, folder, "scanner-a", scan_lease, events), daemon=True)
    first.start()
    if _first_hold(events, "scanner-a", 0, 30) is None:
        raise SystemExit("the first scanner never held the lease")
    second = ctx.Process(target=scanner, args=(url, folder, "scanner-b", scan_lease, events), daemon=True)
    second.start()
    deadline = time.monotonic() + seconds
    procs = [ctx.Process(target=worker, args=(url, folder, n, batch, go, deadline, results)) for n in range(workers)]
    for proc in procs:
        proc.start()
    time.sleep(2.0)  # every worker connected and waiting
    started = time.monotonic()
    go.set()
    time.sleep(min(10.0, seconds / 4))  # the scanner dies while the workers contend
    killed_at = time.time()
    os.kill(first.pid, signal.SIGKILL)
    held_at = _first_hold(events, "scanner-b", killed_at, scan_lease * 3 + 30)
    gathered = [results.get(timeout=seconds + 120) for _ in procs]
    wall = time.monotonic() - started
    for proc in procs:
        proc.join(timeout=30)
    second.kill()
    latencies = [x for _, lat, _ in gathered for x in lat]
    claimed = [c for _, _, got in gathered for c in got]
    times = collections.Counter(relpath for relpath, _ in claimed)
    ledger = _ledger(url, "bench-check")
    counts = ledger.counts().get(folder, {})
    ledger.close()
    return {
        "workers": workers, "rows": rows, "fill_s": fill_seconds, "wall_s": wall,
        "claimed": len(claimed), "distinct": len(times),
        "twice": sum(n - 1 for n in times.values() if n > 1),
        "claims_per_s": len(claimed) / wall, "calls": len(latencies),
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": statistics.quantiles(latencies, n=100)[98] * 1000,
        "done": counts.get("done", 0), "ready_left": counts.get("ready", 0),
        "takeover_s": None if held_at is None else held_at - killed_at, "scan_lease_s": scan_lease,
    }


@contextlib.contextmanager
def database(url: str | None):  # noqa: ANN201
    if url:
        yield url
        return
    from tests.support import pg

    why = pg.available()
    if why:
        raise SystemExit(f"no PostgreSQL: {why} (or pass --pg-url)")
    with pg.cluster() as server:
        yield server.url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=4, help="rows per claim (batch.max_size)")
    parser.add_argument("--seconds", type=float, default=150.0, help="stop each run after this long")
    parser.add_argument("--scan-lease", type=float, default=10.0, help="scanner lease in the takeover test")
    parser.add_argument("--pg-url")
    args = parser.parse_args()
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}; "
          f"{os.cpu_count()} CPUs")
    with database(args.pg_url) as url:
        for workers in args.workers:
            r = run(url, workers, args.rows, args.batch, args.seconds, args.scan_lease)
            takeover = "never" if r["takeover_s"] is None else f"{r['takeover_s']:.1f} s"
            print(f"{r['workers']} workers, {r['rows']} ready rows (made ready in {r['fill_s']:.1f} s): "
                  f"{r['claimed']} claimed in {r['wall_s']:.1f} s = {r['claims_per_s']:.0f} rows/s; "
                  f"claim_ready p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms ({r['calls']} calls, "
                  f"batch {args.batch}); claimed twice: {r['twice']}; done {r['done']}, ready left "
                  f"{r['ready_left']}; scanner takeover after SIGKILL: {takeover} (lease {r['scan_lease_s']:.0f} s)")
            print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
