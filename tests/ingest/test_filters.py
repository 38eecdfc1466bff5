from __future__ import annotations

from pathlib import Path

import pytest

from bshmd.ingest.filters import PathFilter, excluded_dirs_for, is_ignored_name
from tests.support.config import QUICK_INGEST, make_config

ROOT = Path("/srv/in")


@pytest.mark.parametrize("name", [
    ".hidden.jpg", "._photo.jpg", ".DS_Store", "Thumbs.db", "thumbs.DB", "desktop.ini", "Desktop.INI",
    "photo.jpg.part", "photo.part", "x.tmp", "X.TMP", "photo.jpg.crdownload", "~$report.jpg",
    ".nfs0000000000123", ".smbdeleteAAA123", "photo.jpg.bshmd-tmp", ".bshmd", "",
])
def test_noise_names_are_ignored(name):
    assert is_ignored_name(name)


@pytest.mark.parametrize("name", ["photo.jpg", "Photo Shoot 01.PNG", "résumé.tif", "a~b.jpg", "x.tmpl"])
def test_real_names_are_kept(name):
    assert not is_ignored_name(name)


def make_filter(excluded=()):
    return PathFilter(ROOT, ["jpg", "PNG", ".tif"], excluded)


@pytest.mark.parametrize("rel", ["a.jpg", "A.JPG", "sub dir/b.png", "x/y/z.Tif", "ünï/ø.jpg"])
def test_extensions_match_case_insensitively(rel):
    assert make_filter().accepts_file(ROOT / rel)


@pytest.mark.parametrize("rel", [
    "a.gif", "noext", "a.jpg.part", ".cache/a.jpg", "sub/.hidden/a.jpg", ".bshmd/claims/a.jpg",
    "sub/._a.jpg", "a.jpeg.tmp",
])
def test_unwanted_files_are_rejected(rel):
    assert not make_filter().accepts_file(ROOT / rel)


def test_files_outside_the_root_are_rejected():
    assert not make_filter().accepts_file(Path("/srv/other/a.jpg"))
    assert not make_filter().accepts_file(ROOT)


def test_folders_bshmd_writes_are_never_picked_up(hot):
    config = make_config(hot, defaults=QUICK_INGEST)
    excluded = excluded_dirs_for(config.folders)
    assert hot["out"] in excluded and hot["quarantine"] in excluded
    assert config.folders[0].done_dir in excluded and config.folders[0].state_dir in excluded
    # A symlink or odd layout could put one below an input: still excluded.
    weird = PathFilter(ROOT, ["jpg"], [ROOT / "results"])
    assert not weird.accepts_file(ROOT / "results" / "a.jpg")
    assert not weird.accepts_file(ROOT / "results" / "deep" / "a.jpg")
    assert not weird.accepts_dir(ROOT / "results")
    assert weird.accepts_file(ROOT / "results-not" / "a.jpg")
    assert weird.accepts_dir(ROOT / "sub")
