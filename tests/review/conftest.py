"""A quarantine tree made by the real quarantine code from real photos, and a served review page."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

from bshmd.config import Config, GateConfig, parse_config
from bshmd.decode.image import decode_image
from bshmd.errors import InputRejected
from bshmd.pipeline.gate import check_input, check_matte, measure_matte
from bshmd.quarantine.store import quarantine_input
from bshmd.review.app import ReviewApp
from bshmd.review.server import Mounted, ReviewServer
from bshmd.testing.segmentation import selfie_matte
from tests.support.testdata import PHOTOS, ROCKET, SELFIE_MODEL

# Debian's Chromium, driven by Playwright, for the tests of the page (CI installs it).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium per test module; each test opens its own context."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()

def _rejection(call, *args) -> InputRejected:  # noqa: ANN001 - any function that raises it
    with pytest.raises(InputRejected) as caught:
        call(*args)
    return caught.value


def _decode(path: Path) -> np.ndarray:
    return decode_image(path, max_pixels=10**8, max_file_bytes=10**9)


@pytest.fixture(scope="session")
def rocket_matte() -> np.ndarray:
    """What a real segmentation network sees in the rocket photo (no person)."""
    rgb = decode_image(ROCKET, max_pixels=10**8, max_file_bytes=10**9)
    return selfie_matte(SELFIE_MODEL, rgb)


def soft_edge_gate(matte: np.ndarray) -> GateConfig:
    """A gate stricter than the default about soft edges, so that this real matte is refused."""
    uncertain = measure_matte(matte)["uncertain"]
    assert uncertain > 0, "the matte has no soft edge at all"
    return GateConfig(max_uncertain=uncertain / 2)


@dataclass
class Tree:
    """A hot folder whose quarantine holds one entry per kind of refusal, each made for real."""

    config: Config
    root: Path

    @property
    def folder(self):  # noqa: ANN201 - FolderConfig
        return self.config.folders[0]

    @property
    def input(self) -> Path:
        return self.folder.input

    @property
    def output(self) -> Path:
        return self.folder.output

    @property
    def quarantine(self) -> Path:
        return self.folder.quarantine

    @property
    def rejected(self) -> Path:
        return self.folder.rejected_dir


def make_tree(tmp_path: Path, rocket_matte: np.ndarray, studio_png: Path, studio_matte: np.ndarray,
              **overrides: object) -> Tree:
    testdata = PHOTOS
    hot = {name: tmp_path / name for name in ("in", "out", "quarantine")}
    for path in hot.values():
        path.mkdir()
    config = parse_config({"folders": [{"input": str(hot["in"]), "output": str(hot["out"]),
                                        "quarantine": str(hot["quarantine"])}], **overrides},
                          base_dir=tmp_path)
    folder = config.folders[0]
    (hot["in"] / "shoot").mkdir()

    def place(name: str, data: bytes) -> Path:
        path = hot["in"] / "shoot" / name
        path.write_bytes(data)
        return path

    def quarantine(name: str, rejection: InputRejected, matte: np.ndarray | None = None) -> None:
        quarantine_input(folder, hot["in"] / "shoot" / name, PurePosixPath("shoot", name), rejection,
                         instance_id="test-host", matte=matte)

    # Oldest first: the page lists newest first.
    place("notes.jpg", b"call the client back about the second set\n")
    quarantine("notes.jpg", _rejection(_decode, hot["in"] / "shoot" / "notes.jpg"))
    rocket = (testdata / "no-person-rocket.jpg").read_bytes()
    place("cut-off.jpg", rocket[: len(rocket) // 2])
    quarantine("cut-off.jpg", _rejection(_decode, hot["in"] / "shoot" / "cut-off.jpg"))
    astronaut = place("astronaut.png", (testdata / "portrait-astronaut.png").read_bytes())
    rgb = _decode(astronaut)
    quarantine("astronaut.png", _rejection(check_input, rgb, GateConfig(min_input_side=1000)))
    place("rocket.jpg", rocket)
    quarantine("rocket.jpg", _rejection(check_matte, rocket_matte, GateConfig()), rocket_matte)
    shutil.copy(studio_png, hot["in"] / "shoot" / "dancer.png")
    # A real matte, refused by a gate stricter than the default about soft edges.
    quarantine("dancer.png", _rejection(check_matte, studio_matte, soft_edge_gate(studio_matte)), studio_matte)
    return Tree(config, tmp_path)


@pytest.fixture
def tree(tmp_path: Path, rocket_matte: np.ndarray, studio_png: Path, studio_matte: np.ndarray) -> Tree:
    return make_tree(tmp_path, rocket_matte, studio_png, studio_matte)


@dataclass
class Served:
    app: ReviewApp
    server: ReviewServer

    @property
    def url(self) -> str:
        return f"{self.server.url}/review"


@pytest.fixture
def served(tree: Tree) -> Iterator[Served]:
    """The review app on 127.0.0.1 (a free port) in a bshmd-review-http thread."""
    app = ReviewApp(tree.config)
    server = ReviewServer(Mounted("/review", app), "127.0.0.1", 0).start()
    try:
        yield Served(app, server)
    finally:
        server.stop()
