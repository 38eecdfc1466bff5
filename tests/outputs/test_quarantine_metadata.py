"""Quarantine previews and review thumbnails carry no metadata; an accepted cut-out carries it all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bshmd.config import parse_config
from bshmd.outputs.files import output_paths
from bshmd.quarantine.actions import accept
from bshmd.quarantine.entries import list_entries
from bshmd.review.thumbnails import ThumbnailCache
from tests.outputs.studio_files import (
    ADOBE_RGB,
    exiftool_icc,
    exiftool_read,
    field,
    need_tools,
    tag_studio_photo,
)
from tests.outputs.test_studio_outputs import process

PRIVATE = ("Artist", "Copyright", "Creator", "Keywords", "GPSLatitude")


@pytest.mark.slow
def test_previews_and_thumbnails_are_bare_and_accept_keeps_the_metadata(tmp_path: Path, studio_png: Path,
                                                                        engine: Any) -> None:
    need_tools()
    for sub in ("in", "out", "quarantine"):
        (tmp_path / sub).mkdir()
    source = tmp_path / "in" / "portrait.jpg"
    with Image.open(studio_png) as image:
        image.convert("RGB").save(source, quality=95)
    tag_studio_photo(source)
    # A gate no matte passes: the photo goes to quarantine with its matte and preview.
    config = parse_config({
        "folders": [{"input": "in", "output": "out", "quarantine": "quarantine"}],
        "batch": {"max_size": 1, "max_wait_ms": 10},
        "gate": {"min_foreground": 0.95, "max_foreground": 1.0},
        "outputs": {"formats": ["cutout", "tiff"]},
    }, base_dir=tmp_path)
    outcome = process(config, engine, [source])
    assert outcome[source].startswith("quarantined:")
    (entry,) = list_entries(config.folders)

    bare = [entry.sidecar("matte"), entry.sidecar("preview")]
    cache = ThumbnailCache(config)
    for kind in ("photo", "matte", "cutout"):
        thumb = cache.get(entry, kind)
        assert thumb is not None, kind
        path = tmp_path / f"thumb-{kind}"
        path.write_bytes(thumb.data)
        bare.append(path)
    for path in bare:
        assert path is not None and path.is_file()
        tags = exiftool_read(path)
        assert not any(field(tags, name) for name in PRIVATE), (path, tags)
        assert exiftool_icc(path) == b"", path

    accepted = accept(entry, config)
    assert accepted.outputs
    paths = output_paths(config.folders[0].output, Path("portrait.jpg"), config.outputs)
    for path in paths.values():
        tags = exiftool_read(path)
        assert "Ann Photographer" in field(tags, "Artist") and {"portrait", "studio"} <= set(field(tags, "Keywords"))
        assert exiftool_icc(path) == ADOBE_RGB.read_bytes()
