"""The device-time stand-in for benchmarks (bshmd.testing.device): the stand-in's mattes, plus a wait."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from bshmd.engine import MattingEngine
from bshmd.testing.device import DeviceTimeEngine

from .images import subject_on_backdrop


def test_mattes_are_the_wrapped_engines_and_each_image_adds_its_device_time(
        standin_dir: Path, engine: MattingEngine) -> None:
    images = [subject_on_backdrop(60, 80, seed) for seed in range(3)]
    with DeviceTimeEngine(standin_dir / "tf_graph.pb", seconds_per_image=0.05) as device:
        prepared = [device.prepare(image) for image in images]
        started = time.monotonic()
        alphas = device.infer(prepared)
        # A lower bound only (time.sleep waits at least as long as asked): never flaky.
        assert time.monotonic() - started >= 3 * 0.05
        for alpha, mine, image in zip(alphas, device.predict(images), images, strict=True):
            expected = engine.predict([image])[0]
            np.testing.assert_array_equal(alpha, expected)
            np.testing.assert_array_equal(mine, expected)


def test_device_time_cannot_be_negative(standin_dir: Path) -> None:
    with pytest.raises(ValueError, match="seconds_per_image"):
        DeviceTimeEngine(standin_dir / "tf_graph.pb", seconds_per_image=-1)
