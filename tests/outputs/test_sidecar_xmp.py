"""An XMP sidecar beside a photo is merged into its results the way embedded XMP is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from tests.outputs.studio_files import exiftool_read, exiftool_write, field, need_tools
from tests.outputs.test_studio_outputs import make_config, process

SIDECAR = b"""<?xpacket begin='' id='W5M0MpCehiHzreSzNTczkc9d'?>
<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>
<rdf:Description rdf:about='' xmlns:dc='http://purl.org/dc/elements/1.1/'>
<dc:creator><rdf:Seq><rdf:li>Sidecar Studio</rdf:li></rdf:Seq></dc:creator>
</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end='w'?>"""


def test_a_sidecars_xmp_replaces_the_embedded_one_in_every_result(tmp_path: Path, studio_png: Path,
                                                                  engine: Any) -> None:
    need_tools()
    config = make_config(tmp_path, formats=["cutout", "composite", "tiff"], composite_format="jpeg")
    photo = tmp_path / "in" / "portrait.jpg"
    with Image.open(studio_png) as image:
        image.convert("RGB").save(photo, quality=90)
    exiftool_write(photo, "-XMP-dc:Creator=Embedded Creator")
    (tmp_path / "in" / "portrait.xmp").write_bytes(SIDECAR)

    assert process(config, engine, [photo]) == {photo: "processed"}

    out = config.folders[0].output
    for name in ("portrait.jpg.cutout.png", "portrait.jpg.composite.jpg", "portrait.jpg.cutout.tif"):
        tags = exiftool_read(out / name)
        assert field(tags, "Creator") == ["Sidecar Studio"], (name, field(tags, "Creator"))
