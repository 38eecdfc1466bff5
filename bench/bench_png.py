"""Size and CPU of PNG encoders on one studio-size cut-out (the table in the README).

    .venv/bin/python bench/bench_png.py [--size 6528x3672] [--levels 1-9] [--opaque] [--photos DIR]

The cut-out is a test portrait with a real network's matte (the first ``portrait-*.png`` of
``--photos`` that has a ``*-alpha.png`` beside it) scaled up with grain, black under alpha 0
(``clear_transparent``). For each encoder and level it prints the file
size, CPU-seconds (all threads of the process) and wall-seconds of one encode, and checks
that the file decodes back to the same pixels. Candidates:

- pillow:      Pillow's PNG plugin (libpng filters chosen per row + zlib), ``compress_level``;
- opencv:      ``cv2.imencode('.png')`` (OpenCV's PNG codec), ``IMWRITE_PNG_COMPRESSION``;
- up+zlib:     every row Up-filtered, deflated by the standard library's zlib;
- up+zlib-ng:  the same rows deflated by zlib-ng (``zlib-ng`` on PyPI), if installed;
- bshmd:       bshmd.outputs.png (Up filter + ISA-L), one thread and ``--threads`` threads.
"""

from __future__ import annotations

import argparse
import io
import os
import struct
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _up_png(rgba, compress) -> bytes:  # noqa: ANN001
    """A PNG of Up-filtered rows deflated in one go by ``compress`` (bytes → zlib stream)."""
    from bshmd.outputs.png import _ArrayStrips, _filtered

    height, width = rgba.shape[:2]
    data = compress(_filtered(_ArrayStrips(rgba), 0, height, width * 4))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def measure(encode) -> tuple[bytes, float, float]:  # noqa: ANN001
    cpu, wall = time.process_time(), time.perf_counter()
    blob = encode()
    return blob, time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="6528x3672")
    parser.add_argument("--levels", default="1-9", help="zlib levels for pillow/opencv/zlib, e.g. 1-9 or 1,6")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--opaque", action="store_true",
                        help="alpha 255 everywhere: the whole photo is kept (a head-and-shoulders crop's worst case)")
    parser.add_argument("--photos", type=Path, default=None,
                        help="folder of portrait-*.png and their *-alpha.png mattes (default: tests/data/photos, "
                             "else ../shared/testdata)")
    parser.add_argument("--only", default="", help="comma-separated encoder names to run (default: all)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    if "-" in args.levels:
        low, high = (int(v) for v in args.levels.split("-"))
        levels = list(range(low, high + 1))
    else:
        levels = [int(v) for v in args.levels.split(",")]

    import cv2
    import numpy as np
    from PIL import Image

    from bshmd.outputs.png import encode_png
    from bshmd.testing.studio import find_photos, photos_folder, studio_matte, studio_photo

    pairs = [pair for pair in find_photos(args.photos or photos_folder(REPO)) if pair[1] is not None]
    if not pairs:
        raise SystemExit("no portrait-*.png with a *-alpha.png matte beside it")
    photo, matte = pairs[0]
    rgb = studio_photo(photo, width, height)
    alpha = studio_matte(matte, width, height)
    if args.opaque:
        alpha[:] = 255
    rgba = np.dstack([rgb, alpha])
    rgba[alpha == 0, :3] = 0
    bgra = cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA)

    candidates: list[tuple[str, str, object]] = []
    for level in levels:
        def pillow(level: int = level) -> bytes:
            buffer = io.BytesIO()
            Image.fromarray(rgba, "RGBA").save(buffer, "PNG", compress_level=level)
            return buffer.getvalue()

        def opencv(level: int = level) -> bytes:
            ok, encoded = cv2.imencode(".png", bgra, [cv2.IMWRITE_PNG_COMPRESSION, level])
            assert ok
            return encoded.tobytes()

        candidates += [("pillow", str(level), pillow), ("opencv", str(level), opencv),
                       ("up+zlib", str(level), lambda level=level: _up_png(rgba, lambda d: zlib.compress(d, level)))]
        try:
            import zlib_ng.zlib_ng as zng
        except ImportError:
            pass
        else:
            candidates.append(("up+zlib-ng", str(level),
                               lambda level=level: _up_png(rgba, lambda d: zng.compress(d, level))))
    for level in range(0, 4):
        candidates.append(("bshmd", f"{level} ×1", lambda level=level: encode_png(rgba, level=level)))
        if args.threads > 1:
            candidates.append(("bshmd", f"{level} ×{args.threads}",
                               lambda level=level: encode_png(rgba, level=level, threads=args.threads)))
    only = {name for name in args.only.split(",") if name}

    print(f"{width}×{height} RGBA cut-out of {photo.name} with {matte.name} "
          f"({np.count_nonzero(alpha) / alpha.size:.0%} not transparent), {rgba.nbytes / 1e6:.0f} MB raw, "
          f"{len(os.sched_getaffinity(0))} "
          f"usable cores, load average {os.getloadavg()[0]:.1f}")
    print(f"{'encoder':<11} {'level':>6} {'MB':>7} {'CPU-s':>7} {'wall-s':>7}")
    for name, level, encode in candidates:
        if only and name not in only:
            continue
        blob, cpu, wall = measure(encode)
        back = np.asarray(Image.open(io.BytesIO(blob)))
        assert back.shape == rgba.shape and np.array_equal(back, rgba), f"{name} {level}: pixels differ"
        print(f"{name:<11} {level:>6} {len(blob) / 1e6:7.2f} {cpu:7.2f} {wall:7.2f}", flush=True)


if __name__ == "__main__":
    main()
