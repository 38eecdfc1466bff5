"""The quality gate on real mattes: a real network's matte passes, broken ones are refused by name."""

from __future__ import annotations

import numpy as np
import pytest

from bshmd.config import GateConfig
from bshmd.decode.image import decode_image
from bshmd.errors import InputRejected
from bshmd.pipeline.gate import check_input, check_matte, measure_matte
from bshmd.testing.segmentation import selfie_matte
from tests.support.testdata import PHOTOS, SELFIE_MODEL


def test_real_network_matte_measures_as_recorded(studio_matte: np.ndarray) -> None:
    measured = measure_matte(studio_matte)
    assert measured["foreground"] == pytest.approx(0.578, abs=0.001)
    assert measured["uncertain"] == pytest.approx(0.0339, abs=0.001)
    assert measured["largest_component_share"] == pytest.approx(1.0, abs=1e-4)
    assert measured["components"] == 1


def test_real_network_matte_passes_the_default_gate(studio_matte: np.ndarray) -> None:
    # Segmentation upsampled from 256×256 has wider soft edges than BSHM's matte (uncertain
    # 0.0087 on the photo the defaults were calibrated on): a 4x margin here, 17x there.
    measured = check_matte(studio_matte, GateConfig())
    assert measured["foreground"] > GateConfig().min_foreground * 3  # a real margin, not a near miss
    assert measured["foreground"] < GateConfig().max_foreground - 0.2
    assert measured["uncertain"] < GateConfig().max_uncertain / 4


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda shape, rng: np.zeros(shape, np.uint8), "no_subject"),
        (lambda shape, rng: np.full(shape, 255, np.uint8), "subject_too_large"),
        (lambda shape, rng: rng.integers(0, 256, shape, dtype=np.uint8), "uncertain_matte"),
        # Half-transparent everywhere: a model that saw a person but could not decide where.
        (lambda shape, rng: np.full(shape, 140, np.uint8), "uncertain_matte"),
    ],
    ids=["empty", "full", "uniform-noise", "all-half"],
)
def test_broken_mattes_are_refused_with_their_reason(make, reason: str, studio_matte: np.ndarray) -> None:  # noqa: ANN001
    alpha = make(studio_matte.shape, np.random.default_rng(7))
    with pytest.raises(InputRejected) as caught:
        check_matte(alpha, GateConfig())
    assert caught.value.reason_code == reason
    assert "foreground" in caught.value.measured and "uncertain" in caught.value.measured


def test_disabled_gate_measures_but_never_refuses() -> None:
    measured = check_matte(np.zeros((80, 80), np.uint8), GateConfig(enabled=False))
    assert measured["foreground"] == 0.0
    check_input(np.zeros((2, 2, 3), np.uint8), GateConfig(enabled=False))


def test_input_gate_refuses_small_images_by_their_shorter_side() -> None:
    gate = GateConfig(min_input_side=64)
    check_input(np.zeros((64, 2000, 3), np.uint8), gate)
    with pytest.raises(InputRejected) as caught:
        check_input(np.zeros((63, 2000, 3), np.uint8), gate)
    assert caught.value.reason_code == "too_small"
    assert caught.value.measured == {"width": 2000, "height": 63, "min_input_side": 64}


def test_foreground_share_counts_alpha_from_128() -> None:
    alpha = np.zeros((10, 10), np.uint8)
    alpha[:5] = 128
    alpha[5:, :5] = 127
    measured = measure_matte(alpha)
    assert measured["foreground"] == 0.5
    assert measured["uncertain"] == 0.75  # 127 and 128 are both undecided; 0 is not
    # 0.05 < a/255 < 0.95 ⇔ 13 ≤ a ≤ 242
    edges = np.array([[12, 13, 242, 243]], np.uint8)
    assert measure_matte(edges)["uncertain"] == 0.5


@pytest.fixture(scope="module")
def selfie_mattes() -> dict[str, np.ndarray]:
    mattes = {}
    for name in ("portrait-astronaut.png", "no-person-rocket.jpg"):
        rgb = decode_image(PHOTOS / name, max_pixels=10**8, max_file_bytes=10**9)
        mattes[name] = selfie_matte(SELFIE_MODEL, rgb)
    return mattes


@pytest.mark.slow
def test_real_segmentation_of_a_portrait_passes(selfie_mattes: dict[str, np.ndarray]) -> None:
    measured = check_matte(selfie_mattes["portrait-astronaut.png"], GateConfig())
    assert 0.3 < measured["foreground"] < 0.8


@pytest.mark.slow
def test_real_segmentation_of_a_photo_without_a_person_is_no_subject(selfie_mattes: dict[str, np.ndarray]) -> None:
    with pytest.raises(InputRejected) as caught:
        check_matte(selfie_mattes["no-person-rocket.jpg"], GateConfig())
    assert caught.value.reason_code == "no_subject"
    assert caught.value.measured["foreground"] < 0.005
