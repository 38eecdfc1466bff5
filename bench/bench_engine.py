"""Engine throughput: images/s for batches of 1, 2, 4, 8 against plain one-by-one session.run.

Runs the stand-in graph (bshmd.testing.standin) with an adjustable cost, since the real BSHM
graph cannot be downloaded everywhere; point --graph at a real tf_graph.pb to measure BSHM.
Same graph, same images, one process. With --rss it instead reports the resident memory
before and after many single-image inferences (a leak check for months-long runs).

    .venv/bin/python bench/bench_engine.py --height 512 --width 512 --count 32 --extra-convs 8
    .venv/bin/python bench/bench_engine.py --rss --rss-inferences 2000 --height 128 --width 128
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def vm_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_images(count: int, height: int, width: int):
    import numpy as np

    rng = np.random.default_rng(0)
    images = []
    for _ in range(count):
        image = np.full((height, width, 3), 128, dtype=np.uint8)
        image[height // 4: -height // 4, width // 4: -width // 4] = rng.integers(0, 256, 3)
        image += rng.integers(0, 4, image.shape, dtype=np.uint8)
        images.append(image)
    return images


def bench_batches(engine, images, batch_sizes: list[int]) -> None:
    import numpy as np

    session, fetch, feed = engine._session, "output_png:0", "input_image:0"
    session.run(fetch, {feed: images[0].astype(np.float32)})
    started = time.perf_counter()
    reference = [session.run(fetch, {feed: image.astype(np.float32)})[:, :, 3] for image in images]
    plain = len(images) / (time.perf_counter() - started)
    print(f"one-by-one session.run : {plain:8.2f} images/s")
    for size in batch_sizes:
        engine.predict(images[:size])
        started = time.perf_counter()
        alphas = []
        for start in range(0, len(images), size):
            alphas.extend(engine.predict(images[start: start + size]))
        rate = len(images) / (time.perf_counter() - started)
        same = all(np.array_equal(a, b) for a, b in zip(alphas, reference, strict=True))
        print(f"engine batch size {size:<5}: {rate:8.2f} images/s  ({rate / plain:4.2f}×, "
              f"alphas identical: {same})")


def bench_rss(engine, images, inferences: int) -> None:
    engine.predict(images[:1])
    before = vm_rss_mib()
    started = time.perf_counter()
    # Samples along the run tell a leak (steady rise) from allocator warm-up (early rise, then flat).
    checkpoints = {inferences * step // 4 for step in range(1, 5)}
    for index in range(1, inferences + 1):
        engine.predict([images[index % len(images)]])
        if index in checkpoints:
            print(f"  after {index:6d} inferences: VmRSS {vm_rss_mib():.1f} MiB")
    seconds = time.perf_counter() - started
    after = vm_rss_mib()
    print(f"VmRSS before {before:.1f} MiB, after {inferences} inferences {after:.1f} MiB "
          f"(+{after - before:.1f} MiB) in {seconds:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--count", type=int, default=32, help="images per measurement")
    parser.add_argument("--extra-convs", type=int, default=8, help="stand-in cost: extra conv layers")
    parser.add_argument("--channels", type=int, default=16, help="stand-in cost: channels per conv")
    parser.add_argument("--batch-sizes", default="1,2,4,8")
    parser.add_argument("--graph", type=Path, help="a real tf_graph.pb instead of the stand-in")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--rss", action="store_true", help="measure VmRSS across many inferences")
    parser.add_argument("--rss-inferences", type=int, default=2000)
    args = parser.parse_args()

    from bshmd.engine import MattingEngine
    from bshmd.testing.standin import write_standin_graph

    with tempfile.TemporaryDirectory() as scratch:
        graph = args.graph or write_standin_graph(
            Path(scratch), extra_convs=args.extra_convs, channels=args.channels)
        with MattingEngine(graph, device=args.device, max_side=max(args.height, args.width)) as engine:
            what = args.graph or f"stand-in, {args.extra_convs} extra convs × {args.channels} channels"
            print(f"{what}; {args.count} images of {args.width}×{args.height}; "
                  f"loaded in {engine.load_seconds:.2f} s")
            images = make_images(args.count, args.height, args.width)
            if args.rss:
                bench_rss(engine, images, args.rss_inferences)
            else:
                bench_batches(engine, images, [int(size) for size in args.batch_sizes.split(",")])


if __name__ == "__main__":
    main()
