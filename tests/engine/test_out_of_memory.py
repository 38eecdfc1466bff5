"""Out of memory: batches split, images shrink, and only then is an image rejected.

``PixelBudgetEngine`` runs the real session but raises TensorFlow's own
``ResourceExhaustedError`` for any batch whose pixels exceed a budget, as a card with
little free memory would; everything else (splitting, shrinking, rejecting) is the engine's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bshmd.engine import MattingEngine
from bshmd.engine.engine import MIN_OOM_LONG_SIDE
from bshmd.errors import InputRejected

from .images import subject_on_backdrop


class PixelBudgetEngine(MattingEngine):
    def __init__(self, graph_file: Path, budget: int) -> None:
        super().__init__(graph_file, device="cpu")
        self.budget = budget
        self.attempts: list[tuple[int, tuple[int, int]]] = []

    def _run_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        from bshmd.engine.tf import import_tf

        self.attempts.append((len(images), images[0].shape[:2]))
        if sum(image.shape[0] * image.shape[1] for image in images) > self.budget:
            raise import_tf().errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        return super()._run_batch(images)


def test_a_batch_that_runs_out_is_split_and_still_gives_exact_alphas(
        standin_dir: Path, engine: MattingEngine) -> None:
    images = [subject_on_backdrop(50, 60, seed) for seed in range(4)]
    with PixelBudgetEngine(standin_dir / "tf_graph.pb", budget=2 * 50 * 60) as tight:
        results = tight.predict(images)
        assert [count for count, _ in tight.attempts] == [4, 2, 2]
    for result, expected in zip(results, engine.predict(images), strict=True):
        np.testing.assert_array_equal(result, expected)


def test_one_image_too_big_for_memory_runs_at_reduced_size(standin_dir: Path) -> None:
    image = subject_on_backdrop(1024, 1024)
    with PixelBudgetEngine(standin_dir / "tf_graph.pb", budget=300 * 300) as tight:
        (alpha,) = tight.predict([image])
        assert tight.attempts == [(1, (1024, 1024)), (1, (512, 512)), (1, (256, 256))]
    assert alpha.shape == (1024, 1024) and alpha.dtype == np.uint8
    assert alpha[512, 512] == 255 and alpha[10, 10] == 0


def test_an_image_that_never_fits_is_rejected_and_the_session_lives_on(standin_dir: Path) -> None:
    small, big = subject_on_backdrop(40, 40), subject_on_backdrop(600, 800, seed=1)
    with PixelBudgetEngine(standin_dir / "tf_graph.pb", budget=40 * 40) as tight:
        rejected, fine = tight.predict([big, small])
        assert isinstance(rejected, InputRejected) and rejected.reason_code == "out_of_memory"
        assert rejected.measured == {"width": 800, "height": 600}
        big_attempts = [shape for _, shape in tight.attempts if shape != (40, 40)]
        assert big_attempts == [(600, 800), (300, 400)]  # 200 px would be below the floor
        assert 200 < MIN_OOM_LONG_SIDE <= 400
        assert fine.shape == (40, 40)
        tight.budget = 10**9  # memory freed up: the same session serves the big image now
        (alpha,) = tight.predict([big])
        assert alpha.shape == (600, 800)
