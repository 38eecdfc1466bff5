"""Symlinks never lead out of the input root; odd file names never stop the ingest."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest

from bshmd.ingest import Ingestor
from bshmd.ingest.filters import PathFilter
from bshmd.ingest.scan import stat_candidate, walk
from tests.ingest.helpers import CopyConsumer
from tests.support.config import QUICK_INGEST, make_config
from tests.support.waiting import wait_until


def test_walk_skips_symlinks_out_of_the_root_and_never_enters_linked_folders(hot, tmp_path):
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "private.jpg").write_bytes(b"secret")
    root = hot["in"]
    (root / "real.jpg").write_bytes(b"real")
    (root / "escape.jpg").symlink_to(outside / "private.jpg")
    (root / "linked-dir").symlink_to(outside, target_is_directory=True)
    (root / "inside-link.jpg").symlink_to(root / "real.jpg")
    (root / "loop").symlink_to(root, target_is_directory=True)
    path_filter = PathFilter(root, ["jpg"])
    found = {path.relative_to(root).as_posix() for path, _ in walk(root, path_filter)}
    assert found == {"real.jpg", "inside-link.jpg"}
    assert stat_candidate(root, root / "escape.jpg", path_filter) is None
    assert stat_candidate(root, root / "linked-dir" / "private.jpg", path_filter) is None
    assert stat_candidate(root, root / "inside-link.jpg", path_filter).st_size == 4


def test_unicode_and_undecodable_names_are_processed(hot):
    root = hot["in"]
    nfd = unicodedata.normalize("NFD", "Café Portrait.jpg")
    nfc = unicodedata.normalize("NFC", "Café Portrait.jpg")
    (root / nfd).write_bytes(b"nfd")
    (root / nfc).write_bytes(b"nfc")
    try:
        with open(os.path.join(os.fsencode(root), b"bad-\xff\xfe name.jpg"), "wb") as handle:
            handle.write(b"bytes")
    except OSError as exc:  # some filesystems insist on UTF-8 names
        pytest.skip(f"filesystem refuses non-UTF-8 names: {exc}")
    consumer = CopyConsumer()
    ingestor = Ingestor(make_config(hot, defaults=QUICK_INGEST, settle_seconds=0.3), consumer.on_ready, instance_id="u")
    ingestor.start()
    try:
        expected = {nfd, nfc, os.fsdecode(b"bad-\xff\xfe name.jpg")}
        assert wait_until(lambda: set(consumer.counts) == expected, timeout=15), consumer.counts
        assert (hot["out"] / nfd).read_bytes() == b"nfd"
        assert Path(os.fsdecode(os.path.join(os.fsencode(hot["out"]), b"bad-\xff\xfe name.jpg"))).read_bytes() == b"bytes"
        assert ingestor.health()["folders"][str(root)]["watching"]
    finally:
        ingestor.close()
        consumer.close()


def test_files_under_hidden_or_state_folders_are_never_handed_on(hot):
    root = hot["in"]
    (root / ".bshmd").mkdir()
    (root / ".bshmd" / "x.jpg").write_bytes(b"x")
    (root / "a.jpg.part").write_bytes(b"x")
    (root / "._a.jpg").write_bytes(b"x")
    (root / "ok.jpg").write_bytes(b"x")
    consumer = CopyConsumer()
    events: list = []
    ingestor = Ingestor(make_config(hot, defaults=QUICK_INGEST, settle_seconds=0.2), consumer.on_ready, instance_id="h",
                        on_event=lambda name, fields: events.append((name, fields)))
    ingestor.start()
    try:
        assert wait_until(lambda: "ok.jpg" in consumer.counts, timeout=15)
        assert wait_until(lambda: any(name == "rescan" for name, _ in events), timeout=5)
        assert set(consumer.counts) == {"ok.jpg"}
    finally:
        ingestor.close()
        consumer.close()
