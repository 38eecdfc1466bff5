"""How fast the quarantine review page is with 1,000 waiting entries.

Builds a quarantine tree of 1,000 entries (a real portrait with a real network's matte, from tests/data,
refused through the real quarantine code, then copied under 1,000 names with their records),
serves the review app on a real socket and prints:

- the grid page (100 cards of 1,000) on the first request of a fresh app and after;
- the grid page in headless Chromium until every thumbnail on it has loaded, with the
  thumbnails not yet made (cold) and again once they are cached on disk;
- one thumbnail request when it must be made, and when it is read from the cache.

    .venv/bin/python bench/bench_review.py [--entries 1000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from bshmd.config import GateConfig, parse_config
from bshmd.errors import InputRejected
from bshmd.pipeline.gate import check_matte
from bshmd.pipeline.quarantine import quarantine_input
from bshmd.review.app import ReviewApp
from bshmd.review.server import Mounted, ReviewServer

PHOTOS = Path(__file__).resolve().parents[1] / "tests" / "data" / "photos"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def build(root: Path, count: int):  # noqa: ANN201 - Config
    for name in ("in", "out", "quarantine"):
        (root / name).mkdir()
    config = parse_config({"folders": [{"input": "in", "output": "out", "quarantine": "quarantine"}]}, base_dir=root)
    folder = config.folders[0]
    with Image.open(PHOTOS / "portrait-hopper.selfie-alpha.png") as image:
        matte = np.asarray(image.convert("L"), dtype=np.uint8).copy()
    try:
        check_matte(matte, GateConfig(max_uncertain=0.005))
        raise SystemExit("the strict gate did not refuse the studio matte")
    except InputRejected as exc:
        rejection = exc
    shutil.copy(PHOTOS / "portrait-hopper.png", root / "in" / "seed.png")
    seed = quarantine_input(folder, root / "in" / "seed.png", PurePosixPath("seed.png"), rejection,
                            instance_id="bench", matte=matte)
    record = json.loads(seed.with_name("seed.png.reason.json").read_text())
    for number in range(count - 1):
        shoot = root / "quarantine" / f"shoot-{number // 100:02d}"
        shoot.mkdir(exist_ok=True)
        name = f"IMG_{number:05d}.png"
        for suffix in ("", ".matte.png", ".preview.png"):
            shutil.copy(seed.with_name("seed.png" + suffix), shoot / (name + suffix))
        copy = {**record, "relpath": f"{shoot.name}/{name}", "matte": name + ".matte.png",
                "preview": name + ".preview.png", "time": f"2025-01-01T00:{number // 60 % 60:02d}:{number % 60:02d}.000000Z"}
        (shoot / (name + ".reason.json")).write_text(json.dumps(copy))
    return config


def get(url: str, path: str) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def timed(call) -> float:  # noqa: ANN001
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def browser_load(url: str) -> float:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        start = time.perf_counter()
        page.goto(url)
        # Scroll through the page so every lazy image is asked for, then wait for all of them.
        height = page.evaluate("document.body.scrollHeight")
        for y in range(0, height + 900, 600):
            page.evaluate(f"window.scrollTo(0, {y})")
        while not page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"):
            page.wait_for_timeout(20)
        elapsed = (time.perf_counter() - start) * 1000
        browser.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        config = build(Path(tmp), args.entries)
        print(f"built {args.entries} entries in {time.perf_counter() - started:.1f} s")
        app = ReviewApp(config)
        server = ReviewServer(Mounted("/review", app)).start()
        try:
            first = timed(lambda: get(server.url, "/review/"))
            warm = [timed(lambda: get(server.url, "/review/")) for _ in range(10)]
            status, body = get(server.url, "/review/")
            cards = body.count(b'class="card"')
            print(f"grid page, {cards} cards of {args.entries}, {len(body) / 1000:.0f} kB: "
                  f"first request {first:.0f} ms, then median {statistics.median(warm):.0f} ms "
                  f"(min {min(warm):.0f}, max {max(warm):.0f})")
            reasons = timed(lambda: get(server.url, "/review/?reason=uncertain_matte&page=5"))
            print(f"grid page filtered by reason, page 5: {reasons:.0f} ms")
            cold = browser_load(server.url + "/review/")
            print(f"browser, thumbnails not yet made: page + {app.thumbnails.generated} entries' thumbnails "
                  f"loaded in {cold:.0f} ms")
            made = app.thumbnails.generated
            cached = browser_load(server.url + "/review/")
            print(f"browser, thumbnails cached on disk: page + all thumbnails loaded in {cached:.0f} ms "
                  f"(made {app.thumbnails.generated - made} more)")
            entries = json.loads(get(server.url, "/review/api/entries")[1])["entries"]
            fresh = entries[-1]["id"]
            make = timed(lambda: get(server.url, f"/review/thumb/{fresh}/photo"))
            reread = [timed(lambda: get(server.url, f"/review/thumb/{fresh}/cutout")) for _ in range(20)]
            print(f"one entry's thumbnails made (948x533 photo + matte): {make:.0f} ms; "
                  f"a cached thumbnail served: median {statistics.median(reread):.1f} ms")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
