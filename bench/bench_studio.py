"""CPU, wall time and memory per cut-out at studio size: the floor, a naive loop, and bshmd.

    .venv/bin/python bench/bench_studio.py [--images 6] [--work DIR] [--no-61mp]

Inputs are photo-like 24 MP JPEGs (6528×3672, quality 92): the real test photos scaled up
with sensor grain (bshmd.testing.studio), not flat synthetic figures. The model is the
stand-in graph (a test fixture with BSHM's tensor contract, not BSHM) at its cheapest, so its
own cost is near zero, as on a fast GPU: what is left is the CPU work bshmd does around the
model. The configuration is the default one, except ``gate.enabled: false`` (the stand-in's
matte of a grainy photo is soft enough that the gate would refuse it; the gate's own cost is
two histogram passes over the matte).

Three runs, side by side, each in its own process under ``/usr/bin/time -v`` (peak RSS):

- floor:  read the JPEG, ``cv2.imdecode``, clear the colour under alpha 0, ``cv2.imencode``
          PNG level 1 (libpng), write with fsync; the mattes are bshmd's, loaded beforehand;
- naive:  one image at a time through bshmd's own functions, each stage timed: decode,
          downscale, inference, upsample, gate, encode per output format, write+fsync;
- bshmd:  ``bshmd process`` on the folder (decode, batch, infer, write overlapped); its CPU
          per image is that of the run minus that of a run over an empty folder (start-up,
          TensorFlow import, model load).

CPU-seconds (user+sys, all threads) are the reliable figure on a shared machine; wall-seconds
depend on what else runs. A last run processes one 61 MP frame (9504×6336) with ``bshmd
process`` for its peak RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GIB = 1024 ** 3


# --- the children ---------------------------------------------------------------------------


def _inputs(src: Path) -> list[Path]:
    return sorted(src.glob("*.jpg"))


def _write_fsync(path: Path, data: bytes) -> None:
    with open(path, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def child_floor(src: Path, dst: Path, mattes: Path) -> dict:
    import cv2
    import numpy as np

    alphas = {}
    for path in _inputs(src):
        blob = (mattes / (path.name + ".cutout.png")).read_bytes()
        alphas[path.name] = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_UNCHANGED)[:, :, 3].copy()
    sizes = []
    cpu, wall = time.process_time(), time.perf_counter()
    for path in _inputs(src):
        data = path.read_bytes()
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        alpha = alphas[path.name]
        bgra = cv2.merge([cv2.copyTo(bgr, alpha), alpha])
        ok, png = cv2.imencode(".png", bgra, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        assert ok
        _write_fsync(dst / (path.name + ".floor.png"), png.tobytes())
        sizes.append(len(png))
    return {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall, "images": len(sizes),
            "mean_bytes": sum(sizes) / len(sizes)}


def child_naive(src: Path, dst: Path, model: Path) -> dict:
    from bshmd.config import parse_config
    from bshmd.engine import MattingEngine
    from bshmd.engine.upsample import downscale, guided_upsample
    from bshmd.pipeline.decode import decode_image
    from bshmd.pipeline.outputs import output_paths, render_outputs, write_outputs

    config = parse_config({"folders": [{"input": str(src), "output": str(dst), "quarantine": str(dst) + ".q"}],
                           "model": {"path": str(model)}}, base_dir=dst)
    outputs = config.outputs
    limits = config.limits
    engine = MattingEngine.from_config(config.model, fetch=False)
    stages: dict[str, list[float]] = {}
    sizes = []

    @contextlib.contextmanager
    def clock(stage: str) -> Iterator[None]:
        cpu, wall = time.process_time(), time.perf_counter()
        yield
        spent = stages.setdefault(stage, [0.0, 0.0])
        spent[0] += time.process_time() - cpu
        spent[1] += time.perf_counter() - wall

    cpu, wall = time.process_time(), time.perf_counter()
    for path in _inputs(src):
        with clock("decode"):
            rgb = decode_image(path, max_pixels=limits.max_pixels, max_file_bytes=limits.max_file_bytes)
        with clock("downscale"):
            small = downscale(rgb, engine.max_side)
        with clock("inference"):
            low = engine.predict([small])[0]
        with clock("upsample"):
            alpha = guided_upsample(low, rgb)
        blobs = {}
        for fmt in outputs.formats:
            with clock(f"encode {fmt}"):
                blobs.update(render_outputs(rgb, alpha, outputs.model_copy(update={"formats": (fmt,)})))
        paths = output_paths(dst, Path(path.name), outputs)
        with clock("write+fsync"):
            write_outputs(paths, blobs, output_root=dst, file_mode=0o644, group=None)
        sizes.append(len(blobs["cutout"]))
        del rgb, small, low, alpha, blobs
    result = {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall, "images": len(sizes),
              "mean_bytes": sum(sizes) / len(sizes), "stages": stages}
    engine.close()
    return result


# --- the parent -----------------------------------------------------------------------------


def timed_run(command: list[str], env: dict[str, str]) -> tuple[dict, str]:
    """Run ``command`` under /usr/bin/time -v: (cpu, wall, rss figures, its stdout)."""
    done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True, env=env)
    if done.returncode not in (0, 4):
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}")

    def field(name: str) -> str:
        match = re.search(rf"^\s*{re.escape(name)}: (.*)$", done.stderr, re.MULTILINE)
        assert match, name
        return match.group(1)

    elapsed = field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")
    wall = sum(float(part) * 60 ** i for i, part in enumerate(reversed(elapsed)))
    return {"cpu": float(field("User time (seconds)")) + float(field("System time (seconds)")), "wall": wall,
            "rss": int(field("Maximum resident set size (kbytes)")) * 1024}, done.stdout


def make_inputs(folder: Path, count: int, size: tuple[int, int], photos: list[Path]) -> None:
    from bshmd.testing.studio import studio_jpeg

    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    for i in range(count):
        photo = photos[i % len(photos)]
        path = folder / f"{photo.stem}-{i:02}-{width}x{height}.jpg"
        if not path.exists():
            path.write_bytes(studio_jpeg(photo, width, height, seed=i))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bshmd-bench-studio"),
                        help="working folder; its inputs and results are made anew each run")
    parser.add_argument("--photos", type=Path, default=None,
                        help="folder of portrait-*.png test photos (default: tests/data/photos, else ../shared/testdata)")
    parser.add_argument("--no-61mp", action="store_true", help="skip the 61 MP memory case")
    parser.add_argument("--child", choices=["floor", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dst", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--extra", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "floor":
        print(json.dumps(child_floor(args.src, args.dst, args.extra)))
        return
    if args.child == "naive":
        print(json.dumps(child_naive(args.src, args.dst, args.extra)))
        return

    import shutil

    from bshmd.testing.standin import write_standin_graph
    from bshmd.testing.studio import STUDIO_24MP, STUDIO_61MP, find_photos, photos_folder

    photos = [photo for photo, _ in find_photos(args.photos or photos_folder(REPO))]
    work = args.work
    src, src61, empty = work / "in", work / "in-61mp", work / "empty"
    for name in ("in", "in-61mp"):  # made anew each run: the photos may have changed
        shutil.rmtree(work / name, ignore_errors=True)
    make_inputs(src, args.images, STUDIO_24MP, photos)
    if not args.no_61mp:
        make_inputs(src61, 1, STUDIO_61MP, photos)
    empty.mkdir(parents=True, exist_ok=True)
    model = work / "model"
    write_standin_graph(model)
    config = work / "bshmd.yaml"
    config.write_text(f"model:\n  path: {model}\ngate:\n  enabled: false\n", encoding="utf-8")
    for name in ("out-naive", "out-floor", "out-bshmd", "out-empty", "out-61mp"):
        shutil.rmtree(work / name, ignore_errors=True)
        shutil.rmtree(work / (name + ".quarantine"), ignore_errors=True)
        (work / name).mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    python, me = sys.executable, str(Path(__file__).resolve())
    bshmd = [python, "-c", "from bshmd.cli import main; main()"]  # this tree's bshmd, not an installed one
    n = args.images
    print(f"{n} × {STUDIO_24MP[0]}×{STUDIO_24MP[1]} JPEG q92 made from {', '.join(p.name for p in photos)}, "
          f"stand-in model, default config "
          f"(gate off); {len(os.sched_getaffinity(0))} usable cores, load average {os.getloadavg()[0]:.1f} "
          f"before the runs", flush=True)

    naive_time, out = timed_run([python, me, "--child", "naive", "--src", str(src), "--dst",
                                 str(work / "out-naive"), "--extra", str(model)], env)
    naive = json.loads(out.strip().splitlines()[-1])
    floor_time, out = timed_run([python, me, "--child", "floor", "--src", str(src), "--dst",
                                 str(work / "out-floor"), "--extra", str(work / "out-naive")], env)
    floor = json.loads(out.strip().splitlines()[-1])
    base_time, _ = timed_run([*bshmd, "process", str(empty), str(work / "out-empty"), "-c", str(config)], env)
    run_time, out = timed_run([*bshmd, "process", str(src), str(work / "out-bshmd"), "-c", str(config)], env)
    cutouts = sorted((work / "out-bshmd").glob("*.cutout.png"))
    assert len(cutouts) == n, f"bshmd process wrote {len(cutouts)} cut-outs of {n}:\n{out}"
    bshmd_bytes = sum(p.stat().st_size for p in cutouts) / n

    print("\nper image, naive loop, by stage (bshmd's own functions, one at a time):")
    print(f"  {'stage':<16} {'CPU-s':>7} {'wall-s':>7}")
    for stage, (cpu, wall) in naive["stages"].items():
        print(f"  {stage:<16} {cpu / n:7.3f} {wall / n:7.3f}")
    infer_cpu = naive["stages"]["inference"][0] / n

    bshmd_cpu = (run_time["cpu"] - base_time["cpu"]) / n
    bshmd_wall = (run_time["wall"] - base_time["wall"]) / n
    rows = [
        ("floor (cv2 + libpng 1)", floor["cpu"] / n, floor["wall"] / n, floor_time["rss"], floor["mean_bytes"]),
        ("naive loop", naive["cpu"] / n, naive["wall"] / n, naive_time["rss"], naive["mean_bytes"]),
        ("bshmd process", bshmd_cpu, bshmd_wall, run_time["rss"], bshmd_bytes),
    ]
    print(f"\n  {'per image':<24} {'CPU-s':>7} {'wall-s':>7} {'peak RSS':>10} {'cut-out MB':>10}")
    for name, cpu, wall, rss, size in rows:
        print(f"  {name:<24} {cpu:7.3f} {wall:7.3f} {rss / GIB:8.2f} GiB {size / 1e6:10.2f}")
    print(f"  (bshmd process start-up, empty folder: {base_time['cpu']:.2f} CPU-s, {base_time['wall']:.2f} s, "
          f"peak RSS {base_time['rss'] / GIB:.2f} GiB; subtracted above)")
    floor_cpu, floor_wall = floor["cpu"] / n, floor["wall"] / n
    print(f"\nbshmd / floor, CPU : {bshmd_cpu / floor_cpu:.2f}   (aim ≤ 1.0; the model's own "
          f"{infer_cpu:.3f} CPU-s included)")
    print(f"bshmd / floor, CPU without the model: {(bshmd_cpu - infer_cpu) / floor_cpu:.2f}")
    print(f"bshmd / floor, wall: {bshmd_wall / floor_wall:.2f}")
    print(f"bshmd / naive, wall: {bshmd_wall / (naive['wall'] / n):.2f}")
    print(f"cut-out size bshmd / libpng level 1: {bshmd_bytes / floor['mean_bytes']:.3f}   (aim ≤ 1.10)")
    print(f"peak RSS of bshmd process: {run_time['rss'] / GIB:.2f} GiB   (aim ≤ 1.5 GiB)")

    if not args.no_61mp:
        big_time, out = timed_run([*bshmd, "process", str(src61), str(work / "out-61mp"), "-c", str(config)], env)
        assert len(list((work / "out-61mp").glob("*.cutout.png"))) == 1, out
        print(f"61 MP ({STUDIO_61MP[0]}×{STUDIO_61MP[1]}), one image: peak RSS {big_time['rss'] / GIB:.2f} GiB "
              f"(aim ≤ 3.5 GiB), {big_time['cpu'] - base_time['cpu']:.2f} CPU-s, "
              f"{big_time['wall'] - base_time['wall']:.2f} s beyond start-up")
    print(f"load average after the runs: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
