"""Camera RAW (a DNG built with pidng), HEIC (encoded with pillow-heif), RAW+JPEG pairs, XMP
sidecars and unknown picture extensions, through the real ingest and pipeline."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from bshmd.decode.heif import icc_profile, register_opener
from bshmd.decode.sidecar import read_sidecar_xmp
from bshmd.testing.images import synthetic_portrait
from tests.nas.conftest import HotFolder, files_under, nas_config
from tests.nas.images import photo_bytes
from tests.nas.raw import write_dng
from tests.support.waiting import wait_until

XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>'


@pytest.fixture
def local(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """A hot folder on the local disk: here the formats matter, not the mount."""
    folders = {name: tmp_path / name for name in ("in", "out", "quarantine")}
    for path in folders.values():
        path.mkdir()
    yield {"backing": folders["in"], "mount": folders["in"], "out": folders["out"],
           "quarantine": folders["quarantine"]}


def results(out: Path) -> list[str]:
    return [name for name in files_under(out) if not name.startswith(".bshmd/")]


def settle_all(hot: HotFolder, *relpaths: str) -> None:
    for relpath in relpaths:
        wait_until(lambda relpath=relpath: hot.finished(relpath), 60, f"{relpath} to be finished")
    since = time.time()
    wait_until(lambda: hot.ingestor.health()["last_rescan"] > since, 20, "a full rescan")


def cutout_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.mode == "RGBA"
        return image.size


def heic_bytes(width: int, height: int, icc: bytes | None = None) -> bytes:
    assert register_opener()
    buffer = io.BytesIO()
    Image.fromarray(synthetic_portrait(width, height, 2)).save(buffer, "HEIF", quality=90,
                                                                   **({"icc_profile": icc} if icc else {}))
    return buffer.getvalue()


def test_a_dng_and_a_heic_come_out_as_cutouts_of_the_right_size(local, engine):
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    write_dng(local["backing"] / "tethered.dng", synthetic_portrait(200, 120, 1))
    write_dng(local["backing"] / "turned.DNG", synthetic_portrait(200, 120, 4), orientation=6)
    (local["backing"] / "phone.HEIC").write_bytes(heic_bytes(180, 240, icc=srgb))
    with HotFolder(nas_config(local), engine) as hot:
        settle_all(hot, "tethered.dng", "turned.DNG", "phone.HEIC")
        outcomes = {relpath: outcome for relpath, outcome in hot.outcomes}
    assert outcomes == {"tethered.dng": "processed", "turned.DNG": "processed", "phone.HEIC": "processed"}
    assert cutout_size(local["out"] / "tethered.dng.cutout.png") == (200, 120)
    assert cutout_size(local["out"] / "turned.DNG.cutout.png") == (120, 200)  # the camera's orientation
    assert cutout_size(local["out"] / "phone.HEIC.cutout.png") == (180, 240)
    assert files_under(local["quarantine"]) == []
    with Image.open(local["backing"] / "phone.HEIC") as heic:  # the profile stays readable for outputs
        assert icc_profile(heic) == srgb


@pytest.mark.parametrize(("raw_pairs", "expected"), [
    ("jpeg", ["IMG_0001.JPG.cutout.png"]),
    ("raw", ["IMG_0001.CR2.cutout.png"]),
    ("both", ["IMG_0001.CR2.cutout.png", "IMG_0001.JPG.cutout.png"]),
])
def test_a_raw_and_jpeg_pair_gives_one_set_of_results(local, engine, raw_pairs, expected):
    # A CR2 is a TIFF-based RAW like DNG; LibRaw reads either by content.
    write_dng(local["backing"] / "IMG_0001.CR2", synthetic_portrait(160, 120, 1))
    (local["backing"] / "IMG_0001.JPG").write_bytes(photo_bytes(160, 120, "JPEG", seed=1))
    with HotFolder(nas_config(local, raw_pairs=raw_pairs), engine) as hot:
        settle_all(hot, *(name.removesuffix(".cutout.png") for name in expected))
        seen = sorted(relpath for relpath, _ in hot.outcomes)
        rows = {row.relpath: (row.state, row.outcome, row.reason) for row in hot.ingestor.ledger.jobs()}
    assert results(local["out"]) == expected
    assert seen == [name.removesuffix(".cutout.png") for name in expected]
    # The half left alone is done in the ledger as skipped, so no instance takes it up later.
    processed = {name.removesuffix(".cutout.png") for name in expected}
    assert rows == {name: ("done", "processed", None) if name in processed else ("done", "skipped", "raw_pair")
                    for name in ("IMG_0001.CR2", "IMG_0001.JPG")}
    assert sorted(p.name for p in local["backing"].iterdir()) == ["IMG_0001.CR2", "IMG_0001.JPG"]
    assert files_under(local["quarantine"]) == []


def test_an_xmp_sidecar_follows_its_photo_to_done_and_to_quarantine(local, engine):
    inp = local["backing"]
    (inp / "a.jpg").write_bytes(photo_bytes(160, 120, "JPEG", seed=2))
    (inp / "a.xmp").write_bytes(XMP)
    (inp / "b.jpg").write_bytes(photo_bytes(160, 120, "JPEG", seed=3)[:900])  # cut off: quarantined
    (inp / "b.jpg.XMP").write_bytes(XMP)
    write_dng(inp / "IMG_2.DNG", synthetic_portrait(160, 120, 2))  # a pair: its sidecar is shared
    (inp / "IMG_2.JPG").write_bytes(photo_bytes(160, 120, "JPEG", seed=4))
    (inp / "IMG_2.xmp").write_bytes(XMP)
    assert read_sidecar_xmp(inp / "a.jpg") == XMP and read_sidecar_xmp(inp / "b.jpg") == XMP
    assert read_sidecar_xmp(inp / "IMG_2.DNG") == XMP
    config = nas_config(local, on_success="move", truncated_grace_seconds=0)
    done = config.folders[0].done_dir
    with HotFolder(config, engine) as hot:
        settle_all(hot, "a.jpg", "b.jpg", "IMG_2.JPG")
    assert sorted(p.name for p in done.iterdir()) == ["IMG_2.JPG", "a.jpg", "a.xmp"]
    assert (done / "a.xmp").read_bytes() == XMP
    assert (local["quarantine"] / "b.jpg.XMP").read_bytes() == XMP
    assert (local["quarantine"] / "b.jpg").exists()
    assert sorted(p.name for p in inp.iterdir()) == ["IMG_2.DNG", "IMG_2.xmp"]  # left with the RAW
    assert results(local["out"]) == ["IMG_2.JPG.cutout.png", "a.jpg.cutout.png"]


def test_a_picture_with_an_extension_not_processed_gets_one_info_line(local, engine, caplog):
    caplog.set_level(logging.INFO, logger="bshmd")
    (local["backing"] / "new camera.jxl").write_bytes(b"\xff\x0a not decoded")
    (local["backing"] / "notes.txt").write_bytes(b"not a picture")
    with HotFolder(nas_config(local, extensions=["jpg"]), engine) as hot:
        (local["backing"] / "x.png").write_bytes(photo_bytes(64, 64, "PNG"))
        for _ in range(2):  # every rescan meets both files again
            since = time.time()
            wait_until(lambda since=since: hot.ingestor.health()["last_rescan"] > since, 20, "a full rescan")
        assert hot.outcomes == []
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("not processing")]
    assert sorted(lines) == [
        f"not processing {local['backing'] / 'new camera.jxl'}: .jxl is not in extensions (jpg)",
        f"not processing {local['backing'] / 'x.png'}: .png is not in extensions (jpg)",
    ]


def test_the_sidecar_goes_back_on_requeue_and_along_on_reject(local):
    from bshmd.errors import InputRejected
    from bshmd.quarantine.actions import reject, requeue
    from bshmd.quarantine.entries import find_entry
    from bshmd.quarantine.store import quarantine_input

    config = nas_config(local)
    folder = config.folders[0]
    for name in ("c.jpg", "d.jpg"):
        (local["backing"] / name).write_bytes(photo_bytes(64, 64, "JPEG"))
        (local["backing"] / f"{name}.xmp").write_bytes(XMP)
        quarantine_input(folder, local["backing"] / name, Path(name), InputRejected("corrupt", f"{name}: bad"),
                         instance_id="t")
    assert sorted(p.name for p in local["backing"].iterdir()) == []
    back = requeue(find_entry(config.folders, local["quarantine"] / "c.jpg"))
    assert back == local["backing"] / "c.jpg" and (local["backing"] / "c.jpg.xmp").read_bytes() == XMP
    rejected = reject(find_entry(config.folders, local["quarantine"] / "d.jpg"))
    assert rejected.with_name("d.jpg.xmp").read_bytes() == XMP
    assert not (local["quarantine"] / "d.jpg.xmp").exists()
