"""Each inference runtime through ``bshmd process`` (default outputs): CPU, wall and memory per photo.

    .venv/bin/python bench/bench_runtimes.py [--runtimes tensorflow,onnxruntime,openvino]
        [--photos-1080p 8] [--photos-24mp 3] [--graph tf_graph.pb] [--precision fp32]
        [--providers CUDAExecutionProvider,CPUExecutionProvider] [--device auto]

On the U-Net-shaped stand-in (bshmd.testing.unet, a test fixture, not BSHM) unless --graph
names a real tf_graph.pb. The graph is exported once per runtime (``bshmd model export``'s
own code). Then, per runtime and size, ``python -m bshmd process`` runs twice in a fresh
process: on one photo and on N. The difference divided by N-1 is the cost of one photo, with
the start-up (imports, model load, warm-up, OpenVINO's compile of that size) taken out; peak
RSS is the N-photo run's. The cut-outs' alpha channels are compared with TensorFlow's.

Prints one row per runtime and size, the ratios of CPU-s per photo and peak RSS against
TensorFlow's, and the load average (other work on the host skews wall times, less CPU-s).
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

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
SIZES = {"1080p": (1920, 1080), "24MP": (6528, 3672)}
FORMAT = {"onnxruntime": "onnx", "openvino": "openvino"}


def run_process(src: Path, dst: Path, config: Path) -> tuple[float, float, float]:
    """(CPU-s, wall-s, peak RSS MiB) of one ``bshmd process`` run in its own process, from scratch."""
    shutil.rmtree(dst, ignore_errors=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    state = Path(tempfile.mkdtemp(prefix="state-", dir=dst.parent))  # a fresh ledger: nothing done yet
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "BSHMD_STATE_DIR": str(state)}
    started = time.perf_counter()
    peak_file = state / "peak-rss"
    argv = ["bshmd", "process", str(src), str(dst), "-c", str(config), "--no-progress"]
    child = subprocess.Popen([sys.executable, "-c", _PEAK_RSS, str(peak_file), *argv], env=env, cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bshmd process failed in {src}:\n{child.stderr.read().decode(errors='replace')}")
    child.stderr.close()
    # Not ru_maxrss: Linux carries the forking parent's RSS (this bench holds TensorFlow) across exec.
    return usage.ru_utime + usage.ru_stime, wall, int(peak_file.read_text()) / 1024


# Runs `bshmd` as `python -m bshmd` does and, on the way out, writes its own VmHWM (peak RSS, kB).
_PEAK_RSS = """
import atexit, runpy, sys
def _peak(path=sys.argv[1]):
    line = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))
    open(path, 'w').write(line.split()[1])
atexit.register(_peak)
sys.argv = sys.argv[2:]
runpy.run_module('bshmd', run_name='__main__', alter_sys=True)
"""


def write_photos(folder: Path, size: tuple[int, int], count: int) -> None:
    from bshmd.testing.studio import find_photos, photos_folder, studio_jpeg

    folder.mkdir(parents=True, exist_ok=True)
    sources = [photo for photo, _ in find_photos(photos_folder(REPO))]
    for index in range(count):
        if (folder / f"photo-{index:03d}.jpg").exists():
            continue
        data = studio_jpeg(sources[index % len(sources)], *size, seed=index)
        (folder / f"photo-{index:03d}.jpg").write_bytes(data)


def alphas(folder: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    found = {}
    for path in sorted(folder.rglob("*.png")):
        with Image.open(path) as image:
            if image.mode == "RGBA":
                found[path.name] = np.asarray(image.getchannel("A"))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtimes", default="tensorflow,onnxruntime,openvino")
    parser.add_argument("--photos-1080p", type=int, default=8)
    parser.add_argument("--photos-24mp", type=int, default=3)
    parser.add_argument("--graph", type=Path, default=None, help="a real tf_graph.pb (default: the U-Net stand-in)")
    parser.add_argument("--precision", choices=["fp32", "fp16"], default="fp32")
    parser.add_argument("--providers", default="CPUExecutionProvider")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--work", type=Path, default=None, help="keep the photos, exports and results here")
    args = parser.parse_args()

    from bshmd.config import ModelConfig
    from bshmd.engine.export import export_model
    from bshmd.testing.unet import write_unet_graph

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-runtimes-"))
    model_dir = work / "model"
    if args.graph is not None:
        model_dir.mkdir(parents=True, exist_ok=True)
        target = model_dir / "tf_graph.pb"
        if not target.exists():
            target.symlink_to(args.graph.resolve())
    else:
        write_unet_graph(model_dir)
    runtimes = args.runtimes.split(",")
    model = {"path": str(model_dir), "export_dir": str(work / "exports"), "precision": args.precision,
             "providers": args.providers.split(","), "device": args.device}
    for runtime in runtimes:
        if runtime in FORMAT:
            made = export_model(ModelConfig(**model), model_dir / "tf_graph.pb", to=FORMAT[runtime],
                                precision=args.precision)
            print(f"exported for {runtime}: largest matte difference from TensorFlow at "
                  f"{len(made.manifest['comparison'])} sizes: {made.manifest['max_matte_difference']}", flush=True)

    counts = {"1080p": args.photos_1080p, "24MP": args.photos_24mp}
    for name, size in SIZES.items():
        for count in (1, counts[name]):
            write_photos(work / "photos" / f"{name}-{count}", size, count)

    rows = {}
    for runtime in runtimes:
        config = work / f"{runtime}.yaml"
        # The stand-in's matte is smooth everywhere: the quality gate would quarantine every photo.
        config.write_text(yaml.safe_dump({"model": {**model, "runtime": runtime},
                                          "gate": {"enabled": args.graph is not None}}))
        for name in SIZES:
            count = counts[name]
            one = run_process(work / "photos" / f"{name}-1", work / "out" / runtime / f"{name}-1", config)
            many = run_process(work / "photos" / f"{name}-{count}", work / "out" / runtime / f"{name}-{count}", config)
            per = [(b - a) / (count - 1) for a, b in zip(one[:2], many[:2], strict=True)]
            rows[runtime, name] = (per[0], per[1], max(one[2], many[2]))
            print(f"{runtime:>12} {name:>6}: {per[0]:6.2f} CPU-s/photo {per[1]:6.2f} wall-s/photo "
                  f"peak RSS {rows[runtime, name][2]:7.0f} MiB", flush=True)

    print(f"\n{'runtime':>12} {'size':>6} {'CPU-s':>7} {'wall-s':>7} {'RSS MiB':>8} {'CPU×TF':>7} {'RSS×TF':>7} "
          f"{'max diff':>8} {'≤1 lvl %':>9}")
    for (runtime, name), (cpu, wall, rss) in rows.items():
        base = rows.get(("tensorflow", name))
        ratios = f"{cpu / base[0]:7.2f} {rss / base[2]:7.2f}" if base else f"{'':>7} {'':>7}"
        diff = ""
        if runtime != "tensorflow" and "tensorflow" in runtimes:
            count = counts[name]
            want = alphas(work / "out" / "tensorflow" / f"{name}-{count}")
            got = alphas(work / "out" / runtime / f"{name}-{count}")
            differences = [np.abs(want[k].astype(np.int16) - got[k].astype(np.int16)) for k in want]
            worst = max(int(d.max()) for d in differences)
            within = 100 * np.mean([float((d <= 1).mean()) for d in differences])
            diff = f"{worst:>8} {within:9.3f}"
        print(f"{runtime:>12} {name:>6} {cpu:7.2f} {wall:7.2f} {rss:8.0f} {ratios} {diff}")
    print(f"\nload average: {' '.join(f'{value:.2f}' for value in os.getloadavg())} on {os.cpu_count()} CPUs; "
          f"work folder {work}")


if __name__ == "__main__":
    main()
