"""What an exact white background costs the composite JPEG, in CPU-seconds and bytes.

    .venv/bin/python bench/bench_jpeg_background.py [--size 4000x6000] [--repeats 5]

Two composites on #ffffff, each encoded side by side in one run (interleaved, best of
--repeats, process CPU time over all threads):

- the test portrait at --size (24 MP by default, grain and a guided-upsampled real matte as in
  bench_edges.py), in the photo's own framing;
- the same laid out on a 2000×2000 canvas (trim, margin 0.05, centred).

"plain" is what the composite JPEG was before: Pillow, YCbCr 4:4:4. "exact" is bshmd's
encode_jpeg with the background's pixels (alpha 0) pinned: RGB components, then the
coefficients of every block holding background rewritten through jpeglib
(bshmd.outputs.jpeg). It prints CPU-s, bytes, and how many background pixels decode to
anything but 255,255,255 (Pillow's decoder).
"""

from __future__ import annotations

import argparse
import io
import time

from bench_edges import PHOTOS, portrait_at


def measure(fn) -> tuple[float, bytes]:  # noqa: ANN001
    cpu = time.process_time()
    blob = fn()
    return time.process_time() - cpu, blob


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="4000x6000", help="width x height of the photo-framed composite")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quality", type=int, default=92)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    import numpy as np
    from PIL import Image

    from bshmd.config import LayoutConfig, OutputsConfig
    from bshmd.outputs.jpeg import BackgroundPixels, encode_jpeg
    from bshmd.outputs.layout import apply_layout
    from bshmd.outputs.render import composite

    rgb, alpha = portrait_at(width, height, PHOTOS / "portrait-hopper.png", PHOTOS / "portrait-hopper.selfie-alpha.png")
    outputs = OutputsConfig()
    laid_rgb, laid_alpha = apply_layout(rgb, alpha, LayoutConfig(margin=0.05, canvas=(2000, 2000)))
    cases = {
        f"{width}x{height}, own framing": (composite(rgb, alpha, outputs), alpha),
        "2000x2000 layout": (composite(laid_rgb, laid_alpha, outputs), laid_alpha),
    }
    print(f"{'':28s} {'plain CPU-s':>11s} {'exact CPU-s':>11s} {'added':>7s} {'plain kB':>9s} {'exact kB':>9s}"
          f" {'ratio':>6s} {'off-white px plain / exact':>27s}")
    for name, (flat, matte) in cases.items():
        image = Image.fromarray(flat)
        background = BackgroundPixels(matte == 0, (255, 255, 255))
        best = {"plain": float("inf"), "exact": float("inf")}
        blobs: dict[str, bytes] = {}
        for _ in range(args.repeats + 1):  # the first round warms up
            for kind in best:
                pinned = background if kind == "exact" else None
                cpu, blobs[kind] = measure(
                    lambda image=image, pinned=pinned: encode_jpeg(image, args.quality, background=pinned))
                best[kind] = min(best[kind], cpu)
        off = {}
        for kind, blob in blobs.items():
            with Image.open(io.BytesIO(blob)) as decoded:
                off[kind] = int((np.asarray(decoded)[matte == 0] != 255).any(axis=1).sum())
        print(f"{name:28s} {best['plain']:11.3f} {best['exact']:11.3f} {best['exact'] - best['plain']:+7.3f}"
              f" {len(blobs['plain']) / 1e3:9.0f} {len(blobs['exact']) / 1e3:9.0f}"
              f" {len(blobs['exact']) / len(blobs['plain']):6.2f} {off['plain']:>13d} / {off['exact']:<11d}")


if __name__ == "__main__":
    main()
