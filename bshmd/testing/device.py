"""An accelerator's time per image, for benchmarks on hosts without one: a TEST FIXTURE, never a default.

On a GPU host most of an inference happens on the device: the thread that called
``session.run`` waits in the driver, holding no GIL and using no CPU, while decoding and
encoding go on around it. A CPU-only machine cannot show that with a CPU stand-in, whose
inference competes for the very cores the other stages need (bench/bench_pipeline.py).

``DeviceTimeEngine`` is a MattingEngine (normally on the stand-in graph) whose ``infer``
runs the graph for real and then waits ``seconds_per_image`` for each image with the GIL
released, as the device's share. Everything around the network that a GPU host does on its
CPU (RGB check, downscaling, float conversion, feed and fetch, guided upsampling) stays as
it is. One device: batches wait for each other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bshmd.engine.engine import MattingEngine, Prepared


class DeviceTimeEngine(MattingEngine):
    """A MattingEngine plus ``seconds_per_image`` of device time per image (no CPU, no GIL)."""

    def __init__(self, graph_file: Path, *, seconds_per_image: float, **engine_args: Any) -> None:
        if seconds_per_image < 0:
            raise ValueError("seconds_per_image must not be negative")
        super().__init__(graph_file, **engine_args)
        self.seconds_per_image = seconds_per_image
        self._device = threading.Lock()  # one device: a second caller waits for the first

    def infer(self, prepared: Sequence[Prepared]) -> list[Any]:
        results = super().infer(prepared)
        with self._device:
            time.sleep(self.seconds_per_image * len(prepared))  # GIL released, as in a GPU driver
        return results
