"""Throughput of the overlapped pipeline against the inference stage alone and a naive loop.

    .venv/bin/python bench/bench_pipeline.py [--images 600] [--size 640x480] [--batch 4] [--mode both]

On the stand-in graph (a test fixture, not BSHM), with the inference cost per image chosen to
be about what decoding plus encoding and writing it cost (measured first). Prints, per mode,
images/s of:

- bare:     the inference stage alone: engine.infer over preloaded, prepared arrays, in
            batches of --batch: the ceiling (the device never waits);
- naive:    one file at a time: read → predict → write;
- pipeline: bshmd's Pipeline (what ``bshmd process`` runs), same engine and batch size;

and the ratios pipeline/bare (aim ≥ 0.9) and pipeline/naive (aim ≥ 1.5), plus how busy the
pipeline kept the inference stage and the CPU it used per image against the naive loop.

The ratios are about a backlog, where a daemon spends its busy hours. Filling the pipeline
before the first batch and draining the last batches' writes after the last inference take
about 0.1 s whatever the count, so the default of 600 images keeps that near 2 % of the run
(with 200 it was 5-6 %).

Two ways to stand in for the accelerator, ``--mode device``, ``--mode cpu`` or both (default):

- ``device`` (bshmd.testing.device): inference as on a GPU host. The stand-in network runs
  for real on a quarter-size copy of each photo (as bshmd runs every photo larger than
  ``model.max_side``: a 24 MP photo goes in at 2000 px), then the device's share of the cost
  is a wait that holds no GIL and uses no CPU. So the CPU does what a GPU host's CPU does
  (decode, downscale, feed, fetch, guided upsample, encode, write) and the ratios say whether
  the pipeline keeps the device busy: what they are meant to measure.
- ``cpu``: the stand-in's whole cost is CPU work on one TensorFlow thread
  (``--intra-op-threads 1 --inter-op-threads 1``), the other cores left to decoding and
  encoding; ``--extra-convs`` makes it costlier. On a 2-core host its inference competes
  with those stages for the same cores, caches and memory bandwidth: measured here, two
  CPU-bound threads slow each other by 7-15 % before any pipeline is involved, and where
  encoding is cheap (``outputs.edges: none``: 7 ms at 640×480) the cheapest stand-in costs
  1.6× decode+encode, so pipeline/bare measures the host as much as the pipeline. Kept to
  compare with figures taken before the device mode existed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


def per_image(fn, repeats: int) -> tuple[float, float]:  # noqa: ANN001
    """(wall seconds, CPU seconds of the whole process) per call of ``fn``."""
    fn()  # warm
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - wall) / repeats, (time.process_time() - cpu) / repeats


class HostLoad:
    """CPU the rest of the host used while a figure was taken (on a shared host, a busy
    neighbour explains a bad figure): host busy time from /proc/stat less this process's."""

    def __enter__(self) -> HostLoad:
        self._host, self._own, self._wall = _host_cpu(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        wall = time.perf_counter() - self._wall
        others = (_host_cpu() - self._host) - (time.process_time() - self._own)
        self.others = max(others, 0.0) / wall if wall > 0 else 0.0


def _host_cpu() -> float:
    """CPU-seconds the whole host has been busy (0 where /proc/stat is missing)."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return 0.0
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--mode", choices=("device", "cpu", "both"), default="both")
    parser.add_argument("--decode-workers", default="2", help="a number, or auto")
    parser.add_argument("--write-workers", default="2", help="a number, or auto")
    parser.add_argument("--intra-op-threads", type=int, default=1, help="TF threads per op (0: TF's choice)")
    parser.add_argument("--inter-op-threads", type=int, default=1, help="TF ops run at once (0: TF's choice)")
    parser.add_argument("--extra-convs", type=int, default=None,
                        help="cpu mode: fix the stand-in's cost instead of tuning it")
    parser.add_argument("--device-ms", type=float, default=None,
                        help="device mode: fix the device time per image instead of tuning it")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    workers = {"decode_workers": args.decode_workers, "write_workers": args.write_workers}
    workers = {key: value if value == "auto" else int(value) for key, value in workers.items()}

    from PIL import Image

    from bshmd.config import parse_config
    from bshmd.decode.image import decode_image
    from bshmd.engine import MattingEngine
    from bshmd.ledger.keys import FileKey
    from bshmd.outputs.render import output_paths, render_outputs, write_outputs
    from bshmd.pipeline.job import Job
    from bshmd.pipeline.pipeline import Pipeline
    from bshmd.testing.device import DeviceTimeEngine
    from bshmd.testing.images import synthetic_portrait
    from bshmd.testing.standin import write_standin_graph

    work = Path(tempfile.mkdtemp(prefix="bshmd-bench-"))
    try:
        src = work / "in"
        src.mkdir()
        paths = []
        for i in range(args.images):
            path = src / f"{i:04}.jpg"
            Image.fromarray(synthetic_portrait(width, height, i, noise=6.0)).save(path, quality=92)
            paths.append(path)

        def config_for(out: Path):  # noqa: ANN202
            out.mkdir(parents=True, exist_ok=True)
            return parse_config({
                "folders": [{"input": str(src), "output": str(out), "quarantine": str(work / f"{out.name}.q")}],
                "gate": {"enabled": False},
                "batch": {"max_size": args.batch, "max_wait_ms": 50},
                "pipeline": {**workers, "queue_size": 4 * args.batch},
            }, base_dir=work)

        probe_cfg = config_for(work / "probe")
        outputs_cfg = probe_cfg.outputs_for(probe_cfg.folders[0])
        limits = {"max_pixels": 10**9, "max_file_bytes": 10**10}
        rgb = decode_image(paths[0], **limits)
        engine_args = {"intra_op_threads": args.intra_op_threads, "inter_op_threads": args.inter_op_threads}

        def infer_cost(engine) -> tuple[float, float]:  # noqa: ANN001
            prepared = engine.prepare(rgb)
            wall, cpu = per_image(lambda: engine.infer([prepared] * args.batch), 5)
            return wall / args.batch, cpu / args.batch

        # Extra convolutions add cost without changing the matte, so the cheapest stand-in
        # gives the matte whose encoding is measured.
        base_graph = write_standin_graph(work / "model-0")
        with MattingEngine(base_graph, **engine_args) as base_engine:
            alpha = base_engine.predict([rgb])[0]
        decode_wall, decode_cpu = per_image(lambda: decode_image(paths[0], **limits), 20)
        probe_paths = output_paths(work / "probe", Path("x.jpg"), outputs_cfg)
        encode_wall, encode_cpu = per_image(
            lambda: write_outputs(probe_paths, render_outputs(rgb, alpha, outputs_cfg),
                                  output_root=work / "probe", file_mode=0o644, group=None), 20)
        target = decode_wall + encode_wall
        pipeline_cfg = config_for(work / "cfg")
        print(f"{args.images} images {width}x{height} JPEG, batch {args.batch}, decode workers "
              f"{pipeline_cfg.pipeline.decode_worker_count}, write workers {pipeline_cfg.pipeline.write_worker_count}, "
              f"cores {len(os.sched_getaffinity(0))}, TF intra/inter op threads "
              f"{args.intra_op_threads}/{args.inter_op_threads}")
        print(f"decode {decode_wall * 1000:.1f} ms/image ({decode_cpu * 1000:.1f} CPU-ms), encode+write "
              f"{encode_wall * 1000:.1f} ms/image ({encode_cpu * 1000:.1f} CPU-ms); "
              f"target inference cost {target * 1000:.1f} ms/image")

        def cpu_engine():  # noqa: ANN202
            def engine_with(convs: int):  # noqa: ANN202
                engine = MattingEngine(write_standin_graph(work / f"model-{convs}", extra_convs=convs), **engine_args)
                return engine, infer_cost(engine)[0]

            if args.extra_convs is not None:
                engine, cost = engine_with(args.extra_convs)
                return engine, f"extra_convs={args.extra_convs} ({cost * 1000:.1f} ms/image, all CPU)"
            # The cost grows linearly with the extra convolutions: measure two points, aim at the target.
            base_engine, base = engine_with(0)
            base_engine.close()
            probe_engine, probe = engine_with(16)
            probe_engine.close()
            per_conv = max((probe - base) / 16, 1e-4)
            convs = max(0, round((target - base) / per_conv))
            engine, cost = engine_with(convs)
            return engine, (f"extra_convs={convs} ({cost * 1000:.1f} ms/image, all CPU; "
                            f"{base * 1000:.1f} ms + {per_conv * 1000:.2f} ms per extra conv)")

        def device_engine():  # noqa: ANN202
            quarter = max(width, height) // 4
            engine = DeviceTimeEngine(base_graph, seconds_per_image=0.0, max_side=quarter, **engine_args)
            own_wall, own_cpu = infer_cost(engine)
            device = args.device_ms / 1000 if args.device_ms is not None else max(target - own_wall, 0.0)
            engine.seconds_per_image = device
            return engine, (f"network at {quarter} px: {own_wall * 1000:.1f} ms/image ({own_cpu * 1000:.1f} CPU-ms)"
                            f" + device {device * 1000:.1f} ms/image (no CPU)")

        modes = ["device", "cpu"] if args.mode == "both" else [args.mode]
        summary = []
        for mode in modes:
            engine, described = (device_engine if mode == "device" else cpu_engine)()
            print(f"\n[{mode}] inference: {described}")

            # (a) bare: the inference stage alone, on preloaded prepared arrays.
            prepared = [engine.prepare(decode_image(path, **limits)) for path in paths]
            with HostLoad() as bare_load:
                started = time.perf_counter()
                for i in range(0, len(prepared), args.batch):
                    engine.infer(prepared[i:i + args.batch])
                bare = len(prepared) / (time.perf_counter() - started)
            del prepared

            # (b) naive: read → infer → write, one file at a time.
            naive_out = work / f"naive-{mode}"
            naive_out.mkdir()
            with HostLoad() as naive_load:
                naive_cpu = time.process_time()
                started = time.perf_counter()
                for path in paths:
                    image = decode_image(path, **limits)
                    matte = engine.predict([image])[0]
                    write_outputs(output_paths(naive_out, Path(path.name), outputs_cfg),
                                  render_outputs(image, matte, outputs_cfg),
                                  output_root=naive_out, file_mode=0o644, group=None)
                naive = len(paths) / (time.perf_counter() - started)
                naive_cpu = time.process_time() - naive_cpu

            # (c) the pipeline.
            config = config_for(work / f"pipeline-{mode}")
            folder = config.folders[0]
            pipeline = Pipeline(config, engine, instance_id="bench")
            pipeline.start()
            with HostLoad() as piped_load:
                cpu_before = time.process_time()
                started = time.perf_counter()
                for path in paths:
                    pipeline.submit(Job(folder=folder, path=path, key=FileKey.of(src, path)))
                pipeline.wait_idle(None)
                wall = time.perf_counter() - started
                cpu = time.process_time() - cpu_before
            piped = len(paths) / wall
            health = pipeline.health()
            busy = _histogram_sum(pipeline.metrics.inference_seconds) / wall
            pipeline.stop(30)
            engine.close()

            print(f"bare inference stage: {bare:7.2f} images/s  (other processes: {bare_load.others:.2f} cores)")
            print(f"naive one-by-one    : {naive:7.2f} images/s  (other processes: {naive_load.others:.2f} cores)")
            print(f"pipeline            : {piped:7.2f} images/s  (other processes: {piped_load.others:.2f} cores)")
            print(f"  processed {health.processed}, quarantined {health.quarantined}; inference busy {busy:.0%} "
                  f"of the time; process CPU {cpu / len(paths) * 1000:.1f} ms/image (naive: "
                  f"{naive_cpu / len(paths) * 1000:.1f})")
            print(f"pipeline / bare  = {piped / bare:.2f}   (aim ≥ 0.9)")
            print(f"pipeline / naive = {piped / naive:.2f}   (aim ≥ 1.5)")
            summary.append((mode, bare, naive, piped))

        if len(summary) > 1:
            print("\nmode     bare   naive  pipeline  pipeline/bare (≥ 0.9)  pipeline/naive (≥ 1.5)")
            for mode, bare, naive, piped in summary:
                print(f"{mode:6s} {bare:6.1f} {naive:7.1f} {piped:9.1f} {piped / bare:14.2f} {piped / naive:23.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _histogram_sum(histogram) -> float:  # noqa: ANN001
    """The running total of a prometheus_client Histogram (its ``_sum`` sample)."""
    for metric in histogram.collect():
        for sample in metric.samples:
            if sample.name.endswith("_sum"):
                return sample.value
    return 0.0


if __name__ == "__main__":
    main()
