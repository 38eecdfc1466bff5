"""Layout: the subject trimmed and placed on a marketplace canvas, on exactly the background colour."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bshmd.config import LayoutConfig, OutputsConfig, parse_config
from bshmd.errors import EXIT_OK, EXIT_QUARANTINED, ConfigError, InputRejected
from bshmd.outputs.layout import apply_layout, plan
from bshmd.outputs.render import render_outputs
from tests.outputs.jpeg_decoders import decoded_by_all, opencv, pillow


def bshmd(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bshmd", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=180)


def box_of(alpha: np.ndarray) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 of the pixels with any alpha."""
    ys, xs = np.nonzero(alpha)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def outside(shape: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    mask = np.ones(shape, bool)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = False
    return mask


@pytest.mark.slow
def test_marketplace_canvas_through_bshmd_process(tmp_path: Path, scene: Any, fixed_matte_model: Path) -> None:
    src = tmp_path / "shoot"
    src.mkdir()
    Image.fromarray(scene.photo).save(src / "dress.png")
    config = tmp_path / "ecom.yaml"
    config.write_text(textwrap.dedent("""\
        outputs:
          formats: [cutout, alpha, composite, webp]
          layout: {trim: true, margin: 0.05, canvas: [2000, 2000], align: center}
          edges: decontaminate
        """))

    result = bshmd("process", src, tmp_path / "out", "--model", fixed_matte_model, "-c", config, "--no-progress",
                   cwd=tmp_path)

    assert result.returncode == EXIT_OK, result.stderr
    out = tmp_path / "out"
    alpha = np.asarray(Image.open(out / "dress.png.alpha.png"))
    cutout = np.asarray(Image.open(out / "dress.png.cutout.png"))
    with Image.open(out / "dress.png.composite.jpg") as jpeg:
        assert (jpeg.format, jpeg.mode, jpeg.size) == ("JPEG", "RGB", (2000, 2000))
        composite = np.asarray(jpeg)
    with Image.open(out / "dress.png.cutout.webp") as image:
        webp = np.asarray(image.convert("RGBA"))
    assert alpha.shape == (2000, 2000) and cutout.shape == webp.shape == (2000, 2000, 4)
    np.testing.assert_array_equal(cutout[:, :, 3], alpha)
    np.testing.assert_array_equal(webp[:, :, 3], alpha)  # every format gets the same canvas

    # The subject is taller than wide (512×582 px above the threshold), so on the square canvas
    # the height constrains: the box runs from the top margin to the bottom margin (100 px =
    # 5 % of 2000), keeps the subject's proportions and is centred across.
    sx0, sy0, sx1, sy1 = box_of(scene.alpha > 10)
    assert sy1 - sy0 > sx1 - sx0, (sx0, sy0, sx1, sy1)
    x0, y0, x1, y1 = box = box_of(alpha)
    assert abs(y0 - 100) <= 2 and abs(1900 - y1) <= 2, box
    assert abs((x1 - x0) - 1800 * (sx1 - sx0) / (sy1 - sy0)) <= 2, box
    assert abs((x0 + x1) / 2 - 1000) <= 2 and abs((y0 + y1) / 2 - 1000) <= 2, box
    assert x0 > 100 and x1 < 1900  # the other sides keep more than the margin
    tx0, ty0, tx1, ty1 = box_of(alpha > 10)  # trimmed at the threshold: resampling softens only the rim
    assert max(tx0 - x0, ty0 - y0, x1 - tx1, y1 - ty1) <= 2, (box, (tx0, ty0, tx1, ty1))

    beyond = outside(alpha.shape, box)
    assert not cutout[beyond].any()  # transparent canvas, no colour
    # Everything outside the box, and every other pixel the matte leaves at 0, is pure white
    # in the JPEG, also in the blocks the box's edge cuts through (bshmd.outputs.jpeg).
    blob = (out / "dress.png.composite.jpg").read_bytes()
    for decoded in (composite, opencv(blob)):
        assert (decoded[beyond] == 255).all()
        assert (decoded[alpha == 0] == 255).all()


def psnr(decoded: np.ndarray, exact: np.ndarray) -> float:
    error = decoded.astype(np.float64) - exact
    return float(10.0 * np.log10(255.0**2 / np.mean(error**2)))


def test_the_marketplace_jpeg_is_white_outside_and_no_worse_inside_than_plain_pillow(scene: Any) -> None:
    layout = LayoutConfig(trim=True, margin=0.05, canvas=(2000, 2000), align="center")
    exact = render_outputs(scene.photo, scene.alpha, OutputsConfig(formats=("composite", "alpha"),
                                                                  composite_format="png", layout=layout))
    flat = np.asarray(Image.open(io.BytesIO(exact["composite"])))
    alpha = np.asarray(Image.open(io.BytesIO(exact["alpha"])))
    blob = render_outputs(scene.photo, scene.alpha, OutputsConfig(formats=("composite",), layout=layout,
                                                                 jpeg_quality=92))["composite"]
    buffer = io.BytesIO()
    Image.fromarray(flat).save(buffer, "JPEG", quality=92, subsampling=0, optimize=True)  # as before
    plain = pillow(buffer.getvalue())

    box = box_of(alpha)
    beyond = outside(alpha.shape, box)
    for name, decoded in decoded_by_all(blob).items():
        if name != "djpeg -dct fast":  # libjpeg's coarse transform: tests/outputs/test_jpeg_size.py
            assert (decoded[beyond] == 255).all() and (decoded[alpha == 0] == 255).all(), name
    assert (plain[beyond] != 255).any()  # a plain JPEG is not: ringing next to the box's edge

    # Inside the box the subject is no worse than a plain Pillow JPEG at the same quality:
    # RGB components quantise colour more finely than YCbCr's chroma, which pays for the
    # pinned blocks (measured: 57.6 dB against 50.5 dB, mean error 0.11 against 0.48 levels).
    pinned = pillow(blob)
    inside = ~beyond & (alpha > 0)
    assert psnr(pinned[inside], flat[inside]) >= psnr(plain[inside], flat[inside])
    assert np.abs(pinned[inside].astype(int) - flat[inside]).mean() <= np.abs(plain[inside].astype(int)
                                                                               - flat[inside]).mean()
    # In the blocks whose background was pinned, the subject moves by a few levels at most.
    height, width = alpha.shape
    mixed = np.zeros(alpha.shape, bool)
    blocks = (alpha[: height // 8 * 8, : width // 8 * 8] == 0).reshape(height // 8, 8, width // 8, 8)
    mixed[: height // 8 * 8, : width // 8 * 8] = np.kron(blocks.any(axis=(1, 3)) & ~blocks.all(axis=(1, 3)),
                                                         np.ones((8, 8), bool))
    subject_there = mixed & (alpha > 0)
    assert subject_there.sum() > 10_000
    assert np.abs(pinned[subject_there].astype(int) - flat[subject_there]).max() <= 8  # 6 measured; plain: 8


def test_every_pixel_outside_the_subject_is_exactly_the_background_in_a_png_composite(scene: Any) -> None:
    layout = LayoutConfig(margin=0.05, canvas=(1200, 800), align="bottom")
    outputs = OutputsConfig(formats=("composite", "alpha"), composite_format="png", background="#ffffff",
                            layout=layout)
    blobs = render_outputs(scene.photo, scene.alpha, outputs)
    alpha = np.asarray(Image.open(io.BytesIO(blobs["alpha"])))
    composite = np.asarray(Image.open(io.BytesIO(blobs["composite"])))
    assert composite.shape == (800, 1200, 3)
    assert (composite[alpha == 0] == 255).all()
    x0, y0, x1, y1 = box_of(alpha > 10)
    assert abs(y1 - 760) <= 2 and abs(y0 - 40) <= 2  # 800 px high: the height constrains here too
    assert abs((x0 + x1) / 2 - 600) <= 2


def test_bottom_alignment_puts_the_feet_on_the_bottom_margin() -> None:
    alpha = np.zeros((400, 1000), np.uint8)
    alpha[50:150, 100:900] = 255  # a wide, low subject high up in the frame
    rgb = np.full((400, 1000, 3), 90, np.uint8)
    canvas_rgb, canvas_alpha = apply_layout(rgb, alpha, LayoutConfig(margin=0.1, canvas=(1000, 1000), align="bottom"))
    x0, y0, x1, y1 = box_of(canvas_alpha)
    assert (x0, x1) == (100, 900)  # the width constrains: 1000 − 2·100
    assert y1 == 900 and y1 - y0 == 100  # 800/800 scale 1, feet on the 100 px bottom margin
    assert (canvas_rgb[canvas_alpha == 255] == 90).all()


def test_without_trim_the_whole_frame_is_placed_and_without_canvas_the_box_gets_its_margin() -> None:
    alpha = np.zeros((300, 200), np.uint8)
    alpha[100:200, 50:100] = 255
    whole = plan(alpha, LayoutConfig(trim=False, canvas=(400, 400)))
    assert whole.source_box == (0, 0, 200, 300) and whole.canvas_box == (66, 0, 333, 400)
    tight = plan(alpha, LayoutConfig(margin=0.25))
    # box 50×100; the shorter canvas side 50/(1 − 0.5) = 100 keeps 25 px free on every side.
    assert tight.source_box == (50, 100, 100, 200)
    assert tight.canvas == (100, 150) and tight.canvas_box == (25, 25, 75, 125)


def test_resizing_takes_no_colour_from_under_transparent_pixels() -> None:
    # A red subject on a green backdrop the matte excludes: shrinking by a non-integer factor
    # mixes neighbours, and only alpha-weighted (premultiplied) colour keeps green out.
    rgb = np.zeros((300, 300, 3), np.uint8)
    rgb[:] = (0, 255, 0)
    rgb[100:200, 100:200] = (255, 0, 0)
    alpha = np.zeros((300, 300), np.uint8)
    alpha[100:200, 100:200] = 255
    canvas_rgb, canvas_alpha = apply_layout(rgb, alpha, LayoutConfig(trim=False, canvas=(113, 113)))
    visible = canvas_alpha > 0
    assert (canvas_alpha[visible] < 255).any()  # the resized edge is soft
    assert (canvas_rgb[visible][:, 1] == 0).all() and (canvas_rgb[visible][:, 0] == 255).all()


def test_an_empty_matte_under_trim_is_no_subject_never_an_empty_canvas(scene: Any) -> None:
    faint = np.minimum(scene.alpha, 10)  # nothing above the default threshold
    with pytest.raises(InputRejected) as caught:
        render_outputs(scene.photo, faint, OutputsConfig(layout=LayoutConfig(canvas=(500, 500))))
    assert caught.value.reason_code == "no_subject"
    assert caught.value.measured == {"layout_threshold": 10, "max_alpha": 10}


@pytest.mark.slow
def test_an_empty_matte_is_quarantined_as_no_subject_by_bshmd_process(tmp_path: Path) -> None:
    from bshmd.testing.standin import write_standin_graph

    src = tmp_path / "shoot"
    src.mkdir()
    Image.new("RGB", (320, 240), (200, 200, 200)).save(src / "blank.png")  # the stand-in sees no subject
    model = tmp_path / "standin"
    write_standin_graph(model)
    config = tmp_path / "ecom.yaml"
    config.write_text("gate: {enabled: false}\noutputs:\n  layout: {canvas: [500, 500]}\n")

    result = bshmd("process", src, tmp_path / "out", "--model", model, "-c", config, "--no-progress", cwd=tmp_path)

    assert result.returncode == EXIT_QUARANTINED, result.stderr
    quarantine = tmp_path / "out.quarantine"
    assert (quarantine / "blank.png").is_file()
    assert json.loads((quarantine / "blank.png.reason.json").read_text())["reason"] == "no_subject"
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file() and ".bshmd" not in p.parts]


def folders(tmp_path: Path) -> list[dict[str, str]]:
    return [{"input": str(tmp_path / "in"), "output": str(tmp_path / "out"), "quarantine": str(tmp_path / "q")}]


@pytest.mark.parametrize(("layout", "key", "says"), [
    ({"margin": 0.5}, "outputs.layout.margin", "less than 0.5"),
    ({"canvas": [0, 2000]}, "outputs.layout.canvas.0", "greater than or equal to 1"),
    ({"canvas": [2000, 50000]}, "outputs.layout.canvas.1", "less than or equal to 10000"),
    ({"canvas": [2000]}, "outputs.layout.canvas", ""),
    ({"align": "top"}, "outputs.layout.align", "'center' or 'bottom'"),
    ({"threshold": 255}, "outputs.layout.threshold", "less than or equal to 254"),
    ({"marign": 0.1}, "outputs.layout.marign", "unknown key"),
])
def test_bad_layouts_are_refused_naming_the_key(tmp_path: Path, layout: dict[str, Any], key: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"folders": folders(tmp_path), "outputs": {"layout": layout}}, base_dir=tmp_path)
    message = str(caught.value)
    assert message.startswith(key) and says in message, message


def test_a_folder_sets_its_own_layout(tmp_path: Path) -> None:
    data = {"folders": folders(tmp_path), "outputs": {"layout": {"canvas": [2000, 2000], "margin": 0.05}}}
    data["folders"][0]["outputs"] = {"layout": {"canvas": [1600, 1200], "align": "bottom"}}
    config = parse_config(data, base_dir=tmp_path)
    assert config.outputs.layout == LayoutConfig(canvas=(2000, 2000), margin=0.05)
    assert config.outputs_for(config.folders[0]).layout == LayoutConfig(canvas=(1600, 1200), align="bottom")
    # A folder keeps the photo's framing under a global layout with a layout that changes nothing.
    data["folders"][0]["outputs"] = {"layout": {"trim": False}}
    keeping = parse_config(data, base_dir=tmp_path)
    rgb = np.full((30, 40, 3), 70, np.uint8)
    alpha = np.zeros((30, 40), np.uint8)
    laid_rgb, laid_alpha = apply_layout(rgb, alpha, keeping.outputs_for(keeping.folders[0]).layout)
    assert laid_rgb is rgb and laid_alpha is alpha
    with pytest.raises(ConfigError, match=r"^folders\.0\.outputs\.layout\.margin"):
        data["folders"][0]["outputs"] = {"layout": {"margin": 0.7}}
        parse_config(data, base_dir=tmp_path)
