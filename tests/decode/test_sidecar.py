"""XMP sidecar lookup: the same answers as listing the folder for every photo, with one listing
per change of the folder."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bshmd.decode import sidecar
from bshmd.decode.names import IMAGE_LOOKING_EXTENSIONS, extension_of
from tests.support.waiting import wait_until

NAMES = [
    "IMG_1.CR2", "IMG_1.JPG", "IMG_1.xmp",          # a stem sidecar shared by a RAW and its JPEG
    "IMG_2.CR2", "IMG_2.CR2.xmp", "IMG_2.jpg",      # a full-name sidecar belongs to its photo alone
    "IMG_3.jpg", "img_3.XMP",                       # case differs
    "IMG_4.jpg", "IMG_4.xmp", "IMG_4.XMP",          # two names equal but for case
    "IMG_5.jpg", "IMG_5.jpg.xmp", "IMG_5.xmp",      # full name first
    "IMG_6.jpg", "IMG_6.txt", "IMG_6.xmp",          # a stem shared with a file that is no picture
    "IMG_7.png",                                    # no sidecar
    "IMG_8.tif", "IMG_8.TIF.Xmp",
    ".hidden.jpg", ".hidden.jpg.xmp", "noext", "noext.xmp",
    "IMG_9.JPG", "IMG_9.jpg", "IMG_9.xmp",          # two photos equal but for case share it
    "IMG_10.jpeg", "IMG_10.xmp", "IMG_10.jpeg.bak",  # a backup is no picture
    "A.B.jpg", "A.B.png", "A.xmp", "A.B.xmp",       # stems with dots
    "..png", "..png.jpg", "..png.xmp",
]


def _old_names(photo: Path) -> list[str]:
    try:
        with os.scandir(photo.parent) as entries:
            return sorted(entry.name for entry in entries if entry.is_file(follow_symlinks=False))
    except OSError:
        return []


def _old_find(photo: Path) -> Path | None:
    """The lookup as it was: the folder listed on every call."""
    names = {name.lower(): name for name in _old_names(photo)}
    full = names.get(photo.name.lower() + ".xmp")
    if full is not None:
        return photo.with_name(full)
    stem = names.get(os.path.splitext(photo.name)[0].lower() + ".xmp")
    return photo.with_name(stem) if stem is not None else None


def _old_sidecar_of(photo: Path) -> Path | None:
    found = _old_find(photo)
    if found is None or found.name.lower() == photo.name.lower() + ".xmp":
        return found
    stem = os.path.splitext(photo.name)[0].lower()
    for name in _old_names(photo):
        if (name != photo.name and os.path.splitext(name)[0].lower() == stem
                and extension_of(name) in IMAGE_LOOKING_EXTENSIONS):
            return None
    return found


def _settled(folder: Path) -> None:
    """Date the folder's last change back, as in a backlog that arrived a while ago."""
    past = time.time() - 60
    os.utime(folder, (past, past))


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = sidecar._list

    def counting(folder: str) -> list[str] | None:
        calls.append(folder)
        return real(folder)

    monkeypatch.setattr(sidecar, "_list", counting)
    return calls


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in NAMES:
        (folder / name).write_bytes(b"<x:xmpmeta/>")
    (folder / "DIR_1.jpg").write_bytes(b"")
    (folder / "DIR_1.jpg.xmp").mkdir()                  # a folder is no sidecar
    (folder / "LINK_1.jpg").write_bytes(b"")
    (folder / "LINK_1.xmp").symlink_to(folder / "IMG_7.png")  # neither is a link
    return folder


def test_the_answers_equal_a_listing_per_photo(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    _settled(folder)
    photos = sorted(folder.iterdir()) + [folder / "absent.jpg", tmp_path / "gone" / "a.jpg"]
    for _ in range(2):  # listed, then kept
        for photo in photos:
            assert sidecar.find_sidecar(photo) == _old_find(photo), photo.name
            assert sidecar.sidecar_of(photo) == _old_sidecar_of(photo), photo.name
    assert sidecar.sidecar_of(folder / "IMG_1.JPG") is None
    assert sidecar.sidecar_of(folder / "IMG_2.CR2") == folder / "IMG_2.CR2.xmp"
    assert sidecar.sidecar_of(folder / "IMG_3.jpg") == folder / "img_3.XMP"
    assert sidecar.sidecar_of(folder / "IMG_4.jpg") == folder / "IMG_4.xmp"
    assert sidecar.read_sidecar_xmp(folder / "IMG_8.tif") == b"<x:xmpmeta/>"


def test_a_folder_is_listed_once_per_change(tmp_path: Path, listings: list[str]) -> None:
    folder = _folder(tmp_path)
    _settled(folder)
    for _ in range(3):
        for name in NAMES:
            sidecar.sidecar_of(folder / name)
            sidecar.read_sidecar_xmp(folder / name)
    assert listings == [str(folder)]

    # A sidecar arrives: the folder's mtime moves, the next lookup lists again and sees it.
    (folder / "IMG_7.xmp").write_bytes(b"<x:xmpmeta/>")
    past = time.time() - 30
    os.utime(folder, (past, past))
    assert sidecar.sidecar_of(folder / "IMG_7.png") == folder / "IMG_7.xmp"
    assert sidecar.sidecar_of(folder / "IMG_6.jpg") == folder / "IMG_6.xmp"
    assert listings == [str(folder)] * 2

    # The RAW leaves: the stem sidecar now belongs to the JPEG alone.
    (folder / "IMG_1.CR2").unlink()
    os.utime(folder, (past + 1, past + 1))
    assert sidecar.sidecar_of(folder / "IMG_1.JPG") == folder / "IMG_1.xmp"
    assert listings == [str(folder)] * 3


def test_a_folder_changed_within_the_clock_s_granularity_is_not_kept(tmp_path: Path, listings: list[str]) -> None:
    # A name added in the same tick as a listing would leave the mtime as it was: a folder
    # changed less than RACY_SECONDS ago is listed for every lookup, as before.
    folder = _folder(tmp_path)
    assert sidecar.sidecar_of(folder / "IMG_7.png") is None
    (folder / "IMG_7.PNG.xmp").write_bytes(b"")
    now = os.stat(folder).st_mtime_ns
    os.utime(folder, ns=(now, now))
    assert sidecar.sidecar_of(folder / "IMG_7.png") == folder / "IMG_7.PNG.xmp"
    assert len(listings) == 2


def test_a_folder_replaced_by_another_is_listed_again(tmp_path: Path, listings: list[str]) -> None:
    folder = _folder(tmp_path)
    _settled(folder)
    assert sidecar.sidecar_of(folder / "IMG_2.CR2") == folder / "IMG_2.CR2.xmp"
    folder.rename(tmp_path / "old")
    folder.mkdir()
    (folder / "IMG_2.CR2").write_bytes(b"")
    stamp = os.stat(tmp_path / "old").st_mtime_ns
    os.utime(folder, ns=(stamp, stamp))  # same mtime, another inode
    assert sidecar.sidecar_of(folder / "IMG_2.CR2") is None
    assert len(listings) == 2


def test_a_network_folder_is_listed_again_after_its_attribute_cache_time(
        tmp_path: Path, listings: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # stat may show an NFS folder's mtime from the attribute cache while another host adds a
    # name: a kept listing lives no longer than that cache.
    monkeypatch.setattr(sidecar, "attribute_cache_for", lambda path: (0.2, "nfs actimeo"))
    folder = _folder(tmp_path)
    _settled(folder)
    assert sidecar.sidecar_of(folder / "IMG_7.png") is None
    assert sidecar.sidecar_of(folder / "IMG_7.png") is None
    assert listings == [str(folder)]
    assert wait_until(lambda: sidecar.sidecar_of(folder / "IMG_7.png") is None and len(listings) == 2, timeout=10)


_PART = st.sampled_from(["IMG_1", "img_1", "A.B", ".", "..png", "x", ".hidden"])
_EXT = st.sampled_from(["", ".jpg", ".JPG", ".cr2", ".xmp", ".XMP", ".png", ".txt", ".jpg.xmp", ".CR2.Xmp"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.sets(st.builds(lambda part, ext: part + ext, _PART, _EXT), min_size=1, max_size=12))
def test_any_folder_gets_the_answers_of_a_listing_per_photo(tmp_path_factory: pytest.TempPathFactory,
                                                             names: set[str]) -> None:
    folder = tmp_path_factory.mktemp("any")
    for name in names:
        if name not in (".", ".."):
            (folder / name).write_bytes(b"")
    _settled(folder)
    for photo in sorted(folder.iterdir()):
        assert sidecar.find_sidecar(photo) == _old_find(photo), photo.name
        assert sidecar.sidecar_of(photo) == _old_sidecar_of(photo), photo.name
