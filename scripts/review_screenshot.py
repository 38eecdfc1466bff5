"""Screenshot of the quarantine review page on the real photos in tests/data/photos.

Builds a throw-away hot folder, refuses each photo for a real reason through the real
quarantine code (a real matte of a portrait, MediaPipe's segmentation of the others from
tests/data/models), serves the page and saves PNGs: the grid, and the
viewer on the portrait (matte overlay; cut-out on the checkerboard; zoomed in on the top of the person (hair or hands);
the matte alone at 200 %), named after the first argument:

    .venv/bin/python scripts/review_screenshot.py [/tmp/review.png]
    # → /tmp/review.png, /tmp/review-viewer-overlay.png, -cutout, -detail-zoom, -matte-200
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from bshmd.config import GateConfig, parse_config
from bshmd.decode.image import decode_image
from bshmd.errors import InputRejected
from bshmd.pipeline.gate import check_input, check_matte, measure_matte
from bshmd.quarantine.store import quarantine_input
from bshmd.review.app import ReviewApp
from bshmd.review.server import Mounted, ReviewServer
from bshmd.testing.segmentation import selfie_matte

REPO = Path(__file__).resolve().parents[1]
TESTDATA = REPO / "tests" / "data" / "photos"
MODEL = REPO / "tests" / "data" / "models" / "selfie_segmentation.tflite"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def segment(rgb: np.ndarray) -> np.ndarray:
    """MediaPipe selfie segmentation (a real network) as a full-size matte."""
    return selfie_matte(MODEL, rgb)


def refusal(call, *args) -> InputRejected:  # noqa: ANN001
    try:
        call(*args)
    except InputRejected as exc:
        return exc
    raise SystemExit(f"{call.__name__} did not refuse")


def portrait() -> tuple[Path, np.ndarray]:
    """The first portrait-*.png that has its matte (*-alpha.png) beside it, and that matte."""
    for alpha in sorted(TESTDATA.glob("portrait-*-alpha.png")):
        photo = alpha.with_name(alpha.name.split(".")[0] + ".png")
        if photo.is_file():
            with Image.open(alpha) as image:
                return photo, np.asarray(image.convert("L"), dtype=np.uint8).copy()
    raise SystemExit(f"no portrait-*.png with its *-alpha.png matte in {TESTDATA}")


def build(root: Path):  # noqa: ANN201 - Config
    testdata = TESTDATA
    for name in ("in", "out", "quarantine"):
        (root / name).mkdir()
    config = parse_config({"folders": [{"input": "in", "output": "out", "quarantine": "quarantine"}]}, base_dir=root)
    folder = config.folders[0]
    shoot = root / "in" / "wedding-0612"
    shoot.mkdir()

    def decode(path: Path) -> np.ndarray:
        return decode_image(path, max_pixels=10**8, max_file_bytes=10**9)

    def put(name: str, data: bytes, rejection: InputRejected | None = None, matte: np.ndarray | None = None) -> None:
        path = shoot / name
        path.write_bytes(data)
        rejection = rejection or refusal(decode, path)
        quarantine_input(folder, path, PurePosixPath(shoot.name, name), rejection, instance_id="studio-1",
                         matte=matte)

    rocket = (testdata / "no-person-rocket.jpg").read_bytes()
    put("IMG_0412.jpg", b"not a photo\n")
    put("IMG_0413.jpg", rocket[: len(rocket) // 2])
    astronaut_rgb = decode(testdata / "portrait-astronaut.png")
    astronaut_matte = segment(astronaut_rgb)
    put("IMG_0414.png", (testdata / "portrait-astronaut.png").read_bytes(),
        refusal(check_matte, astronaut_matte, GateConfig(max_foreground=0.3)), astronaut_matte)
    rocket_matte = segment(decode(testdata / "no-person-rocket.jpg"))
    put("IMG_0415.jpg", rocket, refusal(check_matte, rocket_matte, GateConfig()), rocket_matte)
    put("IMG_0416.png", (testdata / "portrait-astronaut.png").read_bytes(),
        refusal(check_input, astronaut_rgb, GateConfig(min_input_side=1000)))
    photo, matte = portrait()
    # Refused by a gate twice as strict about soft edges as this matte is soft.
    put("IMG_0417.png", photo.read_bytes(),
        refusal(check_matte, matte, GateConfig(max_uncertain=measure_matte(matte)["uncertain"] / 2)), matte)
    return config


def _wait(page, script: str, timeout: float = 30) -> None:  # noqa: ANN001 - playwright Page
    # page.evaluate, not wait_for_function: the page's CSP forbids the eval the latter uses.
    deadline = time.monotonic() + timeout
    while not page.evaluate(script) and time.monotonic() < deadline:
        page.wait_for_timeout(100)


TILES_LOADED = ("(() => { const l = document.getElementById('viewer').dataset.level;"
                " const t = Array.from(document.querySelectorAll('#plane img.tile-img[data-level=\"' + l + '\"]'));"
                " return t.length > 0 && t.every(i => i.dataset.loaded === '1'); })()")


def main() -> int:
    from playwright.sync_api import sync_playwright

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/review.png")
    shots = [target]
    with tempfile.TemporaryDirectory() as tmp:
        config = build(Path(tmp))
        server = ReviewServer(Mounted("/review", ReviewApp(config))).start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"{server.url}/review/")
                _wait(page, "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
                page.screenshot(path=str(target), full_page=True)
                # The viewer on the portrait (newest, so the first card).
                page.keyboard.press("Enter")
                for name, keys in (("overlay", []), ("cutout", ["c"]), ("detail-zoom", ["o"]),
                                   ("matte-200", ["m", "1", "+"])):
                    for key in keys:
                        page.keyboard.press(key)
                    if name == "detail-zoom":  # wheel in on the top of the head, then drag it to the middle
                        page.keyboard.press("0")
                        _, matte = portrait()
                        top = int(np.argmax((matte > 128).any(axis=1)))
                        head = float(np.flatnonzero(matte[top + 10] > 128).mean())
                        box = page.locator("#stage").bounding_box()
                        scale, tx, ty = (float(page.get_attribute("#viewer", f"data-{a}")) for a in ("scale", "tx", "ty"))
                        page.mouse.move(box["x"] + tx + head * scale, box["y"] + ty + (top + 10) * scale)
                        for _ in range(6):
                            page.mouse.wheel(0, -100)
                            page.wait_for_timeout(50)
                        page.mouse.down()
                        page.mouse.move(640, 480, steps=4)
                        page.mouse.up()
                    _wait(page, TILES_LOADED)
                    shot = target.with_name(f"{target.stem}-viewer-{name}{target.suffix}")
                    page.screenshot(path=str(shot))
                    shots.append(shot)
                browser.close()
        finally:
            server.stop()
    for shot in shots:
        print(shot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
