"""Accepting from the review page writes what the pipeline writes: one way a result comes to exist.

The same photo, with the same XMP sidecar and mtime, goes through a real Pipeline twice, on
the stand-in engine: once under a gate that lets it pass (results written), once under a gate
that refuses it (quarantined with its matte). The quarantined one is then accepted through the
review page's HTTP route, as the browser does. Both trees must end the same: byte-identical
results stamped with the input's mtime, the input and its sidecar in the done folder.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bshmd.config import Config, parse_config
from bshmd.outputs.files import output_paths
from bshmd.review.app import ReviewApp
from bshmd.review.server import Mounted, ReviewServer
from tests.outputs.test_studio_outputs import process

from .conftest import Served
from .test_app import entries, post_action

FORMATS = ["cutout", "alpha", "composite", "tiff", "psd"]
MTIME_NS = 1_700_000_000_123_456_789
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator><rdf:Seq>'
       b"<rdf:li>Ann Sidecar</rdf:li></rdf:Seq></dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>")


def hot_tree(root: Path, studio_png: Path, gate: dict[str, Any], on_success: str = "move") -> tuple[Config, Path]:
    """A hot folder holding the photo (and its sidecar) at a fixed mtime, results moved to done."""
    for sub in ("in", "out", "quarantine"):
        (root / sub).mkdir(parents=True)
    photo = root / "in" / "portrait.jpg"
    with Image.open(studio_png) as image:
        image.convert("RGB").save(photo, quality=92)
    (root / "in" / "portrait.jpg.xmp").write_bytes(XMP)
    os.utime(photo, ns=(MTIME_NS, MTIME_NS))
    config = parse_config({
        "folders": [{"input": "in", "output": "out", "quarantine": "quarantine"}],
        "batch": {"max_size": 1, "max_wait_ms": 10},
        "gate": gate,
        "outputs": {"formats": FORMATS},
        "on_success": on_success,
    }, base_dir=root)
    return config, photo


@pytest.fixture
def served_b(tmp_path: Path, studio_png: Path, engine: Any) -> Iterator[tuple[Config, Served]]:
    # A gate no matte passes: the photo goes to quarantine with its matte.
    config, photo = hot_tree(tmp_path / "b", studio_png, {"min_foreground": 0.95, "max_foreground": 1.0})
    (outcome,) = process(config, engine, [photo]).values()
    assert outcome.startswith("quarantined:"), outcome
    app = ReviewApp(config)
    server = ReviewServer(Mounted("/review", app), "127.0.0.1", 0).start()
    try:
        yield config, Served(app, server)
    finally:
        server.stop()


def test_accept_on_the_page_writes_the_pipelines_results_byte_for_byte(tmp_path: Path, studio_png: Path,
                                                                       engine: Any, served_b) -> None:  # noqa: ANN001
    config_b, served = served_b
    # The same photo under a gate that passes everything: the pipeline writes its results.
    config_a, photo_a = hot_tree(tmp_path / "a", studio_png,
                                 {"min_foreground": 0.0, "max_foreground": 1.0, "max_uncertain": 1.0})
    assert process(config_a, engine, [photo_a]) == {photo_a: "processed"}

    found = entries(served)
    assert set(found) == {"portrait.jpg"} and found["portrait.jpg"]["has_matte"] is True
    status, reply = post_action(served, "accept", [found["portrait.jpg"]["id"]])
    assert status == 200 and reply["results"][0]["ok"] is True, reply
    assert entries(served) == {}

    folder_a, folder_b = config_a.folders[0], config_b.folders[0]
    results_a = output_paths(folder_a.output, Path("portrait.jpg"), config_a.outputs)
    results_b = output_paths(folder_b.output, Path("portrait.jpg"), config_b.outputs)
    assert set(results_a) == set(FORMATS)
    for fmt in FORMATS:
        assert results_b[fmt].read_bytes() == results_a[fmt].read_bytes(), fmt
        # Stamped with the input's mtime: a later holder of the claim sees them as this input's results.
        assert results_a[fmt].stat().st_mtime_ns == results_b[fmt].stat().st_mtime_ns == MTIME_NS, fmt
        assert results_a[fmt].stat().st_mode == results_b[fmt].stat().st_mode, fmt
    # The sidecar's XMP went into the results of both (the same bytes, so once is enough).
    assert b"Ann Sidecar" in results_b["tiff"].read_bytes()
    # on_success: move, for both: the input and its XMP sidecar are in the done folder, unchanged.
    for root, folder in ((tmp_path / "a", folder_a), (tmp_path / "b", folder_b)):
        assert sorted(os.listdir(root / "in")) == [], root
        assert sorted(os.listdir(folder.done_dir)) == ["portrait.jpg", "portrait.jpg.xmp"], root
        assert (folder.done_dir / "portrait.jpg").stat().st_mtime_ns == MTIME_NS
        assert (folder.done_dir / "portrait.jpg.xmp").read_bytes() == XMP
    assert (folder_a.done_dir / "portrait.jpg").read_bytes() == (folder_b.done_dir / "portrait.jpg").read_bytes()
    # Nothing is left in the quarantine but its history.
    assert sorted(os.listdir(folder_b.quarantine)) == [".history"]
    # The matte that was refused is the matte that was accepted.
    with Image.open(results_b["alpha"]) as alpha_b, Image.open(results_a["alpha"]) as alpha_a:
        np.testing.assert_array_equal(np.asarray(alpha_b), np.asarray(alpha_a))


def test_accept_with_on_success_keep_returns_the_photo_and_its_sidecar(tmp_path: Path, studio_png: Path,
                                                                       engine: Any) -> None:
    from bshmd.quarantine.actions import accept
    from bshmd.quarantine.entries import list_entries

    config, photo = hot_tree(tmp_path, studio_png, {"min_foreground": 0.95, "max_foreground": 1.0}, "keep")
    assert process(config, engine, [photo])[photo].startswith("quarantined:")
    [entry] = list_entries(config.folders)
    accepted = accept(entry, config, by="tester")
    assert accepted.input == photo
    assert sorted(os.listdir(tmp_path / "in")) == ["portrait.jpg", "portrait.jpg.xmp"]
    assert photo.stat().st_mtime_ns == MTIME_NS
    assert all(path.stat().st_mtime_ns == MTIME_NS for path in accepted.outputs)
    shutil.rmtree(tmp_path / "quarantine" / ".history")
    assert os.listdir(tmp_path / "quarantine") == []
