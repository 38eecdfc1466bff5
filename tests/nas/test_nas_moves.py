"""bshmd.fs.move: a move across filesystems verifies its copy and never unlinks a changed source."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import bshmd.fs.move as move
from bshmd.fs.atomic import safe_move
from bshmd.fs.move import SourceChanged, remove_unchanged
from tests.nas.conftest import bindfs


@pytest.fixture
def other_fs(tmp_path: Path) -> Iterator[Path]:
    """A folder on another filesystem than tmp_path (a bindfs view), so moves into it copy."""
    (tmp_path / "elsewhere").mkdir()
    with bindfs(tmp_path / "elsewhere", tmp_path / "other") as mount:
        assert os.stat(mount).st_dev != os.stat(tmp_path).st_dev
        yield mount


def key_of(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def test_a_verified_copy_keeps_bytes_and_mtime_then_removes_the_source(tmp_path, other_fs):
    source = tmp_path / "photo.jpg"
    source.write_bytes(os.urandom(3 << 20))
    os.utime(source, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    data, expect = source.read_bytes(), key_of(source)
    final = safe_move(source, other_fs / "q" / "photo.jpg", root=other_fs, expect=expect)
    assert final.read_bytes() == data and final.stat().st_mtime_ns == expect[1]
    assert not source.exists()
    assert sorted(p.name for p in (other_fs / "q").iterdir()) == ["photo.jpg"]  # no temporary left


@pytest.mark.parametrize("cross_device", [False, True])
def test_a_source_that_is_not_the_settled_file_is_not_moved(tmp_path, other_fs, cross_device):
    root = other_fs if cross_device else tmp_path / "q"
    source = tmp_path / "photo.jpg"
    source.write_bytes(b"first half")
    expect = key_of(source)
    with open(source, "ab") as writer:
        writer.write(b" and the rest")
    with pytest.raises(SourceChanged):
        safe_move(source, root / "photo.jpg", root=root, expect=expect)
    assert source.read_bytes() == b"first half and the rest"
    assert not (root / "photo.jpg").exists()


def test_a_writer_that_goes_on_during_the_copy_keeps_its_file(tmp_path, other_fs, monkeypatch):
    """The copy was made and verified, then the writer appended: the source must stay, whole."""
    source = tmp_path / "stalled.png"
    source.write_bytes(b"A" * 100_000)
    expect = key_of(source)
    verify = move._verify_copy

    def then_the_writer_resumes(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        verify(*args, **kwargs)
        with open(source, "ab") as writer:
            writer.write(b"B" * 50_000)

    monkeypatch.setattr(move, "_verify_copy", then_the_writer_resumes)
    with pytest.raises(SourceChanged):
        safe_move(source, other_fs / "stalled.png", root=other_fs, expect=expect)
    assert source.read_bytes() == b"A" * 100_000 + b"B" * 50_000
    assert [p.name for p in other_fs.iterdir()] == []  # neither the copy nor a temporary is left


def test_a_copy_that_does_not_verify_is_removed_and_the_source_stays(tmp_path, other_fs, monkeypatch):
    source = tmp_path / "photo.jpg"
    source.write_bytes(b"photo bytes" * 1000)
    real_copy = move._copy

    def corrupting_copy(reader: int, writer: int) -> tuple[bytes, int]:
        digest, copied = real_copy(reader, writer)
        os.pwrite(writer, b"X", 5)  # a byte flipped on its way to the other filesystem
        return digest, copied

    monkeypatch.setattr(move, "_copy", corrupting_copy)
    with pytest.raises(OSError, match="does not verify.*SHA-256"):
        safe_move(source, other_fs / "photo.jpg", root=other_fs, expect=key_of(source))
    assert source.read_bytes() == b"photo bytes" * 1000
    assert list(other_fs.iterdir()) == []


def test_remove_unchanged_deletes_only_the_settled_file(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(b"one")
    expect = key_of(path)
    path.write_bytes(b"two, longer")
    with pytest.raises(SourceChanged):
        remove_unchanged(path, expect)
    assert path.read_bytes() == b"two, longer"
    remove_unchanged(path, key_of(path))
    assert not path.exists()
