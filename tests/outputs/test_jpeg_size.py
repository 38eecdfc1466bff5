"""The composite JPEG: full-resolution chroma and a quality that fits outputs.jpeg_max_bytes."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from bshmd.config import OutputsConfig
from bshmd.errors import InputRejected
from bshmd.outputs.jpeg import MIN_QUALITY, encode_jpeg
from bshmd.pipeline.outputs import render_outputs


def composite_jpeg(scene: Any, **outputs: Any) -> bytes:
    return render_outputs(scene.photo, scene.alpha, OutputsConfig(formats=("composite",), **outputs))["composite"]


def test_chroma_is_not_subsampled_and_blocks_without_subject_stay_exactly_white(scene: Any) -> None:
    with Image.open(io.BytesIO(composite_jpeg(scene))) as image:
        assert JpegImagePlugin.get_sampling(image) == 0  # 4:4:4
        pixels = np.asarray(image)
    # Every 8×8 block with no subject pixel in it is the background, exactly.
    height, width = scene.alpha.shape
    touched = scene.alpha[: height // 8 * 8, : width // 8 * 8].reshape(height // 8, 8, width // 8, 8).any(axis=(1, 3))
    free = ~np.kron(touched, np.ones((8, 8), bool))
    assert free.mean() > 0.9 * np.mean(scene.alpha == 0)  # the check covers most of the backdrop
    assert (pixels[: height // 8 * 8, : width // 8 * 8][free] == 255).all()


def test_quality_goes_down_until_the_composite_fits(scene: Any) -> None:
    unlimited = composite_jpeg(scene, jpeg_quality=95)
    limit = len(unlimited) * 2 // 3
    fitted = composite_jpeg(scene, jpeg_quality=95, jpeg_max_bytes=limit)
    assert len(fitted) <= limit < len(unlimited)
    with Image.open(io.BytesIO(fitted)) as image:
        assert image.size == scene.alpha.shape[::-1]
    assert composite_jpeg(scene, jpeg_quality=95, jpeg_max_bytes=len(unlimited)) == unlimited  # fits: untouched


def test_a_limit_no_acceptable_quality_meets_is_refused(scene: Any) -> None:
    with pytest.raises(InputRejected) as caught:
        composite_jpeg(scene, jpeg_quality=92, jpeg_max_bytes=1024)
    rejection = caught.value
    assert rejection.reason_code == "output_too_large"
    assert rejection.measured["jpeg_max_bytes"] == 1024
    assert rejection.measured["qualities_tried"] == list(range(92, MIN_QUALITY - 1, -5))
    assert rejection.measured["smallest_bytes"] > 1024


def test_encode_jpeg_without_a_limit_is_one_encode_at_the_quality(scene: Any) -> None:
    image = Image.fromarray(scene.photo)
    assert len(encode_jpeg(image, 60)) < len(encode_jpeg(image, 90))
