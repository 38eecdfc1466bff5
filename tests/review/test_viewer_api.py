"""The viewer's tiles, the polled listing, bulk and undo, over real HTTP on a real quarantine tree."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from PIL import Image

from bshmd.errors import InputRejected
from bshmd.ledger import open_ledger
from bshmd.ledger.keys import FileKey
from bshmd.ledger.share import ensure_marker
from bshmd.ledger.store import Taken
from bshmd.quarantine.store import quarantine_input
from bshmd.review.tiles import TILE

from .conftest import Served, Tree
from .test_app import entries, post_action, request


def image(served: Served, path: str) -> Image.Image:
    status, _, body = request(served.server.url, path)
    assert status == 200, (path, status, body[:200])
    picture = Image.open(io.BytesIO(body))
    picture.load()
    return picture


def tiles_of(served: Served, entry: str, kind: str, level: int, width: int, height: int) -> np.ndarray:
    """One level of one kind, put together from its tiles (each at most TILE on a side)."""
    scale = 1 << level
    width, height = math.ceil(width / scale), math.ceil(height / scale)
    whole = None
    for row in range(math.ceil(height / TILE)):
        for column in range(math.ceil(width / TILE)):
            tile = image(served, f"/review/tile/{entry}/{kind}/{level}/{column}/{row}")
            assert max(tile.size) <= TILE
            pixels = np.asarray(tile)
            if whole is None:
                whole = np.zeros((height, width, *pixels.shape[2:]), dtype=np.uint8)
            whole[row * TILE:row * TILE + tile.height, column * TILE:column * TILE + tile.width] = pixels
    assert whole is not None
    return whole


def test_tiles_rebuild_the_full_resolution_matte_exactly(served: Served, tree: Tree, studio_png: Path,
                                                         studio_matte: np.ndarray) -> None:
    dancer = entries(served)["dancer.png"]["id"]
    status, _, body = request(served.server.url, f"/review/api/view/{dancer}")
    geometry = json.loads(body)
    height, width = studio_matte.shape
    assert status == 200 and (geometry["width"], geometry["height"]) == (width, height)
    assert geometry["tile"] == TILE and geometry["has_matte"] and geometry["has_photo"]
    # The top level fits one tile, the one below it does not.
    levels = geometry["levels"]
    assert math.ceil(max(width, height) / 2 ** (levels - 1)) <= TILE
    assert levels == 1 or math.ceil(max(width, height) / 2 ** (levels - 2)) > TILE
    with Image.open(studio_png) as opened:
        photo = np.asarray(opened.convert("RGB"))
    assert image(served, f"/review/tile/{dancer}/matte/0/0/0").format == "PNG"
    rebuilt = tiles_of(served, dancer, "matte", 0, width, height)
    assert np.array_equal(rebuilt, studio_matte)  # lossless, full resolution, nothing shifted
    shown = tiles_of(served, dancer, "photo", 0, width, height).astype(int)
    assert np.abs(shown - photo).mean() < 3  # JPEG, at full resolution
    cutout = tiles_of(served, dancer, "cutout", 0, width, height)
    assert cutout.shape == (height, width, 4) and np.abs(cutout[..., 3].astype(int) - studio_matte).max() <= 2
    overlay = tiles_of(served, dancer, "overlay", 0, width, height).astype(int)
    removed, kept = studio_matte < 3, studio_matte > 252
    assert removed.sum() > 1000 and kept.sum() > 1000
    redder = overlay[..., 0] - overlay[..., 1] - (photo[..., 0].astype(int) - photo[..., 1])
    assert redder[removed].mean() > 40 and abs(redder[kept].mean()) < 5  # the tint is on what the matte removes
    if levels > 1:  # level 1: half size, a box average of the matte
        half = tiles_of(served, dancer, "matte", 1, width, height)
        assert np.array_equal(half, np.asarray(Image.fromarray(studio_matte).reduce(2)))


def test_tiles_are_made_once_kept_on_disk_and_dropped_with_the_entry(served: Served, tree: Tree) -> None:
    dancer = entries(served)["dancer.png"]["id"]
    first = request(served.server.url, f"/review/tile/{dancer}/photo/0/0/0")[2]
    made, decoded = served.app.tiles.made, served.app.tiles.decoded
    assert made == 1 and decoded == 1
    assert request(served.server.url, f"/review/tile/{dancer}/matte/0/0/0")[0] == 200
    assert served.app.tiles.decoded == 1  # the level's pixels stayed in memory
    assert request(served.server.url, f"/review/tile/{dancer}/photo/0/0/0")[2] == first
    assert served.app.tiles.made == 2
    tiles = list((tree.output / ".bshmd").rglob("*.tiles"))
    assert len(tiles) == 1 and sorted(p.name for p in tiles[0].iterdir()) == ["matte-0-0-0.png", "photo-0-0-0.jpg"]
    status, results = post_action(served, "reject", [dancer])
    assert status == 200 and results["results"][0]["ok"]
    assert not tiles[0].exists()


@pytest.mark.parametrize("rest", ["photo/2/0/0", "photo/0/2/0", "photo/0/0/2", "photo/-1/0/0", "photo/0/0",
                                  "photo/0/0/0/0", "raw/0/0/0", "photo/a/0/0", "photo/00000001/0/0"])
def test_tiles_outside_the_picture_are_not_found(served: Served, rest: str) -> None:
    dancer = entries(served)["dancer.png"]["id"]
    assert request(served.server.url, f"/review/tile/{dancer}/{rest}")[0] == 404


def test_entries_without_pixels_have_no_tiles(served: Served) -> None:
    found = entries(served)
    for name, kind in (("notes.jpg", "photo"), ("astronaut.png", "matte"), ("astronaut.png", "overlay")):
        assert request(served.server.url, f"/review/tile/{found[name]['id']}/{kind}/0/0/0")[0] == 404, name
    status, _, body = request(served.server.url, f"/review/api/view/{found['notes.jpg']['id']}")
    assert status == 200 and json.loads(body)["width"] == 0
    assert request(served.server.url, "/review/api/view/0-Li4vLi4vZXRj")[0] == 404
    assert request(served.server.url, "/review/tile/0-Li4vLi4vZXRj/photo/0/0/0")[0] == 404


def test_turned_photos_are_tiled_as_shown(served: Served, tree: Tree) -> None:
    """A JPEG stored landscape with EXIF orientation 6 is shown portrait, matte and tiles alike."""
    stored = np.zeros((400, 600, 3), dtype=np.uint8)
    stored[:, :300] = (250, 20, 20)  # the left half red as stored: the top half once turned
    exif = Image.Exif()
    exif[0x0112] = 6
    source = tree.input / "shoot" / "turned.jpg"
    Image.fromarray(stored).save(source, "JPEG", quality=95, exif=exif)
    matte = np.zeros((600, 400), dtype=np.uint8)
    matte[100:500, 100:300] = 255
    quarantine_input(tree.folder, source, PurePosixPath("shoot", "turned.jpg"),
                     InputRejected("no_subject", "test", {"foreground": 0.3}), instance_id="test", matte=matte)
    turned = entries(served)["turned.jpg"]["id"]
    geometry = json.loads(request(served.server.url, f"/review/api/view/{turned}")[2])
    assert (geometry["width"], geometry["height"]) == (400, 600)
    tile = np.asarray(image(served, f"/review/tile/{turned}/photo/0/0/0"), dtype=int)
    assert tile.shape == (512, 400, 3)
    assert tile[50, 200, 0] > 200 and tile[450, 200, 0] < 60  # red on top, as the camera meant it
    assert np.array_equal(np.asarray(image(served, f"/review/tile/{turned}/matte/0/0/1")), matte[512:])


def test_memory_for_decoded_levels_stays_within_its_budget(served: Served, tree: Tree, studio_png: Path,
                                                          studio_matte: np.ndarray) -> None:
    served.app.tiles.memory_pixels = studio_matte.size * 2  # one level 0 (photo and matte) at a time
    photo_bytes = studio_png.read_bytes()
    matte = studio_matte
    for index in range(3):
        source = tree.input / "shoot" / f"copy{index}.png"
        source.write_bytes(photo_bytes)
        quarantine_input(tree.folder, source, PurePosixPath("shoot", source.name),
                         InputRejected("uncertain_matte", "test"), instance_id="test", matte=matte)
    for index in range(3):
        copy = entries(served)[f"copy{index}.png"]["id"]
        image(served, f"/review/tile/{copy}/cutout/0/0/0")
        kept = served.app.tiles._levels  # noqa: SLF001 - the budget is what this test checks
        assert sum(level.pixels for level in kept.values()) <= served.app.tiles.memory_pixels
    assert served.app.tiles.decoded == 3


def test_the_polled_state_reads_records_only_when_something_changed(served: Served, tree: Tree) -> None:
    def state() -> dict:
        status, headers, body = request(served.server.url, "/review/api/state")
        assert status == 200 and headers["cache-control"] == "no-store"
        return json.loads(body)

    first = state()
    assert first["total"] == 5 and first["shoots"] == [{"folder": 0, "shoot": "shoot", "left": 5}]
    reads = served.app.waiting.reads
    for _ in range(5):
        assert state()["version"] == first["version"]
    assert served.app.waiting.reads == reads
    source = tree.input / "late" / "x.jpg"
    source.parent.mkdir()
    source.write_bytes(b"text")
    quarantine_input(tree.folder, source, PurePosixPath("late", "x.jpg"), InputRejected("not_an_image", "no"),
                     instance_id="other")
    second = state()
    assert second["version"] != first["version"] and second["total"] == 6
    assert second["shoots"] == [{"folder": 0, "shoot": "late", "left": 1}, {"folder": 0, "shoot": "shoot", "left": 5}]
    # A record rewritten in place (same name) changes the version too.
    record_file = tree.quarantine / "late" / "x.jpg.reason.json"
    record = json.loads(record_file.read_text())
    record["reason"] = "corrupt"
    record_file.write_text(json.dumps(record, indent=2))
    assert state()["version"] != second["version"]
    assert entries(served)["x.jpg"]["reason"] == "corrupt"


def test_bulk_acts_only_when_the_confirmed_count_still_matches(served: Served, tree: Tree) -> None:
    wanted = {"folder": 0, "shoot": "shoot", "reason": "truncated"}
    status, body = post_action_body(served, {"action": "reject", "filter": wanted, "count": 2})
    assert status == 409 and body["count"] == 1
    assert (tree.quarantine / "shoot" / "cut-off.jpg").is_file()  # nothing was changed
    status, body = post_action_body(served, {"action": "reject", "filter": wanted, "count": 1})
    assert status == 200 and [r["ok"] for r in body["results"]] == [True]
    assert (tree.rejected / "shoot" / "cut-off.jpg").is_file()
    status, body = post_action_body(served, {"action": "reject", "filter": {"reason": 3}, "count": 1})
    assert status == 400


def post_action_body(served: Served, body: dict) -> tuple[int, dict]:
    origin = served.server.url
    status, _, reply = request(origin, "/review/api/actions", method="POST", body=json.dumps(body).encode(),
                               headers={"Content-Type": "application/json", "Origin": origin})
    return status, json.loads(reply)


def test_undo_is_refused_once_another_instance_took_the_requeued_file(served: Served, tree: Tree) -> None:
    astronaut = entries(served)["astronaut.png"]["id"]
    status, body = post_action(served, "requeue", [astronaut])
    token = body["results"][0]["undo"]
    back = tree.input / "shoot" / "astronaut.png"
    assert back.is_file()
    # A daemon picks it up before the reviewer changes their mind.
    daemon = open_ledger(tree.config, "daemon-1")
    folder_id = ensure_marker(daemon, tree.input, tree.output).folder
    key = FileKey.of(tree.input, back)
    (claim,) = daemon.claim(folder_id, [key], 60.0)
    assert isinstance(claim, Taken)
    try:
        status, body = post_action(served, "undo", [token])
        assert status == 200 and body["results"][0]["ok"] is False
        assert "already being processed" in body["results"][0]["message"]
        assert back.is_file() and not (tree.quarantine / "shoot" / "astronaut.png").exists()
    finally:
        daemon.drop(folder_id, key, claim.epoch)
        daemon.close()
    status, body = post_action(served, "undo", [token])
    assert body["results"][0]["ok"] is False and "nothing to undo" in body["results"][0]["message"]
    status, body = post_action(served, "undo", ["made-up"])
    assert status == 200 and body["results"][0]["ok"] is False
    assert not Path(tree.folder.state_dir / "review-undo").exists() or not any(
        (tree.folder.state_dir / "review-undo").rglob("*.png"))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_turned_as_pillow_turns_it(orientation: int) -> None:
    from PIL import ImageOps

    from bshmd.review.tiles import TileCache

    pixels = np.random.default_rng(orientation).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    encoded = io.BytesIO()
    Image.fromarray(pixels).save(encoded, "PNG", exif=exif)
    with Image.open(io.BytesIO(encoded.getvalue())) as opened:
        expected = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
    got = TileCache._decode_photo_from(io.BytesIO(encoded.getvalue()), (expected.shape[1], expected.shape[0]))  # noqa: SLF001
    assert np.array_equal(got, expected)


def test_the_viewer_and_the_polled_state_follow_the_same_access_rules(tree: Tree) -> None:
    from bshmd.review.app import ReviewApp
    from bshmd.review.server import Mounted, ReviewServer

    token = "a-review-token-of-some-length"
    config = tree.config.model_copy(update={"http": tree.config.http.model_copy(update={"token": token})})
    app = ReviewApp(config)
    server = ReviewServer(Mounted("/review", app)).start()
    try:
        served = Served(app, server)
        bearer = {"Authorization": f"Bearer {token}"}
        dancer = entries(served, bearer)["dancer.png"]["id"]
        for path in ("/review/api/state", f"/review/api/view/{dancer}", f"/review/tile/{dancer}/matte/0/0/0"):
            assert request(server.url, path)[0] == 401, path
            assert request(server.url, path, headers=bearer)[0] == 200, path
        # Undo and bulk are actions: same-origin JSON or the bearer token, as the others.
        undo = json.dumps({"action": "undo", "ids": ["x"]}).encode()
        bulk = json.dumps({"action": "reject", "filter": {"reason": "truncated"}, "count": 1}).encode()
        for body in (undo, bulk):
            status = request(server.url, "/review/api/actions", method="POST", body=body,
                             headers={"Content-Type": "application/json", "Cookie": "bshmd_review=x"})[0]
            assert status == 401
            status = request(server.url, "/review/api/actions", method="POST", body=body,
                             headers={"Content-Type": "text/plain", **bearer})[0]
            assert status == 403
        assert (tree.quarantine / "shoot" / "cut-off.jpg").is_file()
    finally:
        server.stop()
    # Without a token: loopback names only, whatever the route.
    app = ReviewApp(tree.config)
    server = ReviewServer(Mounted("/review", app)).start()
    try:
        for path in ("/review/api/state", "/review/tile/0-x/matte/0/0/0"):
            assert request(server.url, path, headers={"Host": "attacker.example:80"})[0] == 421
    finally:
        server.stop()
