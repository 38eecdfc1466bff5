"""meta_from_blocks: the same checks for decoders that hand over raw blocks instead of a Pillow image."""

from __future__ import annotations

from PIL import Image

from bshmd.decode.meta import meta_from_blocks
from bshmd.decode.record import PhotoMeta
from tests.outputs.studio_files import ADOBE_RGB, need_tools


def test_raw_blocks_are_checked_like_a_files_own() -> None:
    need_tools()
    exif = Image.Exif()
    exif[0x013B] = "Ann Photographer"  # Artist
    exif[0x0112] = 6  # orientation: applied by the decoder, never carried
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    meta = meta_from_blocks(icc=ADOBE_RGB.read_bytes(), exif=exif.tobytes(), xmp=xmp, dpi=(240, 240))
    assert meta.icc == ADOBE_RGB.read_bytes() and meta.xmp == xmp and meta.dpi == (240, 240)
    assert meta.dropped == ()
    carried = Image.Exif()
    carried.load(b"Exif\x00\x00" + meta.exif)
    assert carried[0x013B] == "Ann Photographer" and 0x0112 not in carried


def test_broken_raw_blocks_are_dropped_with_a_reason() -> None:
    meta = meta_from_blocks(icc=b"\x00" * 300, xmp=b"\xff\xfe not xml")
    assert (meta.icc, meta.xmp) == (None, None)
    assert [why.split(":")[0] for why in meta.dropped] == ["icc", "xmp"]


def test_a_sidecar_xmp_replaces_the_embedded_one() -> None:
    sidecar = b"<x:xmpmeta><rdf:RDF>sidecar</rdf:RDF></x:xmpmeta>"
    meta = PhotoMeta(icc=b"icc", xmp=b"<x:xmpmeta>embedded</x:xmpmeta>").with_xmp(sidecar)
    assert (meta.icc, meta.xmp) == (b"icc", sidecar)
    assert PhotoMeta(icc=b"icc", xmp=b"x", dpi=(300, 300)).stripped() == PhotoMeta(icc=b"icc")


def test_an_xmp_too_big_for_a_jpeg_segment_is_left_out_of_the_jpeg_only() -> None:
    import io

    import numpy as np

    from bshmd.config import OutputsConfig
    from bshmd.decode.record import Decoded
    from bshmd.outputs.render import render_outputs
    from bshmd.testing.images import synthetic_portrait

    rgb = synthetic_portrait(120, 90, 2)
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    xmp = b"<x:xmpmeta><rdf:RDF>" + b"x" * 100_000 + b"</rdf:RDF></x:xmpmeta>"
    notes: list[str] = []
    blobs = render_outputs(rgb, alpha, OutputsConfig(formats=("composite", "cutout")),
                           photo=Decoded(rgb, None, PhotoMeta(xmp=xmp)), notes=notes)
    assert notes == [f"composite xmp: {len(xmp)} bytes do not fit a JPEG segment"]
    with Image.open(io.BytesIO(blobs["composite"])) as jpeg:
        assert "xmp" not in jpeg.info
    with Image.open(io.BytesIO(blobs["cutout"])) as png:
        assert png.info["xmp"] == xmp
