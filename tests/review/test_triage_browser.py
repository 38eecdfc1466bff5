"""Triage at a photographer's speed, in headless Chromium: the viewer, the keys, live updates, bulk."""

from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from PIL import Image

from bshmd.errors import InputRejected
from bshmd.pipeline.gate import check_matte
from bshmd.quarantine.store import quarantine_input

from .conftest import CHROMIUM, Served, Tree, soft_edge_gate
from .test_browser import until

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (CI installs Debian's chromium)")

NEWEST_FIRST = ["dancer.png", "rocket.jpg", "astronaut.png", "cut-off.jpg", "notes.jpg"]


@pytest.fixture
def open_page(browser, served: Served) -> Iterator[object]:  # noqa: ANN001 - playwright Browser
    contexts = []
    errors: list[str] = []

    def opener(query: str = "", *, height: int = 1400):  # noqa: ANN202 - playwright Page
        context = browser.new_context(viewport={"width": 1280, "height": height}, device_scale_factor=1)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.goto(f"{served.url}/{query}")
        return page

    yield opener
    for context in contexts:
        context.close()
    assert not errors, errors  # no script error, no CSP violation, no failed request


def names(page) -> list[str]:  # noqa: ANN001
    return [Path(n).name for n in page.eval_on_selector_all("article.card:not(.gone)", "cs => cs.map(c => c.dataset.name)")]


def current(page) -> str | None:  # noqa: ANN001
    found = page.eval_on_selector_all("article.card.current", "cs => cs.map(c => c.dataset.name)")
    return Path(found[0]).name if found else None


def add_dancer(tree: Tree, shoot: str, name: str, photo: Path, matte: np.ndarray) -> None:
    """One more real gate refusal: the portrait, its real matte, a strict soft-edge limit."""
    source = tree.input / shoot / name
    source.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(photo, source)
    with pytest.raises(InputRejected) as caught:
        check_matte(matte, soft_edge_gate(matte))
    quarantine_input(tree.folder, source, PurePosixPath(shoot, name), caught.value, instance_id="test-host", matte=matte)


def test_viewer_shows_the_matte_pixel_for_pixel_at_100_percent(open_page, tree: Tree,  # noqa: ANN001
                                                                studio_matte: np.ndarray) -> None:
    page = open_page(height=900)
    assert current(page) == "dancer.png"
    page.keyboard.press("Enter")
    until(page, lambda: page.locator("#viewer").is_visible() and page.get_attribute("#viewer", "data-mode"), "the viewer")
    assert page.get_attribute("#viewer", "data-mode") == "overlay"  # the photo with the matte over it
    page.keyboard.press("m")
    page.keyboard.press("1")
    assert page.get_attribute("#viewer", "data-scale") == "1" and page.get_attribute("#viewer", "data-level") == "0"

    def tiles_loaded() -> bool:
        states = page.eval_on_selector_all("#plane img.tile-img[data-level='0']", "ts => ts.map(t => t.dataset.loaded)")
        return bool(states) and all(s == "1" for s in states)

    until(page, tiles_loaded, "the full-resolution matte tiles")
    # The whole picture is on screen at 100 %: one request per 512-pixel tile, none of them all of it.
    matte = studio_matte
    height, width = matte.shape
    sources = page.eval_on_selector_all("#plane img.tile-img[data-level='0']", "ts => ts.map(t => t.src)")
    assert sorted(s.split("/tile/")[1].split("/", 1)[1].split("?")[0] for s in sources) == sorted(
        f"matte/0/{column}/{row}" for column in range(math.ceil(width / 512)) for row in range(math.ceil(height / 512)))
    box = page.locator("#stage").bounding_box()
    tx, ty = (int(float(page.get_attribute("#viewer", f"data-{a}"))) for a in ("tx", "ty"))
    # The edge of the person (hair, fingers): the patch of 16×16 with the most detail, so a
    # view shifted or scaled by a pixel would not match.
    soft = np.argwhere((matte > 40) & (matte < 215))
    assert len(soft), "the matte has no soft edge"
    y, x = max(((int(a), int(b)) for a, b in soft[:: max(1, len(soft) // 200)]),
               key=lambda p: np.ptp(matte[max(p[0] - 8, 0):p[0] + 8, max(p[1] - 8, 0):p[1] + 8]))
    y, x = min(max(y - 8, 0), height - 16), min(max(x - 8, 0), width - 16)
    shot = page.screenshot(clip={"x": box["x"] + tx + x, "y": box["y"] + ty + y, "width": 16, "height": 16})
    seen = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"), dtype=np.int16)
    expected = matte[y:y + 16, x:x + 16].astype(np.int16)
    assert seen.shape[:2] == expected.shape == (16, 16)
    assert np.ptp(expected) > 20  # a patch with detail, so a shifted or scaled view would not match
    assert np.abs(seen - expected[..., None]).max() <= 1, (seen[..., 0], expected)
    # Beyond 100 %: one matte pixel becomes a 2×2 square of screen pixels.
    page.keyboard.press("+")
    assert page.get_attribute("#viewer", "data-scale") == "2"
    tx, ty = (int(float(page.get_attribute("#viewer", f"data-{a}"))) for a in ("tx", "ty"))
    until(page, tiles_loaded, "the tiles at 200 %")
    px, py = box["x"] + tx + 2 * (x + 4), box["y"] + ty + 2 * (y + 4)
    if 0 <= px - box["x"] < box["width"] - 2 and 0 <= py - box["y"] < box["height"] - 2:
        shot = page.screenshot(clip={"x": px, "y": py, "width": 2, "height": 2})
        square = np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=np.int16)
        assert np.abs(square - int(matte[y + 4, x + 4])).max() <= 1
    page.keyboard.press("Escape")
    assert not page.locator("#viewer").is_visible()


def test_five_entries_triaged_by_keyboard_then_one_undone(open_page, tree: Tree) -> None:  # noqa: ANN001
    page = open_page()
    assert names(page) == NEWEST_FIRST and current(page) == "dancer.png"
    assert page.locator("#left-total").inner_text() == "5"
    # As fast as the keys come: each one acts and moves on at once, the server catches up.
    for key, name in (("a", "dancer.png"), ("x", "rocket.jpg"), ("r", "astronaut.png"), ("x", "cut-off.jpg"),
                      ("r", "notes.jpg")):
        assert current(page) == name  # acting advanced to the next entry
        page.keyboard.press(key)
    until(page, lambda: names(page) == [], "every card to leave the grid")
    until(page, lambda: page.locator("#left-total").inner_text() == "0", "the count left to reach 0")
    shoot_in, shoot_q, shoot_rej = tree.input / "shoot", tree.quarantine / "shoot", tree.rejected / "shoot"
    # Where bshmd quarantine's functions put each one.
    assert (tree.output / "shoot" / "dancer.png.cutout.png").is_file() and (shoot_in / "dancer.png").is_file()
    for name in ("rocket.jpg", "cut-off.jpg"):
        assert (shoot_rej / name).is_file()
        assert json.loads((shoot_rej / f"{name}.reason.json").read_text())["status"] == "rejected"
    assert (shoot_rej / "rocket.jpg.matte.png").is_file()
    assert (shoot_in / "astronaut.png").is_file() and (shoot_in / "notes.jpg").is_file()
    assert not any(p.name.endswith(".reason.json") for p in shoot_q.iterdir())
    statuses = sorted(json.loads(p.read_text())["status"] for p in (tree.quarantine / ".history" / "shoot").iterdir())
    assert statuses == ["accepted", "requeued", "requeued"]

    # U takes the last one back: notes.jpg leaves its hot folder and waits in quarantine again.
    page.keyboard.press("u")
    until(page, lambda: names(page) == ["notes.jpg"], "notes.jpg to come back")
    assert "Undid requeue of 1 file" in page.locator("#toast").inner_text()
    assert not (shoot_in / "notes.jpg").exists() and (shoot_q / "notes.jpg").is_file()
    record = json.loads((shoot_q / "notes.jpg.reason.json").read_text())
    assert record["status"] == "quarantined" and record["reason"] == "not_an_image"
    assert "undo of requeue" in record["history"][-1]["by"]
    assert current(page) == "notes.jpg" and page.locator("#left-total").inner_text() == "1"
    # And the one before: the rejected cut-off photo comes back from the rejected folder.
    page.keyboard.press("u")
    until(page, lambda: sorted(names(page)) == ["cut-off.jpg", "notes.jpg"], "cut-off.jpg to come back")
    assert (shoot_q / "cut-off.jpg").is_file() and not (shoot_rej / "cut-off.jpg").exists()
    assert not (shoot_rej / "cut-off.jpg.reason.json").exists()


def test_undo_of_accept_and_reject_bring_back_the_matte(open_page, tree: Tree) -> None:  # noqa: ANN001
    page = open_page()
    matte_before = (tree.quarantine / "shoot" / "dancer.png.matte.png").read_bytes()
    page.keyboard.press("a")
    until(page, lambda: "dancer.png" not in names(page), "dancer.png to be accepted")
    assert (tree.output / "shoot" / "dancer.png.cutout.png").is_file()
    page.keyboard.press("u")
    until(page, lambda: "dancer.png" in names(page), "dancer.png to come back")
    assert not (tree.output / "shoot" / "dancer.png.cutout.png").exists()  # the accepted result is taken back
    assert not (tree.input / "shoot" / "dancer.png").exists()
    record = json.loads((tree.quarantine / "shoot" / "dancer.png.reason.json").read_text())
    assert record["reason"] == "uncertain_matte" and record["matte"] == "dancer.png.matte.png"
    with Image.open(io.BytesIO(matte_before)) as before, Image.open(tree.quarantine / "shoot" / "dancer.png.matte.png") as after:
        assert np.array_equal(np.asarray(before), np.asarray(after))
    assert page.locator('article.card[data-name="shoot/dancer.png"]').get_attribute("data-matte") == "1"


def test_new_entries_and_actions_elsewhere_appear_without_reload(open_page, tree: Tree) -> None:  # noqa: ANN001
    page = open_page()
    page.locator('article.card[data-name="shoot/notes.jpg"] .pick').check()  # a click makes it current
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert current(page) == "astronaut.png"
    page.evaluate("window.__sameDocument = true")
    script = textwrap.dedent(f"""
        import shutil
        from pathlib import Path, PurePosixPath
        from bshmd.config import parse_config
        from bshmd.errors import InputRejected
        from bshmd.quarantine.store import quarantine_input
        config = parse_config({{"folders": [{{"input": {str(tree.input)!r}, "output": {str(tree.output)!r},
                                            "quarantine": {str(tree.quarantine)!r}}}]}}, base_dir=Path("/"))
        source = Path({str(tree.input)!r}) / "party" / "late.jpg"
        source.parent.mkdir()
        source.write_bytes(b"not a photo either")
        quarantine_input(config.folders[0], source, PurePosixPath("party", "late.jpg"),
                         InputRejected("not_an_image", "late.jpg: not an image"), instance_id="other-host")
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    arrived = time.monotonic()
    until(page, lambda: "late.jpg" in names(page), "the new entry on the open page", timeout=3.0)
    assert time.monotonic() - arrived < 3.0
    assert names(page)[0] == "late.jpg"  # newest first
    assert current(page) == "astronaut.png"  # the reviewer's place is kept
    assert page.locator('article.card[data-name="shoot/notes.jpg"] .pick').is_checked()
    assert page.evaluate("window.__sameDocument") is True  # merged, not reloaded
    left = dict(zip(page.locator("#left li .shoot").all_inner_texts(), page.locator("#left li .count").all_inner_texts(),
                    strict=True))
    assert left == {"party": "1", "shoot": "5"} and page.locator("#left-total").inner_text() == "6"
    # An action taken elsewhere (here: the quarantine module, as the CLI calls it) shows too.
    from bshmd.quarantine.actions import reject
    from bshmd.quarantine.entries import find_entry

    reject(find_entry(tree.config.folders, tree.quarantine / "shoot" / "rocket.jpg"), by="cli")
    until(page, lambda: "rocket.jpg" not in names(page), "the rejected entry to leave the open page", timeout=3.0)
    assert current(page) == "astronaut.png"


def test_bulk_accept_of_one_reason_in_one_shoot(open_page, tree: Tree, studio_png: Path,  # noqa: ANN001
                                                 studio_matte: np.ndarray) -> None:
    add_dancer(tree, "wedding", "first-dance.png", studio_png, studio_matte)
    add_dancer(tree, "wedding", "last-dance.png", studio_png, studio_matte)
    page = open_page("?shoot=wedding&reason=uncertain_matte")
    assert sorted(names(page)) == ["first-dance.png", "last-dance.png"]
    messages: list[str] = []

    def answer(dialog) -> None:  # noqa: ANN001
        messages.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    page.locator('button[data-all="accept"]').click()
    until(page, lambda: names(page) == [], "both wedding entries to be accepted")
    assert messages == ["Accept all 2 photos of Unclear outline in wedding?"]
    for name in ("first-dance.png", "last-dance.png"):
        assert (tree.output / "wedding" / f"{name}.cutout.png").is_file()
        assert not (tree.quarantine / "wedding" / f"{name}.reason.json").exists()
    # The same reason in the other shoot is untouched.
    assert json.loads((tree.quarantine / "shoot" / "dancer.png.reason.json").read_text())["status"] == "quarantined"
    assert not (tree.output / "shoot" / "dancer.png.cutout.png").exists()
    assert "Accepted 2 files" in page.locator("#toast").inner_text()


def test_acting_in_the_viewer_shows_the_next_photo(open_page, tree: Tree) -> None:  # noqa: ANN001
    page = open_page(height=900)
    page.keyboard.press("?")
    assert page.locator("#help").is_visible() and "undo the last action" in page.locator("#help").inner_text()
    page.keyboard.press("Escape")
    assert not page.locator("#help").is_visible()
    page.locator('article.card[data-name="shoot/rocket.jpg"] .tiles').click()  # a click opens the viewer too
    until(page, lambda: page.get_attribute("#viewer", "data-mode") is not None, "the viewer")
    assert "rocket.jpg" in page.locator("#viewer-name").inner_text()
    page.keyboard.press("x")
    until(page, lambda: "astronaut.png" in page.locator("#viewer-name").inner_text(), "the next photo in the viewer")
    assert (tree.rejected / "shoot" / "rocket.jpg").is_file()
    assert page.get_attribute("#viewer", "data-mode") == "photo"  # no matte kept for this one
    page.keyboard.press("ArrowRight")  # the photo cut off mid-copy: shown as far as it arrived
    until(page, lambda: "cut-off.jpg" in page.locator("#viewer-name").inner_text(), "the cut-off photo")
    until(page, lambda: page.eval_on_selector_all("#plane img.tile-img", "ts => ts.length > 0 && "
                                                  "ts.every(t => t.dataset.loaded === '1')"), "its tiles")
    page.keyboard.press("ArrowRight")
    until(page, lambda: "no preview" in page.locator("#plane").inner_text(), "the note that is not a picture")
    page.keyboard.press("Escape")
    assert current(page) == "notes.jpg"


def test_the_viewer_asks_for_the_next_photo_ahead(open_page, served: Served, tree: Tree) -> None:  # noqa: ANN001
    from bshmd.quarantine.entries import find_entry

    rocket = find_entry(tree.config.folders, tree.quarantine / "shoot" / "rocket.jpg")
    tiles = served.app.tiles.tile_dir(rocket, served.app.thumbnails.key(rocket))
    page = open_page(height=900)
    # The tiles asked for and not answered yet: the look-ahead asks for all of the next photo's
    # at once, and a tile is on disk before its answer, so none pending means all are made.
    pending: set[str] = set()
    page.on("request", lambda r: pending.add(r.url) if "/tile/" in r.url else None)
    page.on("requestfinished", lambda r: pending.discard(r.url))
    page.on("requestfailed", lambda r: pending.discard(r.url))
    page.keyboard.press("Enter")  # the dancer; the rocket comes next
    until(page, lambda: tiles.is_dir() and any(tiles.iterdir()) and not pending,
          "the next photo's tiles to be made ahead")
    made = sorted(p.name for p in tiles.iterdir())
    assert all(name.startswith("overlay-") for name in made), made  # in the mode being looked at
    page.keyboard.press("ArrowRight")
    until(page, lambda: "rocket.jpg" in page.locator("#viewer-name").inner_text(), "the rocket in the viewer")
    until(page, lambda: page.eval_on_selector_all("#plane img.tile-img", "ts => ts.length > 0 && "
                                                  "ts.every(t => t.dataset.loaded === '1')"), "its tiles")
    assert sorted(p.name for p in tiles.iterdir()) == made  # shown from what was made ahead
