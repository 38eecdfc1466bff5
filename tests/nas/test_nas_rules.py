"""The rules behind the NAS behaviour, one by one: names ignored, attribute caches read from
mount options, the truncated grace, RAW+JPEG partners."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bshmd.errors import InputRejected
from bshmd.fs.mounts import Mount, attribute_cache, parse_mountinfo
from bshmd.ingest.attrcache import settle_window
from bshmd.ingest.filters import PathFilter, is_ignored_name
from bshmd.ledger.keys import FileKey
from bshmd.pipeline.grace import NotFinished, judge
from tests.support.config import QUICK_INGEST, make_config


@pytest.mark.parametrize("name", [
    "a.jpg.part", "a.jpg.partial", "a.jpg.download", "a.jpg.crdownload", "a.jpg.filepart", "a.tmp",
    "a.jpg.sb-2e1f0c4a-Xz1", ".~a.jpg", ".a.jpg.Xa81Qz", "._a.jpg", ".DS_Store", ".Spotlight-V100",
    ".Trashes", "Thumbs.db", "desktop.ini", "~$a.jpg", "#recycle", "@eaDir", "#snapshot", "@Recycle",
    ".snapshot", "~snapshot", "$RECYCLE.BIN", "System Volume Information", "a.jpg@SynoEAStream",
])
def test_upload_desktop_and_nas_names_are_ignored(name):
    assert is_ignored_name(name)


def test_folder_globs_match_names_or_relative_paths():
    root = Path("/srv/in")
    path_filter = PathFilter(root, ["jpg"], ignore=["Originals", "*.BAK.jpg", "clients/*/proofs"])
    assert not path_filter.accepts_file(root / "shoot" / "originals" / "a.jpg")
    assert not path_filter.accepts_dir(root / "shoot" / "Originals")
    assert not path_filter.accepts_file(root / "a.bak.jpg")
    assert not path_filter.accepts_dir(root / "clients" / "acme" / "proofs")
    assert not path_filter.accepts_file(root / "clients" / "acme" / "proofs" / "a.jpg")  # an event below it
    assert path_filter.accepts_file(root / "clients" / "acme" / "a.jpg")
    assert path_filter.accepts_file(root / "shoot" / "original.jpg")


@pytest.mark.parametrize(("raw_pairs", "names", "asked", "partner"), [
    ("jpeg", ["IMG_1.CR2", "img_1.jpg"], "IMG_1.CR2", "img_1.jpg"),
    ("jpeg", ["IMG_1.CR2", "IMG_1.JPG.part"], "IMG_1.CR2", "IMG_1.JPG.part"),  # still uploading
    ("jpeg", ["IMG_1.CR2", "IMG_1.JPG"], "IMG_1.JPG", None),
    ("jpeg", ["IMG_1.CR2", "IMG_10.JPG"], "IMG_1.CR2", None),
    ("raw", ["IMG_1.NEF", "IMG_1.JPG"], "IMG_1.JPG", "IMG_1.NEF"),
    ("both", ["IMG_1.NEF", "IMG_1.JPG"], "IMG_1.NEF", None),
])
def test_raw_pairs_names_the_half_processed_instead(tmp_path, raw_pairs, names, asked, partner):
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    path_filter = PathFilter(tmp_path, ["jpg", "cr2", "nef"], raw_pairs=raw_pairs)
    found = path_filter.paired_with(tmp_path / asked)
    assert (found.name if found else None) == partner


def mount(fs_type: str, options: str) -> Mount:
    return Mount("/mnt/nas", fs_type, "nas:/export", tuple(options.split(",")))


@pytest.mark.parametrize(("fs_type", "options", "seconds"), [
    ("nfs4", "rw,relatime,vers=4.2,rsize=1048576,hard,proto=tcp,timeo=600", 3.0),
    ("nfs4", "rw,vers=4.2,acregmin=10,acregmax=30,hard", 30.0),
    ("nfs", "rw,vers=3,actimeo=15", 15.0),
    ("nfs", "rw,vers=3,noac", 0.0),
    ("nfs4", "rw,vers=4.1,nocto", 60.0),
    ("cifs", "rw,vers=3.1.1,cache=strict,actimeo=1", 1.0),
    ("cifs", "rw,vers=3.1.1,acregmax=5,acdirmax=30", 5.0),
    ("smb3", "rw", 1.0),
    ("fuse", "rw,user_id=0,group_id=0,default_permissions", 1.0),
    ("fuse.sshfs", "rw", 1.0),
    ("ext4", "rw,relatime", 0.0),
    ("fuseblk", "rw", 0.0),
])
def test_the_attribute_cache_time_is_read_from_mount_options(fs_type, options, seconds):
    assert attribute_cache(mount(fs_type, options))[0] == seconds


def test_mountinfo_options_include_the_superblock_options():
    line = ("41 29 0:40 / /mnt/nas rw,relatime shared:1 - nfs4 nas:/export "
            "rw,vers=4.2,acregmin=5,acregmax=20,hard")
    (parsed,) = parse_mountinfo(line)
    assert "relatime" in parsed.options and "acregmax=20" in parsed.options
    assert attribute_cache(parsed) == (20.0, "nfs4 mount option acregmax=20")


def test_the_settle_window_adds_the_attribute_cache(hot):
    config = make_config(hot, defaults=QUICK_INGEST, settle_seconds=1.5, folder={"attribute_cache_seconds": 4})
    window = settle_window(config.folders[0], config.settle_seconds)
    assert window.seconds == 5.5
    assert "settle_seconds 1.5 s + attribute cache 4 s: folders[].attribute_cache_seconds" in window.describe()


def judged(tmp_path: Path, reason: str | None, *, age: float, grace: float = 120.0) -> NotFinished | None:
    path = tmp_path / "a.jpg"
    path.write_bytes(b"\xff\xd8 half a photo")
    key = FileKey.of(tmp_path, path)
    rejection = InputRejected(reason, "a.jpg: cut short", {"bytes": 16}) if reason else None
    now = key.mtime_ns / 1e9 + age
    return judge(path, key, rejection, grace_seconds=grace, settle_seconds=1.0, clock=lambda: now)


def test_a_young_truncated_file_is_not_finished_with_a_doubling_window(tmp_path):
    young = judged(tmp_path, "truncated", age=5.0)
    assert isinstance(young, NotFinished) and young.why == "truncated"
    assert young.retry_after == 5.0  # as long again as it has been quiet
    assert judged(tmp_path, "truncated", age=0.2).retry_after == 1.0  # never below settle
    assert judged(tmp_path, "truncated", age=119.0).retry_after == pytest.approx(1.05)  # just past the grace
    assert judged(tmp_path, "empty", age=3.0).why == "empty"


def test_an_old_or_otherwise_refused_file_goes_on_to_quarantine(tmp_path):
    assert judged(tmp_path, "truncated", age=120.0) is None
    assert judged(tmp_path, "corrupt", age=1.0) is None
    assert judged(tmp_path, None, age=1.0) is None
    assert judged(tmp_path, "truncated", age=1.0, grace=0) is None


def test_a_file_changed_since_it_was_settled_is_not_finished_whatever_its_decoding_said(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(b"first")
    key = FileKey.of(tmp_path, path)
    with open(path, "ab") as writer:
        writer.write(b" and more")
    for rejection in (None, InputRejected("corrupt", "x")):
        verdict = judge(path, key, rejection, grace_seconds=0, settle_seconds=2.0)
        assert isinstance(verdict, NotFinished) and verdict.why == "changed" and verdict.retry_after == 2.0
    os.unlink(path)
    assert judge(path, key, None, grace_seconds=0, settle_seconds=2.0) is None  # gone: left to the caller
