"""The job ledger's cost: milliseconds per file on SQLite and PostgreSQL, idle polling of done
files against watchdog's PollingObserver, and memory at a million done rows.

    .venv/bin/python bench/bench_ledger.py [--files 2000] [--idle-files 100000 --idle-folders 10000]
                                           [--idle-seconds 30] [--rows 1000000] [--pg-url URL]

PostgreSQL: --pg-url, else a throw-away server started like the tests do (tests/support/pg.py: needs
the postgresql package and root); skipped when neither is possible.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bshmd.config import parse_config  # noqa: E402
from bshmd.ledger.backend import Backend, PostgresBackend, SQLiteBackend  # noqa: E402
from bshmd.ledger.claims import Claims, FolderClaims  # noqa: E402
from bshmd.ledger.keys import FileKey  # noqa: E402
from bshmd.ledger.outcome import Outcome  # noqa: E402
from bshmd.ledger.store import Ledger, encode  # noqa: E402


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ops_per_file(make: callable, files: int, batch: int) -> dict[str, float]:
    """What the daemon does per file, in ms: the scanner marks it ready, an instance claims it
    (claims of ``batch``), verifies it right before writing (the fencing renew) and completes it."""
    ledger = Ledger(make(), instance_id="bench")
    folder = os.urandom(8).hex()
    keys = [FileKey(f"shoot-{i // 100:03d}/img-{i:06d}.jpg", 1000 + i, 1_700_000_000_000_000_000 + i)
            for i in range(files)]
    mark = claim = verify = complete = 0.0
    for start in range(0, files, batch):
        chunk = keys[start:start + batch]
        t0 = time.perf_counter()
        ledger.mark_ready(folder, chunk)
        t1 = time.perf_counter()
        taken = ledger.claim_ready(folder, batch, 60)
        t2 = time.perf_counter()
        assert len(taken) == len(chunk)
        for result in taken:
            assert ledger.extend(folder, result.key, result.epoch, 60)
        t3 = time.perf_counter()
        for result in taken:
            assert ledger.finish(folder, result.key, result.epoch, Outcome("processed"))
        t4 = time.perf_counter()
        mark, claim, verify, complete = mark + t1 - t0, claim + t2 - t1, verify + t3 - t2, complete + t4 - t3
    ledger.close()
    per = {name: value / files * 1000 for name, value in
           (("ready", mark), ("claim", claim), ("verify", verify), ("complete", complete))}
    per["total"] = sum(per.values())
    return per


def build_done_tree(base: Path, files: int, folders: int, ledger: Ledger) -> dict[str, Path]:
    hot = {name: base / name for name in ("in", "out", "quarantine")}
    for path in hot.values():
        path.mkdir(parents=True)
    store = FolderClaims(Claims(ledger, 60), hot["in"], hot["out"])
    keys = []
    for index in range(files):
        folder = hot["in"] / f"shoot-{index % folders:05d}"
        folder.mkdir(exist_ok=True)
        path = folder / f"img-{index:06d}.jpg"
        path.write_bytes(b"\xff\xd8" + index.to_bytes(4, "big"))
        keys.append(FileKey.of(hot["in"], path))
    insert_done(ledger, store.folder_id, keys)
    return hot


def insert_done(ledger: Ledger, folder: str, keys: list[FileKey]) -> None:
    """Done rows in bulk (what a long run leaves), a few thousand per transaction."""
    for start in range(0, len(keys), 5000):
        chunk = keys[start:start + 5000]

        def run(tx, chunk=chunk) -> None:
            for key in chunk:
                tx.execute("INSERT INTO jobs (folder, relpath, size, mtime_ns, state, epoch, outcome, attempts, "
                           "updated_at, completed_at) VALUES (?, ?, ?, ?, 'done', 1, 'processed', 1, {now}, {now})",
                           (folder, encode(key.relpath), key.size, key.mtime_ns))

        ledger.backend.transaction(run)


def idle_cpu(run: callable, seconds: float) -> float:
    """CPU seconds per minute of this process while ``run`` sets up something that then idles."""
    stop = run()
    time.sleep(2.0)  # past the start-up
    cpu0, wall0 = time.process_time(), time.monotonic()
    time.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    stop()
    return cpu / wall * 60


def ingestor_idle(hot: dict[str, Path], ledger: Ledger, interval: float, seconds: float) -> tuple[float, float]:
    from bshmd.ingest import Ingestor

    config = parse_config({
        "folders": [{"input": str(hot["in"]), "output": str(hot["out"]), "quarantine": str(hot["quarantine"]),
                     "watch": "poll"}],
        "settle_seconds": interval, "poll_seconds": interval, "rescan_seconds": 3600,
    }, base_dir=hot["in"].parent)
    handed: list = []
    rescanned = threading.Event()
    ingestor = Ingestor(config, lambda job: handed.append(job) or True, instance_id="bench-idle", ledger=ledger,
                        on_event=lambda name, fields: rescanned.set() if name == "rescan" and "files" in fields
                        else None)
    t0 = time.monotonic()

    def start():  # noqa: ANN202
        ingestor.start()
        if not rescanned.wait(600):
            raise SystemExit("the first rescan did not finish")
        return ingestor.stop

    cpu = idle_cpu(start, seconds)
    assert not handed, f"{len(handed)} done files were handed on again"
    return cpu, time.monotonic() - t0


def polling_observer_idle(root: Path, interval: float, seconds: float) -> float:
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers.polling import PollingObserver

    def start():  # noqa: ANN202
        observer = PollingObserver(timeout=interval)
        observer.schedule(FileSystemEventHandler(), str(root), recursive=True)
        observer.start()

        def stop() -> None:
            observer.stop()
            observer.join()

        return stop

    return idle_cpu(start, seconds)


def rss_at_rows(make: callable, rows: int) -> dict[str, float]:
    ledger = Ledger(make(), instance_id="bench-rss")
    folder = "r" * 32
    keys = [FileKey(f"shoot-{i // 100:05d}/img-{i:07d}.jpg", 1000 + i % 5000, 1_700_000_000_000_000_000 + i)
            for i in range(rows)]
    insert_done(ledger, folder, keys)
    del keys
    ledger.close()
    before = rss_mib()
    ledger = Ledger(make(), instance_id="bench-rss")
    sample = [FileKey(f"shoot-{i // 100:05d}/img-{i:07d}.jpg", 1000 + i % 5000, 1_700_000_000_000_000_000 + i)
              for i in range(0, rows, max(1, rows // 1000))]
    t0 = time.perf_counter()
    found = ledger.done_among(folder, sample)
    lookup_ms = (time.perf_counter() - t0) / len(sample) * 1000
    t0 = time.perf_counter()
    counts = ledger.counts()[folder]
    counts_s = time.perf_counter() - t0
    [taken] = ledger.claim(folder, [FileKey("new/one.jpg", 1, 1)], 60)
    after = rss_mib()
    ledger.close()
    assert len(found) == len(sample) and counts["done"] == rows
    return {"rss_before": before, "rss_after": after, "lookup_ms": lookup_ms, "counts_s": counts_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=4, help="files per claim (the GPU batch)")
    parser.add_argument("--idle-files", type=int, default=100_000)
    parser.add_argument("--idle-folders", type=int, default=10_000)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=2.0, help="poll interval of both watchers")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pg-url", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bshmd-bench-ledger-") as scratch, _postgres(args.pg_url) as pg_url:
        base = Path(scratch)
        backends: dict[str, callable] = {"sqlite": lambda: SQLiteBackend(base / "state" / "ledger.db")}
        if pg_url:
            backends["postgresql"] = lambda: PostgresBackend(pg_url)
        else:
            print("postgresql: skipped (no --pg-url, and no throw-away server could be started)")
        for name, make in backends.items():
            for batch in (1, args.batch):
                f = ops_per_file(make, args.files, batch)
                print(f"{name:>10} ops per file, batches of {batch}: ready {f['ready']:.3f} ms, claim {f['claim']:.3f} ms, verify "
                      f"{f['verify']:.3f} ms, complete {f['complete']:.3f} ms, total {f['total']:.3f} ms "
                      f"({args.files} files)")

        ledger = Ledger(backends["sqlite"](), instance_id="bench-setup")
        t0 = time.monotonic()
        hot = build_done_tree(base / "tree", args.idle_files, args.idle_folders, ledger)
        print(f"tree: {args.idle_files} done files in {args.idle_folders} folders ({time.monotonic() - t0:.0f} s)")
        ours, first = ingestor_idle(hot, ledger, args.interval, args.idle_seconds)
        theirs = polling_observer_idle(hot["in"], args.interval, args.idle_seconds)
        ledger.close()
        print(f"idle polling every {args.interval:g} s: bshmd ingestor {ours:.2f} CPU s/min, watchdog "
              f"PollingObserver {theirs:.2f} CPU s/min: ratio {theirs / ours if ours else float('inf'):.2f}x "
              f"(bshmd's first rescan and start {first - args.idle_seconds - 2:.1f} s)")

        for name, make in backends.items():
            if name == "sqlite":
                def make(base=base) -> Backend:
                    return SQLiteBackend(base / "rss" / "ledger.db")
            f = rss_at_rows(make, args.rows)
            print(f"{name:>10} at {args.rows} done rows: RSS {f['rss_before']:.1f} MiB before opening, "
                  f"{f['rss_after']:.1f} MiB after lookups, counts and a claim; is-done lookup "
                  f"{f['lookup_ms']:.3f} ms per file (batched), counts {f['counts_s']:.2f} s")
    return 0


class _postgres:
    """--pg-url, or a throw-away server from tests/support/pg.py, or None."""

    def __init__(self, url: str | None) -> None:
        self.url, self._cluster = url, None

    def __enter__(self) -> str | None:
        if self.url:
            return self.url
        from tests.support import pg

        if pg.available():
            return None
        self._cluster = pg.cluster()
        server = self._cluster.__enter__()
        server.reset()
        return server.url

    def __exit__(self, *exc: object) -> None:
        if self._cluster is not None:
            self._cluster.__exit__(*exc)


if __name__ == "__main__":
    sys.exit(main())
