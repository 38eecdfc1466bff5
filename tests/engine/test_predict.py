"""Inference: batching, mixed sizes, large images, odd inputs."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from bshmd.engine import MattingEngine
from bshmd.engine.engine import MAX_CONCURRENT_RUNS
from bshmd.engine.upsample import guided_upsample
from bshmd.errors import InputRejected
from bshmd.testing.standin import write_standin_graph

from .images import disc, subject_on_backdrop


def test_a_batch_gives_exactly_the_one_by_one_alphas(engine: MattingEngine) -> None:
    images = [subject_on_backdrop(80, 100, seed) for seed in range(6)]
    one_by_one = [engine.predict([image])[0] for image in images]
    together = engine.predict(images)
    assert len(together) == 6
    for single, batched in zip(one_by_one, together, strict=True):
        np.testing.assert_array_equal(single, batched)


def test_mixed_sizes_each_get_their_own_size_in_input_order(engine: MattingEngine) -> None:
    sizes = [(40, 60), (64, 64), (40, 60), (33, 17), (64, 64), (40, 60)]
    images = [subject_on_backdrop(h, w, seed) for seed, (h, w) in enumerate(sizes)]
    results = engine.predict(images)
    for image, result in zip(images, results, strict=True):
        assert result.shape == image.shape[:2] and result.dtype == np.uint8
        np.testing.assert_array_equal(result, engine.predict([image])[0])


def test_extra_convolutions_cost_time_but_leave_the_alpha_alone(engine: MattingEngine,
                                                                 tmp_path: Path) -> None:
    image = subject_on_backdrop(72, 96, seed=4)
    heavier = write_standin_graph(tmp_path / "heavy", extra_convs=3, channels=4)
    with MattingEngine(heavier) as heavy:
        np.testing.assert_array_equal(heavy.predict([image])[0], engine.predict([image])[0])


def test_grey_and_rgba_inputs_are_taken_as_rgb_and_other_arrays_are_rejected(
        engine: MattingEngine) -> None:
    rgb = subject_on_backdrop(30, 40)
    grey = rgb[:, :, 0].copy()
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    results = engine.predict([grey, rgba, rgb.astype(np.float32), np.zeros((0, 5, 3), np.uint8)])
    assert results[0].shape == (30, 40)
    np.testing.assert_array_equal(results[1], engine.predict([rgb])[0])
    for rejected in results[2:]:
        assert isinstance(rejected, InputRejected) and rejected.reason_code == "unsupported_pixels"


def test_at_max_side_there_is_no_resampling(engine: MattingEngine) -> None:
    image = subject_on_backdrop(engine.max_side // 4, engine.max_side)
    (alpha,) = engine.predict([image])
    raw = engine._session.run("output_png:0", {"input_image:0": image.astype(np.float32)})[:, :, 3]
    np.testing.assert_array_equal(alpha, raw)


def _edge_error(matte: np.ndarray, truth: np.ndarray) -> float:
    return float(np.abs(matte.astype(np.float32) - truth.astype(np.float32)).mean())


def test_guided_upsampling_follows_the_image_edges_better_than_bilinear() -> None:
    import cv2

    image, truth = disc(600, 800)
    small_truth = cv2.resize(truth, (200, 150), interpolation=cv2.INTER_AREA)
    soft = cv2.blur(small_truth, (3, 3))  # a network's matte is a little soft at the edge
    guided = guided_upsample(soft, image)
    bilinear = cv2.resize(soft, (800, 600), interpolation=cv2.INTER_LINEAR)
    assert guided.shape == truth.shape and guided.dtype == np.uint8
    assert _edge_error(guided, truth) < 0.75 * _edge_error(bilinear, truth)


@pytest.mark.slow
def test_a_4000_by_3000_photo_gets_a_full_size_matte_with_sharp_edges(engine: MattingEngine) -> None:
    import cv2

    image, truth = disc(3000, 4000)
    (alpha,) = engine.predict([image])
    assert alpha.shape == (3000, 4000) and alpha.dtype == np.uint8
    # What plain bilinear upsampling of the same low-resolution matte would give.
    small = cv2.resize(image, (2000, 1500), interpolation=cv2.INTER_AREA)
    (small_alpha,) = engine.predict([small])
    bilinear = cv2.resize(small_alpha, (4000, 3000), interpolation=cv2.INTER_LINEAR)
    assert _edge_error(alpha, truth) < _edge_error(bilinear, truth)


def test_warmup_runs_one_inference(engine: MattingEngine) -> None:
    assert engine.warmup() > 0


def test_prepare_infer_finish_give_exactly_the_predicted_mattes(standin_dir: Path) -> None:
    # A small max_side makes every image here run downscaled and come back by guided upsampling.
    images = [subject_on_backdrop(90, 120, seed) for seed in range(3)] + [subject_on_backdrop(30, 40, 3)]
    with MattingEngine(standin_dir / "tf_graph.pb", max_side=64) as small:
        prepared = [small.prepare(image) for image in images]
        assert [item.net.shape[:2] for item in prepared] == [(48, 64)] * 3 + [(30, 40)]
        assert all(item.rgb is image for item, image in zip(prepared, images, strict=True))  # no copy
        alphas = small.infer(prepared)
        assert [alpha.shape for alpha in alphas] == [(48, 64)] * 3 + [(30, 40)]
        finished = [small.finish(alpha, item) for alpha, item in zip(alphas, prepared, strict=True)]
        for mine, predicted in zip(finished, small.predict(images), strict=True):
            assert mine.shape == predicted.shape
            np.testing.assert_array_equal(mine, predicted)


def test_prepare_rejects_what_predict_rejects(engine: MattingEngine) -> None:
    rejected = engine.prepare(np.zeros((4, 4, 3), np.float32))
    assert isinstance(rejected, InputRejected) and rejected.reason_code == "unsupported_pixels"


def test_batch_threads_start_with_the_engine_and_end_with_close(standin_dir: Path) -> None:
    def runs() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name.startswith("bshmd-infer-run")}

    before = runs()
    engine = MattingEngine(standin_dir / "tf_graph.pb")
    started = runs() - before
    assert len(started) == MAX_CONCURRENT_RUNS  # all running before the first batch
    engine.predict([subject_on_backdrop(40, 50, seed) for seed in range(6)])
    assert runs() - before == started  # batches reuse them: no thread is started per batch
    engine.close()
    assert not any(thread.is_alive() for thread in started)
