"""How fast the review page is with 1,000 waiting 24 MP photos, and whether viewing grows memory.

Builds a quarantine tree of 1,000 entries of 24 MP JPEGs with full-size mattes: three
distinct photos made from a real portrait and a real network's matte of it (``--photo`` and
``--matte``, or the first ``portrait-*.png`` with its ``*-alpha.png`` in tests/data/photos/),
scaled up to 24 MP, mirrored, shifted in colour, each refused
through the real quarantine code (a gate strict about soft edges), then hard-linked
under 1,000 names in ten shoots, so the disk holds three photos, not a thousand. Thumbnails
are made once per distinct photo and copied to every entry's cache name (the page's figures
are "after the thumbnails exist"); one entry is left without, to time making them.

``bshmd review`` then serves the tree as its own process (its memory is what is measured),
and headless Chromium measures, side by side:

- the grid's first paint (first-contentful-paint) and all of its on-screen thumbnails loaded;
- the viewer's first image: a click on a card until the thumbnail stand-in shows and until
  the fitting level's tiles have all loaded, for entries never viewed (tiles made from the
  24 MP JPEG), for the next photo (→ in the viewer; the page asks for its tiles ahead) and
  for entries viewed before (tiles from disk);
- 100 % zoom: all on-screen full-resolution tiles loaded, never viewed vs viewed before;
- the server's resident memory (VmRSS) after viewing 10, 30 and --views entries at fit and at
  100 % (each a fresh 24 MP decode).

    .venv/bin/python bench/bench_review.py [--entries 1000] [--views 60] [--photo P --matte M]
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path, PurePosixPath

import numpy as np
import yaml
from PIL import Image

from bshmd.config import GateConfig, parse_config
from bshmd.errors import InputRejected
from bshmd.pipeline.gate import check_matte, measure_matte
from bshmd.quarantine.entries import list_entries
from bshmd.quarantine.store import quarantine_input
from bshmd.review.thumbnails import _DONE, KINDS, ThumbnailCache

REPO = Path(__file__).resolve().parents[1]
PHOTO_FOLDERS = (REPO / "tests" / "data" / "photos",)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PIXELS = 24_000_000
TILES_LOADED = ("(() => { const v = document.getElementById('viewer'); if (v.hidden || !v.dataset.level) return false;"
                " const t = Array.from(document.querySelectorAll('#plane img.tile-img[data-level=\"' + v.dataset.level + '\"]'));"
                " return t.length > 0 && t.every(i => i.dataset.loaded === '1'); })()")
BASE_SHOWN = "(() => { const b = document.querySelector('#plane img.base'); return !!b && b.complete && b.naturalWidth > 0; })()"


def portrait(photo: str | None, matte: str | None) -> tuple[Path, Path]:
    """The portrait and its matte: as given, or the first pair found in the photo folders."""
    if photo and matte:
        return Path(photo), Path(matte)
    for folder in PHOTO_FOLDERS:
        for alpha in sorted(folder.glob("portrait-*-alpha.png")):
            picture = alpha.with_name(alpha.name.split(".")[0] + ".png")
            if picture.is_file():
                return picture, alpha
    raise SystemExit(f"no portrait-*.png with its *-alpha.png matte in {', '.join(map(str, PHOTO_FOLDERS))}; "
                     "pass --photo and --matte")


def seeds(photo_path: Path, matte_path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    with Image.open(photo_path) as photo, Image.open(matte_path) as alpha:
        scale = (PIXELS / (photo.width * photo.height)) ** 0.5
        size = (round(photo.width * scale), round(photo.height * scale))
        big = np.asarray(photo.convert("RGB").resize(size, Image.Resampling.BICUBIC))
        matte = np.asarray(alpha.convert("L").resize(size, Image.Resampling.BICUBIC))
    shifted = np.clip(big.astype(np.int16) + (18, -6, -14), 0, 255).astype(np.uint8)
    return [(big, matte), (np.ascontiguousarray(big[:, ::-1]), np.ascontiguousarray(matte[:, ::-1])), (shifted, matte)]


def build(root: Path, count: int, photo: Path, matte_file: Path):  # noqa: ANN201 - Config
    for name in ("in", "out", "quarantine"):
        (root / name).mkdir()
    settings = {"folders": [{"input": str(root / "in"), "output": str(root / "out"),
                             "quarantine": str(root / "quarantine")}]}
    (root / "bshmd.yaml").write_text(yaml.safe_dump(settings))
    config = parse_config(settings, base_dir=root)
    folder = config.folders[0]
    made = []
    for index, (pixels, matte) in enumerate(seeds(photo, matte_file)):
        try:
            check_matte(matte, GateConfig(max_uncertain=measure_matte(matte)["uncertain"] / 2))
            raise SystemExit("the strict gate did not refuse the matte")
        except InputRejected as exc:
            rejection = exc
        source = root / "in" / f"seed{index}.jpg"
        Image.fromarray(pixels).save(source, "JPEG", quality=90)
        made.append(quarantine_input(folder, source, PurePosixPath(source.name), rejection, instance_id="bench",
                                     matte=matte))
    records = [json.loads(seed.with_name(seed.name + ".reason.json").read_text()) for seed in made]
    for number in range(count):
        seed, record = made[number % len(made)], records[number % len(made)]
        shoot = root / "quarantine" / f"shoot-{number * 10 // count:02d}"
        shoot.mkdir(exist_ok=True)
        name = f"IMG_{number:05d}.jpg"
        for suffix in ("", ".matte.png", ".preview.png"):
            os.link(seed.with_name(seed.name + suffix), shoot / (name + suffix))
        copy = {**record, "relpath": f"{shoot.name}/{name}", "matte": name + ".matte.png",
                "preview": name + ".preview.png",
                "time": f"2025-01-01T{number // 3600:02d}:{number // 60 % 60:02d}:{number % 60:02d}.000000Z"}
        (shoot / (name + ".reason.json")).write_text(json.dumps(copy))
    for seed in made:
        for suffix in ("", ".matte.png", ".preview.png", ".reason.json"):
            seed.with_name(seed.name + suffix).unlink()
    return config


def thumbnails_once(config) -> tuple[float, str]:  # noqa: ANN001
    """Make each distinct photo's thumbnails once, copy them to every entry's name but one."""
    cache = ThumbnailCache(config)
    entries = list_entries(config.folders)
    by_seed: dict[int, str] = {}
    source_entry = {}
    started = time.perf_counter()
    for entry in entries:
        seed = entry.path.stat().st_ino
        key = cache.key(entry)
        if seed not in by_seed:
            for kind in KINDS:
                cache.get(entry, kind)
            by_seed[seed] = key
            source_entry[seed] = entry
            continue
        if entry is entries[-1]:
            break  # left without thumbnails
        for suffix in (*(s for s, _ in KINDS.values()), _DONE):
            target = cache.cache_path(entry, key, suffix)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cache.cache_path(source_entry[seed], by_seed[seed], suffix), target)
    return (time.perf_counter() - started) * 1000, entries[-1].path.name


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait(page, script: str, timeout: float = 60) -> float:  # noqa: ANN001 - playwright Page
    """Milliseconds until ``script`` is true in the page (polled; the page's CSP forbids eval)."""
    started = time.perf_counter()
    while not page.evaluate(script):
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"timed out waiting for {script[:60]}")
        page.wait_for_timeout(5)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--views", type=int, default=60)
    parser.add_argument("--photo", help="a portrait (default: found in tests/data/photos)")
    parser.add_argument("--matte", help="a matte of --photo, same size")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        photo, matte = portrait(args.photo, args.matte)
        config = build(root, args.entries, photo, matte)
        disk = sum(p.stat().st_size for p in {p.stat().st_ino: p for p in root.rglob("*") if p.is_file()}.values())
        with Image.open(next((root / "quarantine").rglob("*.jpg"))) as sample:
            size = sample.size
        print(f"built {args.entries} entries of {size[0]}x{size[1]} JPEGs from {photo.name} "
              f"in {time.perf_counter() - started:.1f} s "
              f"({disk / 1e6:.0f} MB on disk, hard links)")
        made_ms, bare = thumbnails_once(config)
        print(f"thumbnails: made for the 3 distinct photos and copied to {args.entries - 1} entries in {made_ms:.0f} ms")
        server = subprocess.Popen([sys.executable, "-c", (
            "import sys, yaml; from bshmd.config import parse_config; from bshmd.review.server import review_command;"
            f"c = parse_config(yaml.safe_load(open({str(root / 'bshmd.yaml')!r})), base_dir={str(root)!r});"
            "sys.exit(review_command(c, host='127.0.0.1', port=int(sys.argv[1])))"), "0"],
            stdout=subprocess.PIPE, text=True)
        try:
            line = server.stdout.readline()  # "bshmd review: http://127.0.0.1:PORT/review/"
            port = int(line.rsplit(":", 1)[1].split("/")[0])
            base = f"http://127.0.0.1:{port}/review"
            print(f"server pid {server.pid}: RSS at start {rss_mib(server.pid):.0f} MiB")
            timings = []
            for _ in range(5):
                t = time.perf_counter()
                get(port, "/review/api/state")
                timings.append((time.perf_counter() - t) * 1000)
            print(f"/api/state (what an open page polls each second): median {statistics.median(timings):.1f} ms")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
                page = context.new_page()
                paints, loads = [], []
                for _ in range(3):
                    page.goto(base + "/", wait_until="commit")
                    wait(page, "document.readyState === 'complete' && Array.from(document.images)"
                               ".filter(i => i.getBoundingClientRect().top < innerHeight)"
                               ".every(i => i.complete && i.naturalWidth > 0)")
                    loads.append(page.evaluate("performance.now()"))  # since the navigation started, as the paint
                    wait(page, "performance.getEntriesByName('first-contentful-paint').length > 0")
                    paints.append(page.evaluate("performance.getEntriesByName('first-contentful-paint')[0].startTime"))
                print(f"grid (100 cards of {args.entries}): first paint median {statistics.median(paints):.0f} ms "
                      f"(runs {', '.join(f'{p:.0f}' for p in paints)}); on-screen thumbnails loaded median "
                      f"{statistics.median(loads):.0f} ms")
                print(f"server RSS after the grid: {rss_mib(server.pid):.0f} MiB")
                cold_base, cold_fit, cold_full, warm_fit, warm_full, ahead = [], [], [], [], [], []
                for index in (0, 4, 8):  # cards apart: nothing was asked for ahead
                    page.locator("article.card .tiles").nth(index).click()
                    cold_base.append(wait(page, BASE_SHOWN))
                    cold_fit.append(cold_base[-1] + wait(page, TILES_LOADED))
                    page.keyboard.press("1")
                    cold_full.append(wait(page, TILES_LOADED))
                    page.keyboard.press("Escape")
                page.locator("article.card .tiles").nth(12).click()
                wait(page, TILES_LOADED)
                for _ in range(3):  # → in the viewer: the next photo, whose tiles were asked for ahead
                    page.wait_for_timeout(1500)
                    page.keyboard.press("ArrowRight")
                    ahead.append(wait(page, TILES_LOADED))
                page.keyboard.press("Escape")
                for index in (0, 4, 8):
                    page.locator("article.card .tiles").nth(index).click()
                    warm_fit.append(wait(page, TILES_LOADED))
                    page.keyboard.press("1")
                    warm_full.append(wait(page, TILES_LOADED))
                    page.keyboard.press("Escape")
                print("viewer, never viewed (tiles made from the 24 MP JPEG): thumbnail stand-in "
                      f"{statistics.median(cold_base):.0f} ms, fitting tiles loaded {statistics.median(cold_fit):.0f} ms "
                      f"(runs {', '.join(f'{t:.0f}' for t in cold_fit)}); 100 % tiles {statistics.median(cold_full):.0f} ms")
                print(f"viewer, the next photo (→ or after an action; asked for ahead): fitting tiles "
                      f"{statistics.median(ahead):.0f} ms (runs {', '.join(f'{t:.0f}' for t in ahead)})")
                print(f"viewer, viewed before (tiles from disk): fitting tiles {statistics.median(warm_fit):.0f} ms, "
                      f"100 % tiles {statistics.median(warm_full):.0f} ms")
                browser.close()
            entries = json.loads(get(port, "/review/api/entries")[1])["entries"]
            t = time.perf_counter()
            bare_id = next(e["id"] for e in entries if e["name"].endswith(bare))
            get(port, f"/review/thumb/{bare_id}/photo")
            print(f"thumbnails of one 24 MP entry made on first request: {(time.perf_counter() - t) * 1000:.0f} ms")
            rss = [("after the browser views", rss_mib(server.pid))]
            viewed = 0
            for checkpoint in (10, 30, args.views):
                while viewed < checkpoint:
                    entry = entries[10 + viewed]["id"]
                    geometry = json.loads(get(port, f"/review/api/view/{entry}")[1])
                    across, down = (math.ceil(side / 512) for side in size)  # level 0
                    middle = ((across // 2, down // 2), (max(0, across // 2 - 1), max(0, down // 2 - 1)))
                    for level, (column, row) in ((2, (0, 0)), (2, (1, 1)), (0, middle[0]), (0, middle[1])):
                        status, _ = get(port, f"/review/tile/{entry}/overlay/{level}/{column}/{row}")
                        assert status == 200, (geometry, level, column, row)
                    viewed += 1
                rss.append((f"after {viewed} entries viewed", rss_mib(server.pid)))
            print("server RSS: " + "; ".join(f"{what} {value:.0f} MiB" for what, value in rss))
            first, last = rss[1][1], rss[-1][1]
            print(f"RSS growth from 10 to {viewed} views: {last - first:+.0f} MiB ({last / first:.2f}×)")
            tiles = [p for p in (root / "out").rglob("*") if p.is_file() and ".tiles" in p.parent.name]
            print(f"tiles on disk: {len(tiles)} files, {sum(p.stat().st_size for p in tiles) / 1e6:.0f} MB")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
