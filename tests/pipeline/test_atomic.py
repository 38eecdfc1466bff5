"""Atomic writes and no-overwrite moves on real filesystems (tmp, tmpfs, /dev/shm)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bshmd.fs.atomic import (
    TMP_SUFFIX,
    UnknownGroupError,
    UnsafePathError,
    atomic_write,
    is_temp_name,
    numbered_name,
    safe_move,
)


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def test_writes_creates_folders_and_applies_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b c" / "ü.png"
    atomic_write(target, b"payload", root=tmp_path, mode=0o640)
    assert target.read_bytes() == b"payload"
    assert target.stat().st_mode & 0o7777 == 0o640
    assert all_files(tmp_path) == ["a/b c/ü.png"]


def test_replaces_an_existing_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "x.png"
    target.write_bytes(b"old content that is longer")
    atomic_write(target, b"new", root=tmp_path)
    assert target.read_bytes() == b"new"
    assert all_files(tmp_path) == ["x.png"]


@pytest.mark.parametrize("bad", ["../escape.png", "a/../../escape.png", "/etc/bshmd-escape.png"])
def test_refuses_paths_outside_the_root(tmp_path: Path, bad: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(UnsafePathError, match="outside"):
        atomic_write(root / bad if not bad.startswith("/") else Path(bad), b"x", root=root)
    assert not (tmp_path / "escape.png").exists()
    assert not Path("/etc/bshmd-escape.png").exists()


def test_refuses_to_write_through_a_symlinked_folder(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="symlink"):
        atomic_write(root / "link" / "sub" / "x.png", b"x", root=root)
    assert list(outside.iterdir()) == []


def test_a_symlink_at_the_final_name_is_replaced_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    (root / "x.png").symlink_to(victim)
    atomic_write(root / "x.png", b"result", root=root)
    assert victim.read_bytes() == b"precious"
    assert not (root / "x.png").is_symlink()
    assert (root / "x.png").read_bytes() == b"result"


def test_unknown_group_fails_before_writing(tmp_path: Path) -> None:
    with pytest.raises(UnknownGroupError, match="no-such-group-bshmd"):
        atomic_write(tmp_path / "x.png", b"x", root=tmp_path, group="no-such-group-bshmd")
    assert all_files(tmp_path) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's group to another group needs root here")
def test_group_is_applied(tmp_path: Path) -> None:
    import grp

    group = grp.getgrgid(65534).gr_name
    atomic_write(tmp_path / "x.png", b"x", root=tmp_path, group=group)
    assert (tmp_path / "x.png").stat().st_gid == 65534


@contextlib.contextmanager
def tiny_tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up: {result.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_disk_full_leaves_neither_temp_nor_final_file(tmp_path: Path) -> None:
    with tiny_tmpfs(tmp_path / "small", "64k") as root:
        (root / "old.png").write_bytes(b"kept")
        with pytest.raises(OSError) as caught:
            atomic_write(root / "sub" / "big.png", os.urandom(256 * 1024), root=root)
        assert caught.value.errno == errno.ENOSPC
        assert not (root / "sub" / "big.png").exists()
        assert all_files(root) == ["old.png"]  # no temporary file left behind
        # and replacing an existing file keeps the old content when the new one does not fit
        with pytest.raises(OSError):
            atomic_write(root / "old.png", os.urandom(256 * 1024), root=root)
        assert (root / "old.png").read_bytes() == b"kept"
        assert all_files(root) == ["old.png"]


def test_temp_names_are_hidden_and_recognisable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    original_rename = os.rename

    # Observe (not replace) the rename: the name it moves from is the temporary file.
    def spy(src, dst, *args, **kwargs):  # noqa: ANN001, ANN202
        seen.append(os.fsdecode(src))
        return original_rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", spy)
    atomic_write(tmp_path / "photo.jpg.cutout.png", b"x", root=tmp_path)
    monkeypatch.undo()
    assert len(seen) == 1 and is_temp_name(seen[0]) and seen[0].endswith(TMP_SUFFIX)
    assert seen[0].startswith(".photo.jpg.cutout.png.")
    assert not is_temp_name("photo.jpg.cutout.png")


def test_numbered_names() -> None:
    assert numbered_name("a.jpg", 1) == "a~1.jpg"
    assert numbered_name("a.tar.gz", 2) == "a.tar~2.gz"
    assert numbered_name("README", 3) == "README~3"
    assert numbered_name(".hidden", 1) == ".hidden~1"


def test_safe_move_never_overwrites(tmp_path: Path) -> None:
    root = tmp_path / "q"
    sources = []
    for index in range(3):
        source = tmp_path / f"src{index}"
        source.write_bytes(f"file {index}".encode())
        sources.append(source)
    finals = [safe_move(source, root / "sub" / "a.jpg", root=root) for source in sources]
    assert [p.name for p in finals] == ["a.jpg", "a~1.jpg", "a~2.jpg"]
    assert [p.read_bytes() for p in finals] == [b"file 0", b"file 1", b"file 2"]
    assert not any(source.exists() for source in sources)


def test_safe_move_respects_reserved_names(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.write_bytes(b"x")
    final = safe_move(source, tmp_path / "q" / "a.jpg", root=tmp_path / "q", taken=lambda name: name == "a.jpg")
    assert final.name == "a~1.jpg"


def test_safe_move_across_filesystems_keeps_content_and_mtime(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("/dev/shm is not a separate filesystem here")
    source = tmp_path / "photo.jpg"
    source.write_bytes(b"\xff\xd8 photo bytes")
    os.utime(source, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    root = shm / f"bshmd-test-{os.getpid()}"
    try:
        (root / "q").mkdir(parents=True)
        (root / "q" / "photo.jpg").write_bytes(b"someone else's")
        final = safe_move(source, root / "q" / "photo.jpg", root=root)
        assert final.name == "photo~1.jpg"
        assert final.read_bytes() == b"\xff\xd8 photo bytes"
        assert final.stat().st_mtime_ns == 1_600_000_000_000_000_000
        assert (root / "q" / "photo.jpg").read_bytes() == b"someone else's"
        assert not source.exists()
        assert sorted(p.name for p in (root / "q").iterdir()) == ["photo.jpg", "photo~1.jpg"]
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def test_safe_move_of_a_vanished_source_raises_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        safe_move(tmp_path / "gone.jpg", tmp_path / "q" / "gone.jpg", root=tmp_path / "q")
    assert all_files(tmp_path) == []
