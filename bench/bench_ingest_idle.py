"""Idle cost of watching 10,000 finished files in 1,000 folders, in events and in poll mode.

Creates the tree, marks every file done (as a previous run would have), then lets an
Ingestor sit idle and prints CPU seconds per minute (this process, all threads) and RSS.

    .venv/bin/python bench/bench_ingest_idle.py [--seconds 60] [--files 10000] [--folders 1000]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bshmd.config import parse_config  # noqa: E402
from bshmd.ingest import Ingestor  # noqa: E402
from bshmd.ledger.backend import SQLiteBackend  # noqa: E402
from bshmd.ledger.claims import Claims, FolderClaims  # noqa: E402
from bshmd.ledger.keys import FileKey  # noqa: E402
from bshmd.ledger.outcome import Outcome  # noqa: E402
from bshmd.ledger.store import Ledger  # noqa: E402


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build_tree(base: Path, files: int, folders: int) -> dict[str, Path]:
    hot = {name: base / name for name in ("in", "out", "quarantine")}
    for path in hot.values():
        path.mkdir()
    os.environ["BSHMD_STATE_DIR"] = str(base / "state")  # the Ingestors below open this ledger
    store = FolderClaims(Claims(Ledger(SQLiteBackend(base / "state" / "ledger.db"), instance_id="bench-setup"), 60),
                         hot["in"], hot["out"])
    for index in range(files):
        folder = hot["in"] / f"shoot-{index % folders:04d}"
        folder.mkdir(exist_ok=True)
        path = folder / f"img-{index:05d}.jpg"
        path.write_bytes(b"\xff\xd8" + index.to_bytes(4, "big"))
        store.try_claim(FileKey.of(hot["in"], path)).complete(Outcome("processed"))
    return hot


def measure(hot: dict[str, Path], mode: str, seconds: float) -> dict[str, float]:
    config = parse_config({
        "folders": [{"input": str(hot["in"]), "output": str(hot["out"]),
                     "quarantine": str(hot["quarantine"]), "watch": mode}],
        "settle_seconds": 2, "poll_seconds": 2, "rescan_seconds": 300,
    }, base_dir=hot["in"].parent)
    handed: list = []
    rescanned = threading.Event()

    def on_event(name: str, fields: dict) -> None:
        if name == "rescan" and "files" in fields:
            rescanned.set()

    ingestor = Ingestor(config, lambda job: handed.append(job) or True, instance_id=f"bench-{mode}",
                        on_event=on_event)
    rss_before = rss_mib()
    start_cpu = time.process_time()
    started = time.monotonic()
    ingestor.start()
    if not rescanned.wait(120):
        raise SystemExit("the initial rescan did not finish")
    startup_cpu = time.process_time() - start_cpu
    startup_wall = time.monotonic() - started
    idle_cpu0, idle_wall0 = time.process_time(), time.monotonic()
    time.sleep(seconds)
    idle_cpu = time.process_time() - idle_cpu0
    idle_wall = time.monotonic() - idle_wall0
    rss = rss_mib()
    ingestor.stop()
    assert not handed, f"{len(handed)} done files were handed on again"
    return {
        "startup_cpu_s": startup_cpu, "startup_wall_s": startup_wall,
        "idle_cpu_s_per_min": idle_cpu / idle_wall * 60, "rss_mib": rss, "rss_growth_mib": rss - rss_before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--folders", type=int, default=1_000)
    parser.add_argument("--modes", default="events,poll")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bshmd-bench-") as base:
        t0 = time.monotonic()
        hot = build_tree(Path(base), args.files, args.folders)
        print(f"tree: {args.files} files in {args.folders} folders, all done ({time.monotonic() - t0:.1f}s to build)")
        print(f"RSS before watching: {rss_mib():.1f} MiB; maxrss so far "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")
        for mode in args.modes.split(","):
            figures = measure(hot, mode, args.seconds)
            print(f"{mode:>6}: startup (first rescan) {figures['startup_cpu_s']:.2f} CPU s / "
                  f"{figures['startup_wall_s']:.2f} s wall; idle {figures['idle_cpu_s_per_min']:.3f} CPU s per minute; "
                  f"RSS {figures['rss_mib']:.1f} MiB (+{figures['rss_growth_mib']:.1f} MiB while watching)")


if __name__ == "__main__":
    main()
