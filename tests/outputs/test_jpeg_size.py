"""The composite JPEG: an exact plain background, full-resolution chroma, a quality that fits outputs.jpeg_max_bytes."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from bshmd.config import OutputsConfig
from bshmd.errors import InputRejected
from bshmd.outputs.jpeg import MIN_QUALITY, PIN_QUALITY, BackgroundPixels, encode_jpeg
from bshmd.outputs.render import render_outputs
from tests.outputs.jpeg_decoders import djpeg, opencv, pillow

WHITE = (255, 255, 255)


def composite_flat(scene: Any) -> np.ndarray:
    """The composite on white as pixels (the PNG composite, decoded)."""
    blob = render_outputs(scene.photo, scene.alpha, OutputsConfig(formats=("composite",), composite_format="png"))
    return pillow(blob["composite"])


def composite_jpeg(scene: Any, **outputs: Any) -> bytes:
    return render_outputs(scene.photo, scene.alpha, OutputsConfig(formats=("composite",), **outputs))["composite"]


def off_colour(pixels: np.ndarray, where: np.ndarray, colour: tuple[int, int, int]) -> int:
    """How many pixels under ``where`` are not exactly ``colour``."""
    return int((pixels[where] != np.asarray(colour, np.uint8)).any(axis=1).sum())


def free_blocks(alpha: np.ndarray) -> np.ndarray:
    """bool H×W: the pixels of 8×8 blocks that hold no subject pixel (alpha 0 throughout)."""
    height, width = alpha.shape
    touched = (alpha[: height // 8 * 8, : width // 8 * 8] > 0).reshape(height // 8, 8, width // 8, 8).any(axis=(1, 3))
    free = np.zeros(alpha.shape, bool)
    free[: height // 8 * 8, : width // 8 * 8] = ~np.kron(touched, np.ones((8, 8), bool))
    return free


def test_every_background_pixel_of_the_white_composite_decodes_exactly_white(scene: Any) -> None:
    blob = composite_jpeg(scene)
    background = scene.alpha == 0
    with Image.open(io.BytesIO(blob)) as image:
        assert JpegImagePlugin.get_sampling(image) == 0  # 4:4:4
        assert image.info["adobe_transform"] == 0  # RGB components: see bshmd.outputs.jpeg
    for decode in (pillow, opencv):
        assert off_colour(decode(blob), background, WHITE) == 0, decode.__name__
    # The same pixels as a plain Pillow JPEG at the same quality miss by several levels next
    # to the subject: the check above is one a plain encoding fails.
    flat = np.asarray(Image.open(io.BytesIO(composite_jpeg(scene, composite_format="png"))))
    buffer = io.BytesIO()
    Image.fromarray(flat).save(buffer, "JPEG", quality=92, subsampling=0)
    plain = pillow(buffer.getvalue())
    assert off_colour(plain, background, WHITE) > 1000
    assert (plain[free_blocks(scene.alpha)] == 255).all()  # whole-background blocks were already exact


def hard_edged(colour: tuple[int, int, int], seed: int, height: int = 203, width: int = 157) -> tuple[Any, Any]:
    """A subject of discs in black, white and primaries, striped at 2-3 px (JPEG's worst ringing), on ``colour``.

    Returns the pixels and the background mask. The odd size leaves padded blocks at two sides.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    palette = np.array([(0, 0, 0), (255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255), (250, 250, 250),
                        (5, 5, 5), (128, 128, 128)], np.uint8)
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[:] = colour
    subject = np.zeros((height, width), bool)
    for _ in range(12):
        cy, cx, r = rng.integers(0, height), rng.integers(0, width), rng.integers(4, 40)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        pixels[disc] = palette[rng.integers(len(palette))]
        subject |= disc
    stripes = subject & ((xx // 2 + yy // 3) % 2 == 0)
    pixels[stripes] = 255 - pixels[stripes]
    return pixels, ~subject


@pytest.mark.parametrize("colour", [WHITE, (0, 0, 0), (255, 0, 0)])
@pytest.mark.parametrize("quality", [PIN_QUALITY, 75, 92, 95])
def test_a_background_at_the_clip_points_decodes_exactly_in_every_accurate_decoder(
        colour: tuple[int, int, int], quality: int) -> None:
    # Up to quality 95. From 96 on the DC step is 1 and baseline JPEG's DC range leaves too
    # little room past the clip point: on this texture a few pixels per image end 1 level off.
    for seed in range(2):
        pixels, background = hard_edged(colour, seed)
        blob = encode_jpeg(Image.fromarray(pixels), quality, background=BackgroundPixels(background, colour))
        for name, decoded in [("pillow", pillow(blob)), ("opencv", opencv(blob)),
                              ("djpeg -dct int", djpeg(blob, "int")), ("djpeg -dct float", djpeg(blob, "float"))]:
            assert off_colour(decoded, background, colour) == 0, (name, seed)
        # libjpeg's fast inverse transform is coarser (libjpeg advises against it at high
        # quality; at quality 25 and below it miscomputes coefficients this large): between
        # those it stays within a few levels on this texture (exact up to 85, 3 levels at 92).
        if quality <= 92:
            fast = djpeg(blob, "fast").astype(int)
            assert np.abs(fast[background] - np.asarray(colour)).max() <= 4, seed


def test_below_the_pin_quality_the_plain_file_is_written(scene: Any) -> None:
    # There libjpeg's fast transform would decode lifted background pixels far off (even
    # black): the YCbCr file, a few levels off next to the subject, is the lesser harm.
    image, quality = Image.fromarray(composite_flat(scene)), PIN_QUALITY - 5
    background = BackgroundPixels(scene.alpha == 0, WHITE)
    blob = encode_jpeg(image, quality, background=background)
    assert blob == encode_jpeg(image, quality)
    assert encode_jpeg(image, PIN_QUALITY, background=background) != encode_jpeg(image, PIN_QUALITY)


def test_jpeg_background_plain_writes_the_smaller_ycbcr_file(scene: Any) -> None:
    exact, plain = composite_jpeg(scene), composite_jpeg(scene, jpeg_background="plain")
    with Image.open(io.BytesIO(plain)) as image:
        assert "adobe_transform" not in image.info
    with Image.open(io.BytesIO(exact)) as image:
        assert image.info.get("adobe_transform") == 0
    assert len(plain) < len(exact)
    assert off_colour(pillow(plain), scene.alpha == 0, WHITE) > 0
    assert off_colour(pillow(exact), scene.alpha == 0, WHITE) == 0


def test_a_colour_off_the_clip_points_is_exact_in_whole_background_blocks(scene: Any) -> None:
    # Only a channel at 0 or 255 can be pinned through the decoder's clipping; #f0f0f0 keeps
    # YCbCr, exact where a block holds no subject and within a few levels next to it.
    blob = composite_jpeg(scene, background="#f0f0f0")
    with Image.open(io.BytesIO(blob)) as image:
        assert "adobe_transform" not in image.info
    pixels = pillow(blob).astype(int)
    free = free_blocks(scene.alpha)
    assert (pixels[free] == 240).all()
    edge = (scene.alpha == 0) & ~free
    assert 0 < np.abs(pixels[edge] - 240).max() <= 16  # 14 measured at quality 92


def test_quality_goes_down_until_the_composite_fits(scene: Any) -> None:
    unlimited = composite_jpeg(scene, jpeg_quality=95)
    limit = len(unlimited) * 2 // 3
    fitted = composite_jpeg(scene, jpeg_quality=95, jpeg_max_bytes=limit)
    assert len(fitted) <= limit < len(unlimited)
    with Image.open(io.BytesIO(fitted)) as image:
        assert image.size == scene.alpha.shape[::-1]
    assert off_colour(pillow(fitted), scene.alpha == 0, WHITE) == 0  # each lower quality is pinned too
    assert composite_jpeg(scene, jpeg_quality=95, jpeg_max_bytes=len(unlimited)) == unlimited  # fits: untouched


@pytest.mark.slow
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
