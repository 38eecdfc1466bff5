"""Mutated image files (bit flips, truncations, insertions, corrupted header fields) through
``decode_image`` and through a running Pipeline with the real engine on the stand-in graph.

Every case ends as a decoded image or a quarantine with a documented reason code: no other
exception, no ``internal_error`` (an exception the pipeline had to catch), no dead stage thread.
"""

from __future__ import annotations

import io
import itertools
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from bshmd.config import parse_config
from bshmd.decode.image import decode_image
from bshmd.errors import InputRejected
from bshmd.ledger.keys import FileKey
from bshmd.ledger.outcome import Outcome
from bshmd.pipeline.job import Job
from bshmd.pipeline.pipeline import Pipeline
from tests.support.testdata import PHOTOS
from tests.survival.harness import image_bytes

# Pillow warns (UserWarning, e.g. "Corrupt EXIF data") and carries on when a file's metadata is
# damaged. The daemon does not turn warnings into errors, so neither may these tests: otherwise
# pytest's filterwarnings=error would turn a decodable file into an exception in the decoder.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")

settings.register_profile(
    "bshmd-survival-fuzz", derandomize=True, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile("bshmd-survival-fuzz")

# README "Quarantine" reason codes, plus the stage timeout a very slow decode could hit.
REASONS = {"empty", "file_too_large", "unreadable", "not_an_image", "too_many_pixels", "truncated", "corrupt",
           "unsupported", "too_small", "no_subject", "subject_too_large", "uncertain_matte", "decode_timeout"}
LIMITS = {"max_pixels": 4_000_000, "max_file_bytes": 8 * 1024 * 1024}


def _generated() -> dict[str, bytes]:
    rng = random.Random(5)
    seeds = {"gen.png": image_bytes(rng, fmt="PNG"), "gen.jpg": image_bytes(rng, fmt="JPEG")}
    with Image.open(io.BytesIO(seeds["gen.png"])) as image:
        for fmt, ext in (("BMP", "bmp"), ("TIFF", "tif"), ("WEBP", "webp"), ("GIF", "gif")):
            buffer = io.BytesIO()
            image.save(buffer, fmt)
            seeds[f"gen.{ext}"] = buffer.getvalue()
    return seeds


def _seed_files() -> dict[str, bytes]:
    seeds = _generated()
    for name in ("no-person-rocket.jpg", "portrait-hopper.png"):
        seeds[name] = (PHOTOS / name).read_bytes()
    return seeds


SEEDS = _seed_files()


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    """A seed file with one to four mutations."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "header", "zero_run"]))
        if not data:
            break
        if kind == "flip":
            at = draw(st.integers(0, len(data) - 1))
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[draw(st.integers(0, len(data) - 1)):]
        elif kind == "insert":
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "header":
            # Header fields (dimensions, depth, chunk lengths) live in the first bytes.
            at = draw(st.integers(0, min(len(data), 64) - 1))
            data[at:at + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\x00\x01"]))
        else:
            at = draw(st.integers(0, len(data) - 1))
            data[at:at + draw(st.integers(1, 512))] = b"\0" * 16
    return name, bytes(data)


@settings(FUZZ, max_examples=400)
@given(case=mutated())
def test_decode_never_fails_unexpectedly(tmp_path_factory: pytest.TempPathFactory, case: tuple[str, bytes]) -> None:
    name, data = case
    path = tmp_path_factory.mktemp("fuzz") / name
    path.write_bytes(data)
    try:
        rgb = decode_image(path, **LIMITS)
    except InputRejected as exc:
        assert exc.reason_code in REASONS, exc.reason_code
        return
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and str(rgb.dtype) == "uint8"


class _Outcomes:
    def __init__(self) -> None:
        self.done: dict[str, str] = {}  # by relpath: ids of finished jobs get reused
        self.cond = threading.Condition()

    def __call__(self, job: Job, outcome: Outcome) -> None:
        with self.cond:
            self.done[job.key.relpath] = str(outcome)
            self.cond.notify_all()

    def wait(self, job: Job, timeout: float) -> str | None:
        with self.cond:
            self.cond.wait_for(lambda: job.key.relpath in self.done, timeout)
            return self.done.get(job.key.relpath)


@pytest.fixture(scope="module")
def running_pipeline(tmp_path_factory: pytest.TempPathFactory, standin_model: Path) -> Iterator[Any]:
    from bshmd.engine import MattingEngine

    root = tmp_path_factory.mktemp("fuzz-pipeline")
    hot = {name: root / name for name in ("in", "out", "q")}
    for path in hot.values():
        path.mkdir()
    config = parse_config({"folders": [{"input": str(hot["in"]), "output": str(hot["out"]),
                                        "quarantine": str(hot["q"])}],
                           "limits": LIMITS, "batch": {"max_size": 4, "max_wait_ms": 20},
                           # complete files, handed over directly: a cut-off one is refused at once
                           "truncated_grace_seconds": 0}, base_dir=root)
    engine = MattingEngine(standin_model / "tf_graph.pb")
    outcomes = _Outcomes()
    pipeline = Pipeline(config, engine, instance_id="fuzz", on_done=outcomes)
    pipeline.start()
    yield config, pipeline, outcomes, itertools.count()
    assert pipeline.stop(30)
    engine.close()


STAGES = ("bshmd-decode-0", "bshmd-decode-1", "bshmd-infer", "bshmd-write-0", "bshmd-write-1")


@settings(FUZZ, max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                  HealthCheck.function_scoped_fixture])
@given(case=mutated())
def test_pipeline_processes_or_quarantines_every_mutation(running_pipeline: Any, case: tuple[str, bytes]) -> None:
    config, pipeline, outcomes, numbers = running_pipeline
    folder = config.folders[0]
    name, data = case
    relpath = f"case-{next(numbers):04d}-{name}"
    path = folder.input / relpath
    path.write_bytes(data)
    stat = path.stat()
    job = Job(folder=folder, path=path, key=FileKey(relpath, stat.st_size, stat.st_mtime_ns))
    assert pipeline.submit(job, timeout=30)
    outcome = outcomes.wait(job, 60)
    assert outcome is not None, f"{relpath} was never finished"
    alive = {t.name for t in threading.enumerate() if t.is_alive()}
    assert set(STAGES) <= alive, f"a stage thread died: {set(STAGES) - alive}"
    if outcome == "processed":
        assert (folder.output / (relpath + ".cutout.png")).exists()
        assert not path.exists() or path.stat().st_size == len(data)  # on_success: keep
    else:
        kind, _, reason = outcome.partition(":")
        assert kind == "quarantined" and reason in REASONS, outcome
        assert (folder.quarantine / (relpath + ".reason.json")).exists()
        assert not path.exists()
