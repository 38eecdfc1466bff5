"""Long-run health: run the daemon through many files and watch RSS, threads and fds drift.

    .venv/bin/python scripts/soak.py --files 10000 [--wave 500] [--every 10] [--keep DIR]

Drops ``--files`` generated images in waves of ``--wave`` (the next wave once the previous
one is done), samples /proc/PID/status and /proc/PID/fd every ``--every`` seconds, prints a
table and the drift from the first sample after warm-up to the last. Uses the stand-in model
graph (bshmd.testing.standin, a test fixture). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--wave", type=int, default=500)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from rich.console import Console
    from rich.table import Table

    from bshmd.testing.standin import write_standin_graph
    from tests.survival.harness import CUTOUT, Daemon, Inputs, proc_sample, wait_until, write_config

    console = Console()
    with tempfile.TemporaryDirectory(prefix="bshmd-soak-") as scratch:
        work = args.keep or Path(scratch)
        src, out, quarantine = (work / n for n in ("in", "out", "quarantine"))
        for folder in (src, out, quarantine):
            folder.mkdir(parents=True, exist_ok=True)
        model = work / "standin-model"
        write_standin_graph(model)
        config = write_config(work / "bshmd.yaml", model_dir=model, input=src, output=out, quarantine=quarantine,
                              gate={"enabled": True, "min_input_side": 16, "max_uncertain": 0.6},
                              batch={"max_size": 8, "max_wait_ms": 100}, rescan_seconds=60)
        inputs = Inputs(src, subfolders=("", "a", "b/c"))
        daemon = Daemon(config, work / "daemon.log")
        samples: list[tuple[float, int, dict[str, int]]] = []
        started = time.monotonic()
        daemon.start()
        try:
            daemon.wait_ready()
            next_sample = time.monotonic()
            dropped = 0
            while True:
                done = daemon.status()["counts"]
                finished = done["processed"] + done["quarantined"]
                if finished >= dropped and dropped < args.files:
                    wave = inputs.plan(min(args.wave, args.files - dropped), args.seed + dropped,
                                       broken_every=25, start=dropped, side_range=(48, 200))
                    inputs.drop(wave)
                    dropped += len(wave)
                if time.monotonic() >= next_sample or finished >= args.files:
                    samples.append((time.monotonic() - started, finished, proc_sample(daemon.pid)))
                    s = samples[-1]
                    console.print(f"{s[0]:7.0f} s  {s[1]:6d} files  RSS {s[2]['rss_kb'] / 1024:7.1f} MiB  "
                                  f"threads {s[2]['threads']:3d}  fds {s[2]['fds']:3d}")
                    next_sample += args.every
                if finished >= args.files:
                    break
                if not daemon.alive():
                    console.print("[red]the daemon exited[/red]")
                    return 1
                time.sleep(0.5)
            wait_until(lambda: daemon.status()["counts"]["queued"] == 0, 60)
            status = daemon.stop()
        finally:
            daemon.ensure_dead()
        missing = [r for r, kind in inputs.expected.items()
                   if not (out / (r + CUTOUT)).exists() and not (quarantine / (r + ".reason.json")).exists()]
    table = Table(title=f"bshmd soak: {args.files} files, sampled every {args.every:g} s")
    for column in ("seconds", "files done", "RSS MiB", "threads", "fds"):
        table.add_column(column, justify="right")
    step = max(1, len(samples) // 30)
    for at, finished, sample in [*samples[::step], samples[-1]]:
        table.add_row(f"{at:.0f}", str(finished), f"{sample['rss_kb'] / 1024:.1f}", str(sample["threads"]),
                      str(sample["fds"]))
    console.print(table)
    first = next((s for s in samples if s[1] >= min(args.wave, args.files)), samples[0])[2]
    last = samples[-1][2]
    peak = max(s[2]["rss_kb"] for s in samples)
    console.print(f"drift from the first wave to the end: RSS {(last['rss_kb'] - first['rss_kb']) / 1024:+.1f} MiB "
                  f"(peak {peak / 1024:.1f} MiB), threads {last['threads'] - first['threads']:+d}, "
                  f"fds {last['fds'] - first['fds']:+d}; {time.monotonic() - started:.0f} s, exit status {status}, "
                  f"{len(missing)} input(s) without an outcome")
    return 1 if missing or status != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
