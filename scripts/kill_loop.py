"""SIGKILL the daemon at random moments while it processes a run of files, then audit the result.

    .venv/bin/python scripts/kill_loop.py --files 2000 --kills 100 [--seed N] [--keep DIR]

Uses the stand-in model graph (bshmd.testing.standin, a test fixture). Exits 1 when any input
is lost, duplicated, half-written or processed twice. tests/survival/test_kill_loop.py runs the
same loop (tests/survival/harness.py) with 500 files and 20 kills.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the last run to finish")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from bshmd.testing.standin import write_standin_graph
    from tests.survival.harness import kill_loop

    with tempfile.TemporaryDirectory(prefix="bshmd-kill-loop-") as scratch:
        workdir = args.keep or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        model = workdir / "standin-model"
        write_standin_graph(model)
        report = kill_loop(workdir, model, files=args.files, kills=args.kills, seed=args.seed,
                           say=lambda line: print(line, flush=True), finish_timeout=args.timeout)
    print(report.summary())
    for problem in report.problems:
        print("PROBLEM:", problem)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
