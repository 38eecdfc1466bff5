"""CPU, wall time and memory per cut-out at studio size: the floor, a naive loop, and bshmd.

    .venv/bin/python bench/bench_studio.py [--images 6] [--work DIR] [--matte standin|known|both]
                                           [--edges none|decontaminate|both] [--repeats 2] [--no-61mp]

Inputs are photo-like 24 MP JPEGs (6528×3672, quality 92): the real test photos scaled up
with sensor grain (bshmd.testing.studio), not flat synthetic figures. The model costs near
zero, as on a fast GPU: what is left is the CPU work bshmd does around the model. Two model
stand-ins, each a test fixture with BSHM's tensor contract, not BSHM; by default both:

- standin: the stand-in graph at its cheapest (bshmd.testing.standin). Its matte of a grainy
           photo is soft (0 < alpha < 255) on about a third of the pixels, far more than a
           portrait matte; what costs per soft pixel (clean edges) costs most here.
- known:   a graph that always answers one fixed matte: the real network's matte shipped
           beside a test photo (portrait-x.<network>-alpha.png; MediaPipe selfie segmentation,
           not BSHM), cropped as the 24 MP frames are and sized as the model's input. Its
           inputs are made from that photo only, so the matte fits them; upsampled to 24 MP it
           is soft on a few per cent of the pixels, as a portrait matte is.

The configuration is the default one, except ``gate.enabled: false`` (the stand-in's matte of
a grainy photo is soft enough that the gate would refuse it; the gate's own cost is two
histogram passes over the matte) and ``outputs.edges``, which the bshmd runs take from
--edges: by default one run with ``none`` and one with ``decontaminate`` on the same inputs.

Per matte, side by side, each in its own process under ``/usr/bin/time -v`` (peak RSS):

- floor:  read the JPEG, ``cv2.imdecode``, clear the colour under alpha 0, ``cv2.imencode``
          PNG level 1 (libpng), write with fsync; the mattes are bshmd's, loaded beforehand;
- naive:  one image at a time through bshmd's own functions, each stage timed: decode,
          downscale, inference, upsample, gate, encode per output format, write+fsync;
- bshmd:  ``bshmd process`` on the folder (decode, batch, infer, write overlapped), once per
          edges mode; its CPU per image is that of the run minus that of a run over an empty
          folder (start-up, TensorFlow import, model load).

The floor and the bshmd runs are repeated (--repeats, interleaved) and each figure is the
best of its runs; the peak RSS is the largest.

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
from dataclasses import dataclass, field
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
    from bshmd.decode.image import decode_image
    from bshmd.engine import MattingEngine
    from bshmd.engine.upsample import downscale, guided_upsample
    from bshmd.outputs.files import output_paths, write_outputs
    from bshmd.outputs.render import render_outputs

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


def soft_share(folder: Path) -> float:
    """Mean share of the pixels with 0 < alpha < 255 in the cut-outs under ``folder``."""
    import cv2
    import numpy as np

    shares = []
    for path in sorted(folder.glob("*.cutout.png")):
        alpha = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[:, :, 3]
        shares.append(np.count_nonzero(cv2.inRange(alpha, 1, 254)) / alpha.size)
    return sum(shares) / len(shares)


@dataclass
class Case:
    """One matte source: its inputs, its model, and the figures measured on them."""

    name: str
    label: str
    photos: list[Path]
    model: Path
    rows: dict[str, tuple[float, float, int, float]] = field(default_factory=dict)  # name → cpu, wall, rss, bytes


def make_cases(work: Path, which: str, found: list[tuple[Path, Path | None]]) -> list[Case]:
    from bshmd.config import ModelConfig
    from bshmd.engine.upsample import fit_long_side
    from bshmd.testing.standin import write_fixed_matte_graph, write_standin_graph
    from bshmd.testing.studio import STUDIO_24MP, studio_matte

    cases = []
    if which in ("standin", "both"):
        model = work / "model-standin"
        write_standin_graph(model)
        cases.append(Case("standin", "stand-in graph's matte of the grainy photo (soft on about a third of it)",
                          [photo for photo, _ in found], model))
    with_matte = [(photo, matte) for photo, matte in found if matte is not None]
    if which in ("known", "both") and with_matte:
        photo, matte = with_matte[0]
        # The graph answers this one matte whatever it is fed: the real network's matte of the
        # photo the inputs are made from, cropped as studio_photo crops it, at the model's input.
        width, height = STUDIO_24MP
        model_h, model_w = fit_long_side(height, width, ModelConfig().max_side)
        model = work / "model-known"
        write_fixed_matte_graph(model, studio_matte(matte, model_w, model_h))
        cases.append(Case("known", f"fixed matte: {matte.name} (a real network's matte of {photo.name}, "
                                   "not BSHM's)", [photo], model))
    elif which == "known":
        raise SystemExit("no test photo has a matte beside it (portrait-x.<network>-alpha.png)")
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bshmd-bench-studio"),
                        help="working folder; its inputs and results are made anew each run")
    parser.add_argument("--photos", type=Path, default=None,
                        help="folder of portrait-*.png test photos (default: tests/data/photos, else ../shared/testdata)")
    parser.add_argument("--matte", choices=["standin", "known", "both"], default="both",
                        help="standin: the stand-in graph's matte; known: a graph answering a real network's "
                             "matte of the photo; both (default)")
    parser.add_argument("--edges", choices=["none", "decontaminate", "both"], default="both",
                        help="outputs.edges of the bshmd runs; both (default): one run each, side by side")
    parser.add_argument("--repeats", type=int, default=2,
                        help="runs of the floor and of each bshmd configuration, interleaved; the best counts")
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

    from bshmd.config import OutputsConfig
    from bshmd.testing.studio import STUDIO_24MP, STUDIO_61MP, find_photos, photos_folder

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    for pattern in ("in-*", "out-*", "model-*", "empty", "bshmd-*.yaml"):  # anew: the photos may have changed
        for old in work.glob(pattern):
            if old.is_dir():
                shutil.rmtree(old)
            else:
                old.unlink()
    found = find_photos(args.photos or photos_folder(REPO))
    cases = make_cases(work, args.matte, found)
    default_edges = OutputsConfig().edges
    modes = ["none", "decontaminate"] if args.edges == "both" else [args.edges]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    python, me = sys.executable, str(Path(__file__).resolve())
    bshmd = [python, "-c", "from bshmd.cli import main; main()"]  # this tree's bshmd, not an installed one
    n = args.images
    empty = work / "empty"
    empty.mkdir()
    print(f"{n} × {STUDIO_24MP[0]}×{STUDIO_24MP[1]} JPEG q92 per matte, default config (gate off; "
          f"outputs.edges {' and '.join(modes)}, default {default_edges}); {len(os.sched_getaffinity(0))} "
          f"usable cores, load average {os.getloadavg()[0]:.1f} before the runs", flush=True)

    def config_for(case: Case, edges: str) -> Path:
        path = work / f"bshmd-{case.name}-{edges}.yaml"
        path.write_text(f"model:\n  path: {case.model}\ngate:\n  enabled: false\noutputs:\n  edges: {edges}\n",
                        encoding="utf-8")
        return path

    def fresh(name: str) -> Path:
        (work / name).mkdir()
        return work / name

    for case in cases:
        src = work / f"in-{case.name}"
        make_inputs(src, n, STUDIO_24MP, case.photos)
        naive_out = fresh(f"out-{case.name}-naive")
        naive_time, out = timed_run([python, me, "--child", "naive", "--src", str(src), "--dst", str(naive_out),
                                     "--extra", str(case.model)], env)
        naive = json.loads(out.strip().splitlines()[-1])
        # Repeated and interleaved, each figure the best of its runs: on a shared machine one
        # run's CPU-seconds vary by some 0.1 s per image, as much as what is compared.
        floors, bases, runs = [], [], {edges: [] for edges in modes}
        for rep in range(args.repeats):
            floor_time, out = timed_run([python, me, "--child", "floor", "--src", str(src), "--dst",
                                         str(fresh(f"out-{case.name}-floor-{rep}")), "--extra", str(naive_out)], env)
            floors.append((json.loads(out.strip().splitlines()[-1]), floor_time))
            bases.append(timed_run([*bshmd, "process", str(empty), str(fresh(f"out-{case.name}-empty-{rep}")),
                                    "-c", str(config_for(case, default_edges))], env)[0])
            for edges in modes:
                dst = fresh(f"out-{case.name}-{edges}-{rep}")
                run_time, out = timed_run([*bshmd, "process", str(src), str(dst),
                                           "-c", str(config_for(case, edges))], env)
                cutouts = sorted(dst.glob("*.cutout.png"))
                assert len(cutouts) == n, f"bshmd process wrote {len(cutouts)} cut-outs of {n}:\n{out}"
                runs[edges].append((run_time, sum(p.stat().st_size for p in cutouts) / n))
        floor = {"cpu": min(f["cpu"] for f, _ in floors), "wall": min(f["wall"] for f, _ in floors)}
        base_time = {key: min(b[key] for b in bases) for key in ("cpu", "wall", "rss")}
        case.rows["floor (cv2 + libpng 1)"] = (floor["cpu"] / n, floor["wall"] / n, max(t["rss"] for _, t in floors),
                                               floors[0][0]["mean_bytes"])
        case.rows[f"naive loop, edges {default_edges}"] = (naive["cpu"] / n, naive["wall"] / n, naive_time["rss"],
                                                           naive["mean_bytes"])
        for edges in modes:
            case.rows[f"bshmd, edges {edges}"] = ((min(t["cpu"] for t, _ in runs[edges]) - base_time["cpu"]) / n,
                                                  (min(t["wall"] for t, _ in runs[edges]) - base_time["wall"]) / n,
                                                  max(t["rss"] for t, _ in runs[edges]), runs[edges][0][1])

        print(f"\n== matte: {case.label}; {', '.join(p.name for p in case.photos)}; "
              f"soft (0<alpha<255): {soft_share(naive_out):.1%} of the pixels")
        print(f"per image, naive loop, by stage (bshmd's own functions, one at a time, edges {default_edges}):")
        print(f"  {'stage':<16} {'CPU-s':>7} {'wall-s':>7}")
        for stage, (cpu, wall) in naive["stages"].items():
            print(f"  {stage:<16} {cpu / n:7.3f} {wall / n:7.3f}")
        floor_cpu, floor_wall = case.rows["floor (cv2 + libpng 1)"][:2]
        print(f"\n  {'per image':<32} {'CPU-s':>7} {'wall-s':>7} {'peak RSS':>10} {'cut-out MB':>10} "
              f"{'/floor CPU':>10} {'/floor wall':>11}")
        for name, (cpu, wall, rss, size) in case.rows.items():
            print(f"  {name:<32} {cpu:7.3f} {wall:7.3f} {rss / GIB:6.2f} GiB {size / 1e6:10.2f} "
                  f"{cpu / floor_cpu:10.2f} {wall / floor_wall:11.2f}")
        print(f"  (bshmd process start-up, empty folder: {base_time['cpu']:.2f} CPU-s, {base_time['wall']:.2f} s, "
              f"peak RSS {base_time['rss'] / GIB:.2f} GiB; subtracted above; best of {args.repeats} runs; "
              f"the model's own "
              f"{naive['stages']['inference'][0] / n:.3f} CPU-s included)", flush=True)

    print("\nsummary, per 24 MP image (bar: bshmd/floor CPU ≤ 1.0, aim 0.5; cut-out ≤ 1.10× libpng's; "
          "peak RSS ≤ 1.5 GiB):")
    for case in cases:
        floor_cpu, floor_wall, _, floor_bytes = case.rows["floor (cv2 + libpng 1)"]
        for edges in modes:
            cpu, wall, rss, size = case.rows[f"bshmd, edges {edges}"]
            print(f"  {case.name:<8} edges {edges:<14} bshmd/floor CPU {cpu / floor_cpu:5.2f}  wall "
                  f"{wall / floor_wall:5.2f}  cut-out/libpng {size / floor_bytes:5.3f}  RSS {rss / GIB:.2f} GiB")
        if len(modes) == 2:
            plain, clean = case.rows["bshmd, edges none"], case.rows["bshmd, edges decontaminate"]
            print(f"  {case.name:<8} decontaminate adds {clean[0] - plain[0]:+.3f} CPU-s, {clean[1] - plain[1]:+.3f} "
                  f"s wall per image")

    if not args.no_61mp:
        # The stand-in's: a fixed-matte graph takes only the 24 MP frames' model input size.
        case = make_cases(work, "standin", found)[0] if cases[0].name != "standin" else cases[0]
        src61 = work / "in-61mp"
        make_inputs(src61, 1, STUDIO_61MP, case.photos)
        base_time, _ = timed_run([*bshmd, "process", str(empty), str(fresh("out-61mp-empty")),
                                  "-c", str(config_for(case, default_edges))], env)
        big_time, out = timed_run([*bshmd, "process", str(src61), str(fresh("out-61mp")),
                                   "-c", str(config_for(case, default_edges))], env)
        assert len(list((work / "out-61mp").glob("*.cutout.png"))) == 1, out
        print(f"61 MP ({STUDIO_61MP[0]}×{STUDIO_61MP[1]}), one image, {case.name} matte, edges {default_edges}: "
              f"peak RSS {big_time['rss'] / GIB:.2f} GiB (aim ≤ 3.5 GiB), "
              f"{big_time['cpu'] - base_time['cpu']:.2f} CPU-s, {big_time['wall'] - base_time['wall']:.2f} s "
              "beyond start-up")
    print(f"load average after the runs: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
