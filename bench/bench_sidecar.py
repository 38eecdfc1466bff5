"""The XMP-sidecar lookup's cost per photo in a backlog: milliseconds for what the pipeline
asks of each photo (``read_sidecar_xmp`` when it decodes, ``sidecar_of`` when it moves it).

    .venv/bin/python bench/bench_sidecar.py [--files 10000 100000] [--sample 300] [--remove]
                                            [--checkout PATH]

The folder holds FILES photos, a stem sidecar for every 10th, a full-name sidecar for every
10th+1 and a RAW beside every 20th, as a camera card's backlog does; its mtime lies 60 s back
(a backlog that has settled). ``--remove`` removes each photo after its lookup, as
``on_success: move`` does, so the folder changes under the lookup. ``--checkout`` measures
the bshmd of another checkout (e.g. main, for the figure before a change).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make_backlog(folder: Path, files: int) -> list[Path]:
    photos = []
    for i in range(files):
        photo = folder / f"IMG_{i:06d}.jpg"
        photo.touch()
        photos.append(photo)
        if i % 10 == 0:
            (folder / f"IMG_{i:06d}.xmp").write_bytes(b"<x:xmpmeta/>")
        elif i % 10 == 1:
            (folder / f"IMG_{i:06d}.jpg.XMP").write_bytes(b"<x:xmpmeta/>")
        if i % 20 == 0:
            (folder / f"IMG_{i:06d}.CR2").touch()
    past = time.time() - 60
    os.utime(folder, (past, past))
    return photos


def per_photo_ms(sidecar, photos: list[Path], *, remove: bool) -> list[float]:  # noqa: ANN001 - a module
    costs = []
    for photo in photos:
        start = time.perf_counter()
        sidecar.read_sidecar_xmp(photo)
        sidecar.sidecar_of(photo)
        costs.append((time.perf_counter() - start) * 1000)
        if remove:
            photo.unlink()
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--sample", type=int, default=300, help="photos looked up per folder size")
    parser.add_argument("--remove", action="store_true", help="remove each photo after its lookup")
    parser.add_argument("--checkout", type=Path, default=REPO, help="the bshmd checkout to measure")
    args = parser.parse_args()
    sys.path.insert(0, str(args.checkout.resolve()))
    from bshmd.decode import sidecar

    print(f"bshmd from {Path(sidecar.__file__).resolve()}; load {os.getloadavg()[0]:.2f}")
    listings = [0]
    if hasattr(sidecar, "_list"):  # count the folder listings where the module has one place for them
        real = sidecar._list

        def counting(folder: str) -> list[str] | None:
            listings[0] += 1
            return real(folder)

        sidecar._list = counting
    for files in args.files:
        with tempfile.TemporaryDirectory(prefix="bench-sidecar-") as tmp:
            photos = make_backlog(Path(tmp), files)
            sample = random.Random(files).sample(photos, min(args.sample, files))
            listings[0] = 0
            costs = per_photo_ms(sidecar, sample, remove=args.remove)
            # The first lookup lists the folder; over the whole backlog it is paid once.
            backlog = statistics.fmean(costs[1:] or costs) + costs[0] / files
            print(f"{files:>7} photos: {backlog:8.3f} ms/photo over the backlog, "
                  f"median {statistics.median(costs):.3f}, first {costs[0]:.1f} "
                  f"p99 {statistics.quantiles(costs, n=100)[98]:.3f} "
                  f"({len(sample)} looked up{', each removed after' if args.remove else ''}"
                  f"{f', {listings[0]} listings' if hasattr(sidecar, '_list') else ''})")


if __name__ == "__main__":
    main()
