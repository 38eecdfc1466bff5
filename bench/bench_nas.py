"""What the NAS safeguards cost at studio sizes: CPU-seconds to decode a 24 MP photo per
format (JPEG as the baseline, a DNG developed by LibRaw; HEIC at a phone's 12 MP, since a
single 24 MP HEVC picture from pillow-heif's encoder does not decode with libde265: cameras
write large HEIFs as tile grids), and a verified cross-device move against a plain
copy-and-unlink of the same file.

    .venv/bin/python bench/bench_nas.py [--width 6000 --height 4000] [--repeat 3]

The move needs two filesystems: the file is moved from a temporary folder to a bindfs view
(run as root with bindfs installed) or, without it, /dev/shm when that is another one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bshmd.decode.heif import register_opener  # noqa: E402
from bshmd.decode.image import decode_image  # noqa: E402
from bshmd.fs.move import place  # noqa: E402
from bshmd.testing.images import synthetic_portrait  # noqa: E402


def cpu_and_wall(fn, repeat: int) -> tuple[float, float]:  # noqa: ANN001
    """Best of ``repeat``: (CPU seconds of this process, all threads; wall seconds)."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        cpu, wall = time.process_time(), time.perf_counter()
        fn()
        best = min(best, (time.process_time() - cpu, time.perf_counter() - wall))
    return best


def build_inputs(folder: Path, width: int, height: int) -> dict[str, Path]:
    from PIL import Image

    from tests.nas.raw import write_dng  # the same DNG builder the tests use

    rgb = synthetic_portrait(width, height, 1, noise=6.0)
    paths = {"jpeg": folder / "photo.jpg", "dng": folder / "photo.dng", "heic": folder / "phone.heic"}
    Image.fromarray(rgb).save(paths["jpeg"], "JPEG", quality=92)
    write_dng(paths["dng"], rgb)
    register_opener()
    Image.fromarray(synthetic_portrait(4032, 3024, 1, noise=6.0)).save(paths["heic"], "HEIF", quality=90)
    return paths


def other_filesystem(base: Path) -> tuple[Path, list[str]] | None:
    """A folder on another filesystem than ``base``, and the command that unmounts it."""
    if shutil.which("bindfs") and os.geteuid() == 0:
        (base / "backing").mkdir()
        (base / "mount").mkdir()
        if subprocess.run(["bindfs", str(base / "backing"), str(base / "mount")]).returncode == 0:
            return base / "mount", ["fusermount3", "-u", str(base / "mount")]
    shm = Path("/dev/shm")
    if shm.is_dir() and os.stat(shm).st_dev != os.stat(base).st_dev:
        target = Path(tempfile.mkdtemp(dir=shm))
        return target, ["rm", "-rf", str(target)]
    return None


def bench_moves(base: Path, size: int, repeat: int) -> None:
    found = other_filesystem(base)
    if found is None:
        print("moves: no second filesystem here; skipped")
        return
    target, cleanup = found
    data = os.urandom(size)
    try:
        def plain() -> None:
            source = base / "plain.bin"
            source.write_bytes(data)
            shutil.copyfile(source, target / "plain.bin")
            os.unlink(source)
            os.unlink(target / "plain.bin")

        def verified() -> None:
            source = base / "verified.bin"
            source.write_bytes(data)
            st = source.stat()
            fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
            try:
                place(source, fd, "verified.bin", expect=(st.st_size, st.st_mtime_ns))
            finally:
                os.close(fd)
            os.unlink(target / "verified.bin")

        plain_cpu, plain_wall = cpu_and_wall(plain, repeat)
        verified_cpu, verified_wall = cpu_and_wall(verified, repeat)
        mib = size / 2**20
        print(f"move {mib:.0f} MiB across filesystems: copy+unlink {plain_cpu:.3f} CPU-s {plain_wall:.3f} s; "
              f"verified {verified_cpu:.3f} CPU-s {verified_wall:.3f} s; "
              f"ratio {verified_wall / plain_wall:.2f}x wall, {verified_cpu / max(plain_cpu, 1e-9):.2f}x CPU")
    finally:
        subprocess.run(cleanup, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--move-mib", type=int, default=25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        paths = build_inputs(base, args.width, args.height)
        baseline = None
        for kind, path in paths.items():
            pixels = 0

            def decode(path: Path = path) -> None:
                nonlocal pixels
                rgb = decode_image(path, max_pixels=10**9, max_file_bytes=2**31)
                pixels = rgb.shape[0] * rgb.shape[1]

            cpu, wall = cpu_and_wall(decode, args.repeat)
            per_mp = cpu / (pixels / 1e6)
            baseline = baseline or per_mp
            print(f"decode {kind:4s} {pixels / 1e6:4.1f} MP ({path.stat().st_size / 2**20:5.1f} MiB): "
                  f"{cpu:.2f} CPU-s ({per_mp * 1000:.0f} CPU-ms/MP, {per_mp / baseline:.1f}x the JPEG's), "
                  f"{wall:.2f} s wall")
        bench_moves(base, args.move_mib << 20, args.repeat)
    print(f"({os.cpu_count()} CPUs; best of {args.repeat})")


if __name__ == "__main__":
    main()
