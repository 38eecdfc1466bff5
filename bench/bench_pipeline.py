"""Throughput of the overlapped pipeline against a bare inference loop and a naive loop.

    .venv/bin/python bench/bench_pipeline.py [--images 200] [--size 640x480] [--batch 4]

On the stand-in graph (a test fixture, not BSHM), with ``extra_convs`` chosen so one image's
inference costs about as much as decoding plus encoding it. Prints images/s of:

- bare:     engine.predict over preloaded arrays, in batches of --batch (the ceiling);
- naive:    one file at a time: read → infer → write;
- pipeline: bshmd's Pipeline (what ``bshmd process`` runs), same engine and batch size;

and the ratios pipeline/bare and pipeline/naive.

On a GPU host inference runs on its own device while the CPU decodes and encodes. On a
CPU-only machine both compete for the same cores, and the pipeline can only overlap them if
inference leaves cores free. By default the bench therefore gives TensorFlow one core
(``--intra-op-threads 1 --inter-op-threads 1``), standing in for the accelerator, and leaves
the others to decoding and encoding; ``--intra-op-threads 0 --inter-op-threads 0`` lets
TensorFlow take every core instead.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


def per_image(fn, repeats: int) -> float:  # noqa: ANN001
    fn()  # warm
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--decode-workers", type=int, default=2)
    parser.add_argument("--write-workers", type=int, default=2)
    parser.add_argument("--intra-op-threads", type=int, default=1, help="TF threads per op (0: TF's choice)")
    parser.add_argument("--inter-op-threads", type=int, default=1, help="TF ops run at once (0: TF's choice)")
    parser.add_argument("--extra-convs", type=int, default=None, help="fix the stand-in's cost instead of tuning it")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    from PIL import Image

    from bshmd.config import parse_config
    from bshmd.engine import MattingEngine
    from bshmd.pipeline.decode import decode_image
    from bshmd.pipeline.outputs import output_paths, render_outputs, write_outputs
    from bshmd.pipeline.pipeline import Pipeline
    from bshmd.records import FileKey, Job
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
            (out).mkdir(parents=True, exist_ok=True)
            return parse_config({
                "folders": [{"input": str(src), "output": str(out), "quarantine": str(work / f"{out.name}.q")}],
                "gate": {"enabled": False},
                "batch": {"max_size": args.batch, "max_wait_ms": 50},
                "pipeline": {"decode_workers": args.decode_workers, "write_workers": args.write_workers,
                             "queue_size": 4 * args.batch},
            }, base_dir=work)

        probe_cfg = config_for(work / "probe")
        outputs_cfg = probe_cfg.outputs_for(probe_cfg.folders[0])
        limits = {"max_pixels": 10**9, "max_file_bytes": 10**10}
        rgb = decode_image(paths[0], **limits)

        def engine_with(convs: int) -> tuple[MattingEngine, float]:
            graph = write_standin_graph(work / f"model-{convs}", extra_convs=convs)
            engine = MattingEngine(graph, intra_op_threads=args.intra_op_threads,
                                   inter_op_threads=args.inter_op_threads)
            cost = per_image(lambda: engine.predict([rgb] * args.batch), 5) / args.batch
            return engine, cost

        # Extra convolutions add cost without changing the matte, so the cheapest stand-in
        # gives the matte whose encoding is measured.
        base_engine, base = engine_with(0)
        alpha = base_engine.predict([rgb])[0]
        base_engine.close()
        decode_cost = per_image(lambda: decode_image(paths[0], **limits), 20)
        probe_paths = output_paths(work / "probe", Path("x.jpg"), outputs_cfg)
        encode_cost = per_image(lambda: write_outputs(probe_paths, render_outputs(rgb, alpha, outputs_cfg),
                                                      output_root=work / "probe", file_mode=0o644, group=None), 20)
        target = decode_cost + encode_cost
        print(f"{args.images} images {width}x{height} JPEG, batch {args.batch}, decode workers "
              f"{args.decode_workers}, write workers {args.write_workers}, cores {os.cpu_count()}, "
              f"TF intra/inter op threads {args.intra_op_threads}/{args.inter_op_threads}")
        print(f"decode {decode_cost * 1000:.1f} ms/image, encode+write {encode_cost * 1000:.1f} ms/image "
              f"(target inference cost {target * 1000:.1f} ms/image)")

        if args.extra_convs is not None:
            convs = args.extra_convs
            engine, cost = engine_with(convs)
        else:
            # The stand-in's cost grows linearly with its extra convolutions: measure a second
            # point and aim at the target.
            probe_engine, probe = engine_with(16)
            probe_engine.close()
            per_conv = max((probe - base) / 16, 1e-4)
            convs = max(0, round((target - base) / per_conv))
            engine, cost = engine_with(convs)
            print(f"  stand-in cost: {base * 1000:.1f} ms/image + {per_conv * 1000:.2f} ms per extra conv")
        print(f"using extra_convs={convs} ({cost * 1000:.1f} ms/image)")

        # (a) bare: inference alone on preloaded arrays.
        arrays = [decode_image(path, **limits) for path in paths]
        started = time.perf_counter()
        for i in range(0, len(arrays), args.batch):
            engine.predict(arrays[i:i + args.batch])
        bare = len(arrays) / (time.perf_counter() - started)
        del arrays

        # (b) naive: read → infer → write, one file at a time.
        naive_out = work / "naive"
        naive_out.mkdir()
        started = time.perf_counter()
        for path in paths:
            image = decode_image(path, **limits)
            matte = engine.predict([image])[0]
            write_outputs(output_paths(naive_out, Path(path.name), outputs_cfg), render_outputs(image, matte, outputs_cfg),
                          output_root=naive_out, file_mode=0o644, group=None)
        naive = len(paths) / (time.perf_counter() - started)

        # (c) the pipeline.
        config = config_for(work / "pipeline")
        folder = config.folders[0]
        pipeline = Pipeline(config, engine, instance_id="bench")
        pipeline.start()
        started = time.perf_counter()
        for path in paths:
            pipeline.submit(Job(folder=folder, path=path, key=FileKey.of(src, path)))
        pipeline.wait_idle(None)
        piped = len(paths) / (time.perf_counter() - started)
        health = pipeline.health()
        pipeline.stop(30)
        engine.close()

        print(f"bare inference loop : {bare:7.2f} images/s")
        print(f"naive one-by-one    : {naive:7.2f} images/s")
        print(f"pipeline            : {piped:7.2f} images/s  (processed {health.processed}, "
              f"quarantined {health.quarantined})")
        print(f"pipeline / bare  = {piped / bare:.2f}   (aim ≥ 0.9)")
        print(f"pipeline / naive = {piped / naive:.2f}   (aim ≥ 1.5)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
