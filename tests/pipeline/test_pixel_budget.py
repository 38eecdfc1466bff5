"""Decoded pixels in flight are bounded by pipeline.max_inflight_megapixels, not by file count."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bshmd.config import parse_config
from bshmd.cpus import usable_cpus
from bshmd.decode.image import decode_image
from bshmd.ledger.keys import FileKey
from bshmd.ledger.outcome import PROCESSED, Outcome
from bshmd.pipeline.budget import HeapTrim, PixelBudget, image_megapixels
from bshmd.pipeline.job import Job
from bshmd.pipeline.pipeline import Pipeline
from bshmd.testing.images import synthetic_portrait
from tests.support.waiting import wait_until


def acquire_in_thread(budget: PixelBudget, key: str, megapixels: float) -> tuple[threading.Thread, list[bool]]:
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(budget.acquire(key, megapixels, timeout=30)),
                              name="bshmd-test-acquire")
    thread.start()
    return thread, result


def test_a_holder_waits_until_its_pixels_fit() -> None:
    budget = PixelBudget(100)
    assert budget.acquire("a", 60)
    thread, result = acquire_in_thread(budget, "b", 60)
    assert not budget.acquire("c", 60, timeout=0.05)  # does not fit beside "a" either
    assert result == [] and budget.held == 60
    budget.release("a")
    thread.join(10)
    assert result == [True] and budget.held == 60


def test_an_image_larger_than_the_budget_goes_alone() -> None:
    budget = PixelBudget(30)
    assert budget.acquire("a", 10)
    thread, result = acquire_in_thread(budget, "big", 61)
    wait_until(lambda: thread.is_alive(), 5, "the big one waiting")
    budget.release("a")
    thread.join(10)
    assert result == [True] and budget.held == 61
    assert not budget.acquire("small", 1, timeout=0.05)  # nothing goes beside it
    budget.release("big")
    assert budget.acquire("small", 1, timeout=0)


def test_close_wakes_waiters_and_unknown_keys_release_nothing() -> None:
    budget = PixelBudget(10)
    assert budget.acquire("a", 10)
    thread, result = acquire_in_thread(budget, "b", 5)
    assert budget.release("never-held") == 0.0
    assert budget.held == 10
    budget.close()
    thread.join(10)
    assert result == [False]


def test_a_raised_limit_lets_waiters_on() -> None:
    budget = PixelBudget(10)
    assert budget.acquire("a", 8)
    thread, result = acquire_in_thread(budget, "b", 8)
    budget.set_limit(20)
    thread.join(10)
    assert result == [True]
    with pytest.raises(ValueError, match="positive"):
        budget.set_limit(0)


def test_megapixels_come_from_the_header(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (2000, 1500)).save(path)
    assert image_megapixels(path) == pytest.approx(3.0)
    (tmp_path / "junk.jpg").write_bytes(b"not an image")
    assert image_megapixels(tmp_path / "junk.jpg") == 0.0


def test_workers_default_to_the_usable_cpus_and_stay_settable(tmp_path: Path) -> None:
    folders = [{"input": "in", "output": "out", "quarantine": "q"}]
    auto = parse_config({"folders": folders}, base_dir=tmp_path).pipeline
    assert auto.decode_workers == auto.write_workers == "auto"
    assert auto.decode_worker_count == auto.write_worker_count == usable_cpus()
    fixed = parse_config({"folders": folders, "pipeline": {"decode_workers": 3, "write_workers": 5}},
                         base_dir=tmp_path).pipeline
    assert (fixed.decode_worker_count, fixed.write_worker_count) == (3, 5)


@pytest.mark.parametrize(("pipeline", "key"), [
    ({"decode_workers": "many"}, "pipeline.decode_workers"),
    ({"write_workers": 0}, "pipeline.write_workers"),
    ({"max_inflight_megapixels": 0}, "pipeline.max_inflight_megapixels"),
])
def test_bad_values_name_their_key(tmp_path: Path, pipeline: dict[str, Any], key: str) -> None:
    from bshmd.errors import ConfigError

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config({"folders": [{"input": "in", "output": "out", "quarantine": "q"}], "pipeline": pipeline},
                     base_dir=tmp_path)


class InFlight:
    """A decoder that counts decoded, unfinished images (the pipeline's on_done ends each)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.current = 0
        self.most = 0

    def decode(self, path: Path, **limits: Any) -> Any:
        image = decode_image(path, **limits)
        with self.lock:
            self.current += 1
            self.most = max(self.most, self.current)
        return image

    def done(self, job: Job, outcome: Outcome) -> None:
        with self.lock:
            self.current -= 1
        assert outcome == Outcome(PROCESSED), outcome


@pytest.mark.parametrize(("budget_mp", "most"), [(0.25, 1), (0.5, 2)])
def test_the_pipeline_holds_at_most_the_budget(tmp_path: Path, engine: Any, budget_mp: float, most: int) -> None:
    for name in ("in", "out", "q"):
        (tmp_path / name).mkdir()
    config = parse_config({
        "folders": [{"input": "in", "output": "out", "quarantine": "q"}],
        "gate": {"enabled": False},
        "batch": {"max_size": 4, "max_wait_ms": 20},
        # Enough workers and queue for every file at once: only the budget holds them back.
        "pipeline": {"decode_workers": 4, "write_workers": 4, "queue_size": 8, "max_inflight_megapixels": budget_mp},
    }, base_dir=tmp_path)
    folder = config.folders[0]
    paths = []
    for i in range(6):  # 0.2 MP each
        buffer = io.BytesIO()
        Image.fromarray(synthetic_portrait(500, 400, i)).save(buffer, "JPEG", quality=90)
        paths.append(tmp_path / "in" / f"{i}.jpg")
        paths[-1].write_bytes(buffer.getvalue())
    counter = InFlight()
    pipeline = Pipeline(config, engine, instance_id="budget", decoder=counter.decode, on_done=counter.done)
    pipeline.start()
    try:
        for path in paths:
            assert pipeline.submit(Job(folder=folder, path=path, key=FileKey.of(folder.input, path)), timeout=30)
        assert pipeline.wait_idle(120)
    finally:
        assert pipeline.stop(30)
    assert pipeline.health().processed == 6
    assert counter.most == most
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == sorted(f"{i}.jpg.cutout.png" for i in range(6))


def test_an_image_over_the_budget_is_still_processed(tmp_path: Path, engine: Any) -> None:
    for name in ("in", "out", "q"):
        (tmp_path / name).mkdir()
    config = parse_config({
        "folders": [{"input": "in", "output": "out", "quarantine": "q"}],
        "gate": {"enabled": False},
        "pipeline": {"max_inflight_megapixels": 0.01},
    }, base_dir=tmp_path)
    folder = config.folders[0]
    path = tmp_path / "in" / "big.png"
    Image.fromarray(synthetic_portrait(400, 300, 1)).save(path)
    pipeline = Pipeline(config, engine, instance_id="budget")
    pipeline.start()
    try:
        assert pipeline.submit(Job(folder=folder, path=path, key=FileKey.of(folder.input, path)), timeout=30)
        assert pipeline.wait_idle(60)
    finally:
        assert pipeline.stop(30)
    assert pipeline.health().processed == 1
    with Image.open(tmp_path / "out" / "big.png.cutout.png") as image:
        assert image.size == (400, 300) and image.mode == "RGBA"
        assert np.asarray(image)[:, :, 3].any()


HEAP_PROBE = """
import sys, numpy as np
from bshmd.pipeline.budget import bound_heap_retention
def rss(): return int(open('/proc/self/statm').read().split()[1]) * 4096
if sys.argv[1] == 'bound':
    bound_heap_retention()
before = rss()
for _ in range(3):  # the first free raises glibc's own threshold; the later blocks would stay
    block = np.ones(24 << 20, np.uint8)
    del block
print(rss() - before)
"""


def test_large_freed_blocks_go_back_to_the_system() -> None:
    import subprocess
    import sys

    if not Path("/proc/self/statm").exists():
        pytest.skip("needs Linux /proc")
    retained = int(subprocess.run([sys.executable, "-c", HEAP_PROBE, "bound"], capture_output=True, text=True,
                                  check=True, timeout=60).stdout)
    assert retained < 8 << 20, f"{retained} bytes stayed resident after freeing 24 MiB blocks"


def test_release_says_how_much_was_held() -> None:
    budget = PixelBudget(10)
    assert budget.acquire("a", 2.5) and budget.acquire("a", 1.5)
    assert budget.release("a") == 4.0
    assert budget.release("a") == 0.0


def test_freed_heap_memory_is_returned_after_enough_pixels_or_when_idle() -> None:
    trims: list[int] = []
    trim = HeapTrim(every=1.0, trim=lambda: trims.append(1))
    assert [trim.freed(0.3, idle=False) for _ in range(4)] == [False, False, False, True]  # 1.2 MP ≥ 1
    assert len(trims) == 1
    assert trim.freed(24.0, idle=False)  # a photo over the threshold: trimmed after it alone
    assert trim.freed(0.3, idle=True)  # the pipeline fell idle: what is left goes back at once
    assert not trim.freed(0.0, idle=True)  # nothing freed since: nothing to trim
    assert len(trims) == 3
