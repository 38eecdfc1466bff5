"""CPU cost of carrying colour profile and metadata, at studio size, side by side in one run.

    .venv/bin/python bench/bench_metadata.py [--size 6000x4000] [--repeats 3]

A synthetic portrait saved as a JPEG (quality 92) and tagged by exiftool like a studio's photo
(sRGB profile, EXIF artist/copyright/GPS, XMP, IPTC, 300 dpi). Prints CPU-seconds per image
(process time, the best of --repeats) for:

- decode:      decode_photo of the tagged JPEG (pixels and metadata);
- read_meta:   reading the profile and metadata from the opened header (opening and reading,
  less opening alone);
- cutout bare: the default output (cutout PNG) without metadata;
- cutout meta: the same with the photo's profile and metadata carried (bare and meta runs
  alternate, so both see the same machine; the best of each is kept);
- meta work:   the metadata part alone (result_meta, png_chunks and splicing them into the
  encoded PNG), the best of 20;
- adobe→sRGB:  the network's copy of an Adobe RGB photo (only such inputs pay it);
- tiff, psd, avif: the new formats, for scale (not defaults);

and the ratios read_meta/decode, (cutout meta − cutout bare)/cutout bare and meta work/cutout
bare (the first difference is within the noise of a shared machine; the second is the cost).
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ICC = Path("/usr/share/color/icc")


def alternating(first: Callable[[], Any], second: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Best CPU-seconds of each, run in turns so that machine load hits both alike."""
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        for index, fn in enumerate((first, second)):
            started = time.process_time()
            fn()
            best[index] = min(best[index], time.process_time() - started)
    return best[0], best[1]


def cpu_seconds(fn: Callable[[], Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="6000x4000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--formats", default="tiff,psd,avif", help="extra formats to time ('' for none)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    import numpy as np
    from PIL import Image

    from bshmd.config import OutputsConfig
    from bshmd.decode.image import decode_photo
    from bshmd.decode.meta import read_meta
    from bshmd.outputs.colour import to_srgb
    from bshmd.outputs.metadata import add_png_chunks, png_chunks, result_meta
    from bshmd.outputs.render import render_outputs
    from bshmd.testing.images import synthetic_portrait

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "studio.jpg"
        Image.fromarray(synthetic_portrait(width, height, 1)).save(path, quality=92)
        subprocess.run(["exiftool", "-q", "-q", "-overwrite_original", f"-ICC_Profile<={ICC / 'sRGB.icc'}",
                        "-Artist=Ann Photographer", "-Copyright=(c) Studio", "-XMP-dc:Creator=Ann Photographer",
                        "-IPTC:Keywords=portrait", "-XResolution=300", "-YResolution=300", "-ResolutionUnit=inches",
                        "-GPSLatitude=48.1", "-GPSLatitudeRef=N", str(path)], check=True)
        limits = {"max_pixels": 10**9, "max_file_bytes": 1 << 31}
        photo = decode_photo(path, **limits)
        yy, xx = np.mgrid[0:height, 0:width]
        inside = ((xx - width / 2) / (width * 0.28)) ** 2 + ((yy - height * 0.55) / (height * 0.4)) ** 2
        alpha = np.clip((1.2 - inside) * 255 * 4, 0, 255).astype(np.uint8)
        adobe = (ICC / "compatibleWithAdobeRGB1998.icc").read_bytes()

        def open_only() -> None:
            with Image.open(path):
                pass

        def open_and_meta() -> None:
            with Image.open(path) as image:
                read_meta(image)

        cutout = OutputsConfig()
        bare, carried = alternating(lambda: render_outputs(photo.rgb, alpha, cutout),
                                    lambda: render_outputs(photo.rgb, alpha, cutout, photo=photo), args.repeats)
        png = render_outputs(photo.rgb, alpha, cutout)["cutout"]

        def meta_work() -> None:
            add_png_chunks(png, png_chunks(result_meta(photo.meta, cutout)))

        figures = {
            "decode": cpu_seconds(lambda: decode_photo(path, **limits), args.repeats),
            "read_meta": cpu_seconds(open_and_meta, 20) - cpu_seconds(open_only, 20),
            "cutout bare": bare,
            "cutout meta": carried,
            "meta work": cpu_seconds(meta_work, 20),
            "adobe→sRGB": cpu_seconds(lambda: to_srgb(photo.rgb, adobe), args.repeats),
        }
        for fmt in filter(None, args.formats.split(",")):
            config = OutputsConfig(formats=(fmt,))
            figures[fmt] = cpu_seconds(lambda config=config: render_outputs(photo.rgb, alpha, config, photo=photo),
                                       1)
    print(f"{width}x{height} ({width * height / 1e6:.1f} MP), CPU-seconds per image, best of {args.repeats}:")
    for name, value in figures.items():
        print(f"  {name:12s} {value:8.3f}")
    print(f"read_meta / decode:                       {figures['read_meta'] / figures['decode']:.4f}")
    extra = (figures["cutout meta"] - figures["cutout bare"]) / figures["cutout bare"]
    print(f"(cutout meta - cutout bare) / cutout bare: {extra:+.4f}")
    print(f"meta work / cutout bare:                  {figures['meta work'] / figures['cutout bare']:.4f}")


if __name__ == "__main__":
    main()
