"""What clean edges and the canvas layout add per 24 MP image, in CPU-seconds.

    .venv/bin/python bench/bench_edges.py [--photo PNG] [--matte PNG] [--size 4000x6000] [--repeats 5]

The photo (default: the test portrait, tests/data/photos/portrait-hopper.png) is scaled up to
--size with sensor-like grain; its matte (default: a real network's matte of it, MediaPipe
selfie segmentation, not BSHM's) is brought to that size by the engine's own guided
upsampling, so the soft band is as wide as the daemon would see that matte. Measured side by
side in one run (CPU-s are process CPU time, all threads; best of --repeats):

- edges:   ``clean_edges(..., "decontaminate")`` alone (``none`` costs nothing: it returns the photo);
- cut-out: ``render_outputs`` of the default cut-out with ``edges: none`` and ``decontaminate``;
- layout:  ``apply_layout`` to a 2000×2000 canvas with margin 0.05.

It prints the added CPU-s per image and the share it adds to the cut-out's own cost.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

PHOTOS = Path(__file__).resolve().parent.parent / "tests" / "data" / "photos"


def measure(fn, repeats: int) -> tuple[float, float]:  # noqa: ANN001
    """(CPU-s, wall-s), each the best of ``repeats`` calls after one warm-up."""
    fn()
    cpu = wall = float("inf")
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        fn()
        cpu, wall = min(cpu, time.process_time() - c), min(wall, time.perf_counter() - w)
    return cpu, wall


def portrait_at(width: int, height: int, photo: Path, matte_png: Path):  # noqa: ANN201 - (rgb, alpha)
    import cv2
    import numpy as np
    from PIL import Image

    from bshmd.engine.upsample import guided_upsample

    with Image.open(photo) as image:
        small = np.asarray(image.convert("RGB"))
    with Image.open(matte_png) as image:
        matte = np.asarray(image.convert("L"))
    rgb = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    rgb += np.random.default_rng(0).normal(0, 3, rgb.shape).astype(np.float32)  # sensor grain
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    return rgb, guided_upsample(matte, rgb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", type=Path, default=PHOTOS / "portrait-hopper.png")
    parser.add_argument("--matte", type=Path, default=PHOTOS / "portrait-hopper.selfie-alpha.png",
                        help="the matte of --photo, 8-bit grey at the photo's size")
    parser.add_argument("--size", default="4000x6000", help="width x height: 24 MP, upright like the portrait")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    import numpy as np

    from bshmd.config import LayoutConfig, OutputsConfig
    from bshmd.outputs.edges import _band_windows, clean_edges
    from bshmd.outputs.layout import apply_layout
    from bshmd.outputs.render import render_outputs
    from bshmd.pipeline.budget import bound_heap_retention

    bound_heap_retention()
    rgb, alpha = portrait_at(width, height, args.photo, args.matte)
    band = float(np.count_nonzero((alpha > 0) & (alpha < 255))) / alpha.size
    windows = sum(soft.size for _, _, soft in _band_windows(alpha)) / alpha.size
    print(f"{width}x{height} ({width * height / 1e6:.1f} MP), soft band 0<alpha<255: {band:.1%} of the pixels, "
          f"in windows of {windows:.1%}")

    edges_cpu, edges_wall = measure(lambda: clean_edges(rgb, alpha, "decontaminate"), args.repeats)
    layout = LayoutConfig(margin=0.05, canvas=(2000, 2000))
    layout_cpu, layout_wall = measure(lambda: apply_layout(rgb, alpha, layout), args.repeats)
    # Interleaved, so that both see the same load on a shared machine.
    plain, clean = OutputsConfig(edges="none"), OutputsConfig(edges="decontaminate")
    sizes = {cfg.edges: len(render_outputs(rgb, alpha, cfg)["cutout"]) for cfg in (plain, clean)}
    plain_cpu = plain_wall = clean_cpu = clean_wall = float("inf")
    for _ in range(args.repeats):
        cpu, wall = measure(lambda: render_outputs(rgb, alpha, plain), 1)
        plain_cpu, plain_wall = min(plain_cpu, cpu), min(plain_wall, wall)
        cpu, wall = measure(lambda: render_outputs(rgb, alpha, clean), 1)
        clean_cpu, clean_wall = min(clean_cpu, cpu), min(clean_wall, wall)

    print(f"{'':34s} {'CPU-s':>7s} {'wall-s':>7s}")
    print(f"{'edges: decontaminate alone':34s} {edges_cpu:7.3f} {edges_wall:7.3f}")
    print(f"{'layout to 2000x2000':34s} {layout_cpu:7.3f} {layout_wall:7.3f}")
    print(f"{'cut-out, edges: none':34s} {plain_cpu:7.3f} {plain_wall:7.3f}")
    print(f"{'cut-out, edges: decontaminate':34s} {clean_cpu:7.3f} {clean_wall:7.3f}")
    print(f"cut-out PNG: {sizes['none'] / 1e6:.1f} MB with edges: none, {sizes['decontaminate'] / 1e6:.1f} MB "
          "with decontaminate")
    print(f"added by decontaminate: {clean_cpu - plain_cpu:.3f} CPU-s per image "
          f"({(clean_cpu - plain_cpu) / plain_cpu:+.1%} of the cut-out; estimator alone {edges_cpu:.3f})")


if __name__ == "__main__":
    main()
