"""The pipeline end to end: real image files, the real engine on the stand-in graph, real threads."""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bshmd.config import Config
from bshmd.decode.image import decode_image
from bshmd.engine import MattingEngine
from bshmd.ledger.keys import FileKey
from bshmd.ledger.outcome import Outcome
from bshmd.metrics import Metrics
from bshmd.outputs.edges import estimate_foreground
from bshmd.pipeline.job import Job
from bshmd.pipeline.pipeline import Pipeline
from bshmd.testing.images import synthetic_portrait
from bshmd.testing.standin import write_standin_graph
from tests.support import config as support_config
from tests.support.waiting import wait_until


class RecordingClaim:
    """The Claim protocol, recording what the pipeline did with it."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.lock = threading.Lock()

    taken_from = None

    def complete(self, outcome: Outcome) -> None:
        with self.lock:
            self.calls.append(f"complete:{outcome.kind}")

    def release(self, outcome: Outcome | None = None) -> None:
        with self.lock:
            self.calls.append("release")

    def verify(self) -> None:
        with self.lock:
            self.calls.append("verify")

    def fence(self) -> None:
        pass  # never stalls


def save(path: Path, rgb: np.ndarray, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, fmt, quality=95) if (fmt or path.suffix[1:].upper()) in ("JPEG", "JPG") \
        else Image.fromarray(rgb).save(path, fmt)
    return path


make_config = partial(support_config.make_config, defaults={
    "truncated_grace_seconds": 0,  # these inputs are complete: quarantine cut-off files at once
    "batch": {"max_size": 4, "max_wait_ms": 50},
    "pipeline": {"decode_workers": 2, "write_workers": 2, "queue_size": 8,
                 "decode_timeout_seconds": 30, "write_timeout_seconds": 30},
})


def folder_pair(tmp: Path, name: str, **extra: Any) -> dict[str, Any]:
    for sub in ("in", "out", "quarantine"):
        (tmp / name / sub).mkdir(parents=True, exist_ok=True)
    return {"input": f"{name}/in", "output": f"{name}/out", "quarantine": f"{name}/quarantine", **extra}


def job_for(config: Config, path: Path, index: int = 0, claim: Any = None) -> Job:
    folder = config.folders[index]
    return Job(folder=folder, path=path, key=FileKey.of(folder.input, path), claim=claim)


class Results:
    def __init__(self) -> None:
        self.outcomes: dict[Path, str] = {}  # how each ended, as its log line says it
        self.lock = threading.Lock()

    def __call__(self, job: Job, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes[job.path] = str(outcome)


@pytest.fixture
def run_pipeline(engine: Any) -> Iterator[Callable[..., Pipeline]]:
    started: list[Pipeline] = []

    def start(config: Config, **kwargs: Any) -> Pipeline:
        pipeline = Pipeline(config, engine, instance_id="test-1", **kwargs)
        pipeline.start()
        started.append(pipeline)
        return pipeline

    yield start
    for pipeline in started:
        assert pipeline.stop(timeout=30)


# --- results -------------------------------------------------------------------------------


def test_results_match_the_engine_exactly_in_every_format(tmp_path: Path, run_pipeline, engine,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    config = make_config(tmp_path, [folder_pair(tmp_path, "a")], outputs={
        "formats": ["cutout", "alpha", "composite", "webp"], "composite_format": "png",
        "background": "#2050a0", "webp_quality": 100, "edges": "decontaminate"})
    folder = config.folders[0]
    sources = [save(folder.input / "one.jpg", synthetic_portrait(320, 240, 1)),
               save(folder.input / "sub" / "two.png", synthetic_portrait(200, 300, 2))]
    results = Results()
    caplog.set_level(logging.INFO, logger="bshmd.pipeline")
    pipeline = run_pipeline(config, on_done=results)
    claims = [RecordingClaim() for _ in sources]
    jobs = [job_for(config, path, claim=claim) for path, claim in zip(sources, claims, strict=True)]
    for job in jobs:
        assert pipeline.submit(job, timeout=10)
    assert pipeline.wait_idle(60)

    assert results.outcomes == {path: "processed" for path in sources}
    assert [claim.calls for claim in claims] == [["verify", "complete:processed"]] * 2  # checked, then written, then done
    for source, job in zip(sources, jobs, strict=True):
        rgb = decode_image(source, max_pixels=10**8, max_file_bytes=10**9)
        matte = engine.predict([rgb])[0]
        foreground = estimate_foreground(rgb, matte)  # outputs.edges: decontaminate, as configured
        rel = source.relative_to(folder.input)
        out = folder.output / rel.parent
        cutout = np.asarray(Image.open(out / f"{rel.name}.cutout.png"))
        assert cutout.shape == (*rgb.shape[:2], 4)
        np.testing.assert_array_equal(cutout[:, :, 3], matte)
        visible = matte > 0  # colour under fully transparent pixels is cleared to black
        np.testing.assert_array_equal(cutout[:, :, :3][visible], foreground[visible])
        assert not cutout[:, :, :3][~visible].any()
        alpha = np.asarray(Image.open(out / f"{rel.name}.alpha.png"))
        np.testing.assert_array_equal(alpha, matte)
        webp = np.asarray(Image.open(out / f"{rel.name}.cutout.webp").convert("RGBA"))
        np.testing.assert_array_equal(webp[:, :, 3], matte)
        composite = np.asarray(Image.open(out / f"{rel.name}.composite.png")).astype(np.int16)
        a = matte.astype(np.float64)[:, :, None] / 255
        expected = foreground * a + np.array([0x20, 0x50, 0xA0]) * (1 - a)
        assert composite.shape == rgb.shape
        assert np.abs(composite - expected).max() <= 1
        assert source.exists()  # on_success: keep
        assert set(job.timings) >= {"wait", "decode", "infer", "write"}

    lines = [r for r in caplog.records if r.name == "bshmd.pipeline" and r.getMessage().startswith("processed")]
    assert len(lines) == 2
    for record in lines:
        assert record.levelno == logging.INFO
        assert record.bshmd_outcome == "processed"
        assert "wait=" in record.getMessage() and "infer=" in record.getMessage()
        assert record.bshmd_file in {str(path) for path in sources}
    health = pipeline.health()
    assert (health.processed, health.quarantined, health.queued) == (2, 0, 0)
    assert pipeline.metrics.files_processed.labels(str(folder.input))._value.get() == 2


def test_each_folder_gets_its_own_output_profile(tmp_path: Path, run_pipeline) -> None:
    config = make_config(tmp_path, [
        folder_pair(tmp_path, "shop", outputs={"formats": ["composite"], "composite_format": "jpeg",
                                               "background": "#ffffff"}),
        folder_pair(tmp_path, "web", outputs={"formats": ["cutout"]}),
    ])
    shop, web = config.folders
    a = save(shop.input / "a.jpg", synthetic_portrait(300, 200, 3))
    b = save(web.input / "b.jpg", synthetic_portrait(300, 200, 4))
    pipeline = run_pipeline(config)
    assert pipeline.submit(job_for(config, a, 0))
    assert pipeline.submit(job_for(config, b, 1))
    assert pipeline.wait_idle(60)
    assert sorted(p.name for p in shop.output.iterdir()) == ["a.jpg.composite.jpg"]
    assert sorted(p.name for p in web.output.iterdir()) == ["b.jpg.cutout.png"]
    with Image.open(shop.output / "a.jpg.composite.jpg") as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (300, 200))
        assert min(image.getpixel((2, 2))) >= 245  # backdrop → white
    with Image.open(web.output / "b.jpg.cutout.png") as image:
        assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (300, 200))
        assert image.getpixel((2, 2))[3] == 0  # backdrop → transparent


def test_on_success_keep_move_delete(tmp_path: Path, run_pipeline) -> None:
    config = make_config(tmp_path, [
        folder_pair(tmp_path, "keep", on_success="keep"),
        folder_pair(tmp_path, "move", on_success="move"),
        folder_pair(tmp_path, "delete", on_success="delete"),
    ])
    paths = [save(folder.input / "deep" / "x.jpg", synthetic_portrait(160, 160, i))
             for i, folder in enumerate(config.folders)]
    pipeline = run_pipeline(config)
    for index, path in enumerate(paths):
        assert pipeline.submit(job_for(config, path, index))
    assert pipeline.wait_idle(60)
    keep, move, delete = config.folders
    assert paths[0].exists()
    assert not paths[1].exists()
    assert (move.done_dir / "deep" / "x.jpg").is_file()
    assert not paths[2].exists()
    for folder in config.folders:
        assert (folder.output / "deep" / "x.jpg.cutout.png").is_file()


# --- where the engine's steps run ------------------------------------------------------------


class StepRecordingEngine(MattingEngine):
    """The engine on the stand-in graph, noting which thread ran each step and what infer got."""

    def __init__(self, graph: Path, **kwargs: Any) -> None:
        super().__init__(graph, **kwargs)
        self.threads: dict[str, set[str]] = {"prepare": set(), "infer": set(), "finish": set()}
        self.infer_shapes: list[tuple[int, ...]] = []
        self.lock = threading.Lock()

    def _note(self, step: str) -> None:
        with self.lock:
            self.threads[step].add(threading.current_thread().name)

    def prepare(self, image: np.ndarray) -> Any:
        self._note("prepare")
        return super().prepare(image)

    def infer(self, prepared: Any) -> list[Any]:
        self._note("infer")
        with self.lock:
            self.infer_shapes.extend(item.net.shape for item in prepared)
        return super().infer(prepared)

    def finish(self, alpha: np.ndarray, prepared: Any) -> np.ndarray:
        self._note("finish")
        return super().finish(alpha, prepared)


@pytest.fixture(scope="module")
def downscaling_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StepRecordingEngine]:
    """Every photo in these tests is larger than max_side: it runs downscaled, as a 24 MP one does."""
    graph = write_standin_graph(tmp_path_factory.mktemp("standin-64") / "tf_graph.pb")
    engine = StepRecordingEngine(graph, max_side=64)
    yield engine
    engine.close()


def test_the_inference_thread_runs_only_the_network(tmp_path: Path, downscaling_engine) -> None:
    engine = downscaling_engine
    config = make_config(tmp_path, [folder_pair(tmp_path, "a")], gate={"enabled": False},
                         outputs={"formats": ["cutout"]})
    folder = config.folders[0]
    sources = [save(folder.input / f"{i}.png", synthetic_portrait(160, 120, i)) for i in range(5)]
    results = Results()
    pipeline = Pipeline(config, engine, instance_id="test-1", on_done=results)
    pipeline.start()
    try:
        for path in sources:
            assert pipeline.submit(job_for(config, path))
        assert pipeline.wait_idle(60)
    finally:
        assert pipeline.stop(30)
    assert results.outcomes == {path: "processed" for path in sources}
    # Downscaling on decode workers, upsampling on write workers: the device never waits for them.
    assert engine.threads["infer"] == {"bshmd-infer"}
    assert engine.threads["prepare"] and all(name.startswith("bshmd-decode-") for name in engine.threads["prepare"])
    assert engine.threads["finish"] and all(name.startswith("bshmd-write-") for name in engine.threads["finish"])
    assert engine.infer_shapes == [(48, 64, 3)] * 5  # the network got the downscaled copies
    for path in sources:
        rgb = decode_image(path, max_pixels=10**8, max_file_bytes=10**9)
        with Image.open(folder.output / f"{path.name}.cutout.png") as cutout:
            alpha = np.asarray(cutout)[:, :, 3]
        np.testing.assert_array_equal(alpha, engine.predict([rgb])[0])  # full size, as predict gives it


def test_a_matte_the_gate_refuses_is_quarantined_at_the_photo_size(tmp_path: Path, downscaling_engine) -> None:
    engine = downscaling_engine
    config = make_config(tmp_path, [folder_pair(tmp_path, "a")], gate={"max_uncertain": 1.0, "max_foreground": 0.05})
    folder = config.folders[0]
    source = save(folder.input / "big.png", synthetic_portrait(160, 120, 7))
    rgb = decode_image(source, max_pixels=10**8, max_file_bytes=10**9)
    results = Results()
    pipeline = Pipeline(config, engine, instance_id="test-1", on_done=results)
    pipeline.start()
    try:
        assert pipeline.submit(job_for(config, source))
        assert pipeline.wait_idle(60)
    finally:
        assert pipeline.stop(30)
    assert results.outcomes == {source: "quarantined:subject_too_large"}
    with Image.open(folder.quarantine / "big.png.matte.png") as kept:
        np.testing.assert_array_equal(np.asarray(kept), engine.predict([rgb])[0])  # what "accept" would write


# --- bad input, stalls, failures ----------------------------------------------------------------


def test_rejected_inputs_are_quarantined_with_their_reason(tmp_path: Path, run_pipeline) -> None:
    config = make_config(tmp_path, [folder_pair(tmp_path, "a")])
    folder = config.folders[0]
    good = save(folder.input / "good.jpg", synthetic_portrait(200, 200, 5))
    broken = folder.input / "broken.jpg"
    broken.write_bytes(good.read_bytes()[:600])  # a half-copied JPEG
    tiny = save(folder.input / "tiny.png", synthetic_portrait(20, 20, 6))
    empty = save(folder.input / "empty.png", np.full((200, 200, 3), 200, np.uint8))  # nobody in it
    results = Results()
    claims = {path: RecordingClaim() for path in (good, broken, tiny, empty)}
    pipeline = run_pipeline(config, on_done=results)
    for path, claim in claims.items():
        assert pipeline.submit(job_for(config, path, claim=claim))
    assert pipeline.wait_idle(60)
    assert results.outcomes[good] == "processed"
    assert results.outcomes[broken].startswith("quarantined:")
    assert results.outcomes[tiny] == "quarantined:too_small"
    assert results.outcomes[empty] == "quarantined:no_subject"
    for path in (broken, tiny, empty):
        assert not path.exists()
        assert claims[path].calls == ["complete:quarantined"]
        assert list(folder.quarantine.rglob(path.name)), f"{path.name} not in quarantine"
    assert not any(folder.output.glob("broken*")) and not any(folder.output.glob("empty*"))
    assert pipeline.health().quarantined == 3


def test_a_missing_output_folder_releases_the_input_instead_of_quarantining_it(tmp_path: Path,
                                                                              run_pipeline) -> None:
    pair = folder_pair(tmp_path, "a")
    pair["output"] = "unmounted-share/out"
    config = make_config(tmp_path, [pair])
    source = save(config.folders[0].input / "x.jpg", synthetic_portrait(128, 128, 9))
    claim = RecordingClaim()
    pipeline = run_pipeline(config)
    assert pipeline.submit(job_for(config, source, claim=claim))
    assert pipeline.wait_idle(60)
    assert claim.calls == ["verify", "release"]  # still ours, but the write failed
    assert source.exists()
    assert not (tmp_path / "unmounted-share").exists()
    health = pipeline.health()
    assert health.output_unavailable and not health.disk_full


def test_a_stalled_decode_is_quarantined_while_others_flow(tmp_path: Path, run_pipeline) -> None:
    config = make_config(tmp_path, [folder_pair(tmp_path, "a")],
                         pipeline={"decode_workers": 1, "decode_timeout_seconds": 1.0})
    folder = config.folders[0]
    unblock = threading.Event()

    def decoder(path: Path, **limits: Any) -> np.ndarray:
        # A share that stops answering: the read of this one file never returns on its own.
        if path.name.startswith("stall"):
            unblock.wait(60)
        return decode_image(path, **limits)

    stalled = save(folder.input / "stall.jpg", synthetic_portrait(120, 120, 7))
    others = [save(folder.input / f"ok{i}.jpg", synthetic_portrait(120, 120, i)) for i in range(3)]
    results = Results()
    pipeline = run_pipeline(config, on_done=results, decoder=decoder)
    try:
        for path in (stalled, *others):
            assert pipeline.submit(job_for(config, path))
        # Only one decode worker: the others can only pass if the stuck one was replaced.
        assert pipeline.wait_idle(60)
        assert results.outcomes == {stalled: "quarantined:decode_timeout",
                                    **{path: "processed" for path in others}}
        assert pipeline.metrics.stage_timeouts.labels("decode")._value.get() == 1
    finally:
        unblock.set()


def test_writes_failing_with_disk_full_keep_the_input_and_release_the_claim(tmp_path: Path, run_pipeline) -> None:
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up (needs root): {mounted.stderr.strip()}")
    try:
        pair = folder_pair(tmp_path, "a", gate={"enabled": False}, outputs={"png_compression": 0})
        pair["output"] = str(small / "out")
        (small / "out").mkdir()
        config = make_config(tmp_path, [pair])
        folder = config.folders[0]
        source = save(folder.input / "big.png", synthetic_portrait(600, 400, 8))  # 600×400×4 uncompressed > 256 KiB
        claim = RecordingClaim()
        results = Results()
        pipeline = run_pipeline(config, on_done=results)
        assert pipeline.submit(job_for(config, source, claim=claim))
        assert pipeline.wait_idle(60)
        assert claim.calls == ["verify", "release"]
        assert results.outcomes == {source: "released:disk_full"}
        assert source.exists()
        assert not any(folder.quarantine.rglob("*"))
        assert [p for p in (small / "out").rglob("*") if p.is_file()] == []  # no partial result
        assert pipeline.health().disk_full
        assert pipeline.metrics.disk_full._value.get() == 1
        assert pipeline.stop(timeout=30)
    finally:
        subprocess.run(["umount", str(small)], check=False)


# --- flow control ---------------------------------------------------------------------------


def test_a_slow_writer_holds_back_submit_and_bounds_memory(tmp_path: Path, run_pipeline) -> None:
    config = make_config(tmp_path, [folder_pair(tmp_path, "a")],
                         pipeline={"queue_size": 3}, batch={"max_size": 2, "max_wait_ms": 20})
    folder = config.folders[0]
    paths = [save(folder.input / f"{i:02}.png", synthetic_portrait(96, 96, i)) for i in range(12)]
    writer_may_go = threading.Event()
    high_water = []

    def slow_done(job: Job, outcome: Outcome) -> None:
        writer_may_go.wait(60)  # the write threads stay busy until the test lets them go

    pipeline = run_pipeline(config, on_done=slow_done)
    assert pipeline.capacity == 5
    submitted = 0
    try:
        while submitted < len(paths) and pipeline.submit(job_for(config, paths[submitted]), timeout=0.5):
            submitted += 1
            high_water.append(pipeline.health().queued)
        assert submitted == pipeline.capacity  # the sixth submit blocked and gave up
        assert max(high_water) <= pipeline.capacity
    except BaseException:
        writer_may_go.set()
        raise

    def feed() -> None:
        for path in paths[submitted:]:
            pipeline.submit(job_for(config, path), timeout=60)
            high_water.append(pipeline.health().queued)

    feeder = threading.Thread(target=feed, name="bshmd-test-feeder")
    feeder.start()
    writer_may_go.set()
    feeder.join(60)
    assert pipeline.wait_idle(60)
    assert max(high_water) <= pipeline.capacity
    assert pipeline.health().processed == len(paths)


class HeldEngine:
    """The engine, but its first inference waits for ``let_go``: a batch in flight at will."""

    def __init__(self, engine: Any, let_go: threading.Event) -> None:
        self._engine = engine
        self._let_go = let_go
        self.inferring = threading.Event()
        self.prepare, self.finish = engine.prepare, engine.finish

    def infer(self, images: list[Any]) -> list[Any]:
        if not self.inferring.is_set():
            self.inferring.set()
            self._let_go.wait(60)
        return self._engine.infer(images)


def test_stop_finishes_the_batch_in_flight_and_releases_the_rest(tmp_path: Path, engine) -> None:
    config = make_config(tmp_path, [folder_pair(tmp_path, "a")], pipeline={"decode_workers": 1},
                         batch={"max_size": 1})
    folder = config.folders[0]
    let_go = threading.Event()
    held = HeldEngine(engine, let_go)
    third_decoding = threading.Event()

    def decoder(path: Path, **limits: Any) -> np.ndarray:
        if path.name == "02.jpg":
            third_decoding.set()
            let_go.wait(60)
        return decode_image(path, **limits)

    paths = [save(folder.input / f"{i:02}.jpg", synthetic_portrait(128, 128, i)) for i in range(5)]
    claims = [RecordingClaim() for _ in paths]
    pipeline = Pipeline(config, held, instance_id="test-1", decoder=decoder)
    pipeline.start()
    for path, claim in zip(paths, claims, strict=True):
        assert pipeline.submit(job_for(config, path, claim=claim))
    # 00 is inferred (held), 01 decoded waits for inference, 02 is decoding, 03 and 04 queued.
    outcome: list[bool] = []
    stopper = threading.Thread(target=lambda: outcome.append(pipeline.stop(timeout=60)), name="bshmd-test-stop")
    try:
        assert held.inferring.wait(30) and third_decoding.wait(30)
        assert wait_until(lambda: pipeline.health().in_flight["batch"] == 1)
        stopper.start()
        assert wait_until(lambda: all(claim.calls for claim in claims[3:]))  # unstarted: released at once
        assert claims[3].calls == claims[4].calls == ["release"]
        assert not pipeline.submit(job_for(config, paths[0]))  # intake is closed
    finally:
        let_go.set()
        if not stopper.is_alive() and not outcome:
            pipeline.abort()
    stopper.join(60)
    assert outcome == [True]
    assert claims[0].calls == ["verify", "complete:processed"]  # the batch in flight finished
    # Decoded or decoding when the stop came: no batch starts after it, so they are released.
    assert claims[1].calls == claims[2].calls == ["release"]
    assert (folder.output / "00.jpg.cutout.png").is_file()
    assert all(path.exists() for path in paths)
    assert sorted(p.name for p in folder.output.iterdir() if not p.name.startswith(".")) == ["00.jpg.cutout.png"]


def test_new_configuration_applies_to_files_decoded_afterwards(tmp_path: Path, run_pipeline) -> None:
    config = make_config(tmp_path, [folder_pair(tmp_path, "a")])
    folder = config.folders[0]
    pipeline = run_pipeline(config, metrics=Metrics())
    first = save(folder.input / "first.jpg", synthetic_portrait(128, 128, 1))
    assert pipeline.submit(job_for(config, first))
    assert pipeline.wait_idle(60)
    reloaded = make_config(tmp_path, [folder_pair(tmp_path, "a", outputs={"formats": ["alpha"]})])
    pipeline.update_config(reloaded)
    second = save(folder.input / "second.jpg", synthetic_portrait(128, 128, 2))
    assert pipeline.submit(job_for(config, second))  # a job still carrying the old folder object
    assert pipeline.wait_idle(60)
    assert sorted(p.name for p in folder.output.iterdir()) == ["first.jpg.cutout.png", "second.jpg.alpha.png"]

