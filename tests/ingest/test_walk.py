"""The one walker of input trees (bshmd.fs.walk), shared by rescans and ``bshmd process``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bshmd.fs.walk import walk


class Suffix:
    """A filter by name only: ``.jpg`` files, every folder but ``skip``."""

    def accepts_dir(self, path: Path) -> bool:
        return path.name != "skip"

    def accepts_file(self, path: Path) -> bool:
        return path.suffix == ".jpg"


def names(root: Path, start: Path | None = None) -> list[str]:
    return [os.path.relpath(path, root) for path, _st in walk(root, Suffix(), start)]


def test_files_in_name_order_then_each_subfolder_depth_first(tmp_path: Path) -> None:
    for rel in ("b.jpg", "a.jpg", "z/2.jpg", "z/1.jpg", "m/deep/x.jpg", "m/y.jpg", "notes.txt", "skip/no.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert names(tmp_path) == ["a.jpg", "b.jpg", "m/y.jpg", "m/deep/x.jpg", "z/1.jpg", "z/2.jpg"]
    assert names(tmp_path, tmp_path / "m") == ["m/y.jpg", "m/deep/x.jpg"]


def test_symlinks_never_lead_out_of_the_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "in", tmp_path / "elsewhere"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "sub" / "real.jpg").write_bytes(b"r")
    (outside / "secret.jpg").write_bytes(b"s")
    (root / "inside-link.jpg").symlink_to(root / "sub" / "real.jpg")  # a regular file inside: taken
    (root / "outside-link.jpg").symlink_to(outside / "secret.jpg")
    (root / "linked-folder").symlink_to(outside, target_is_directory=True)  # never entered
    (root / "dangling.jpg").symlink_to(root / "gone.jpg")
    (root / "folder-link.jpg").symlink_to(root / "sub", target_is_directory=True)  # not a file
    found = dict((os.path.relpath(path, root), st) for path, st in walk(root, Suffix()))
    assert sorted(found) == ["inside-link.jpg", "sub/real.jpg"]
    assert found["inside-link.jpg"].st_ino == os.stat(root / "sub" / "real.jpg").st_ino  # the target's stat


def test_an_unreadable_start_raises_and_an_unreadable_subfolder_is_skipped(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        names(tmp_path / "missing")
    (tmp_path / "a.jpg").write_bytes(b"a")
    (tmp_path / "gone").mkdir()
    os.chmod(tmp_path / "gone", 0)
    try:
        assert names(tmp_path) == ["a.jpg"]  # (root lists the empty folder anyway)
    finally:
        os.chmod(tmp_path / "gone", 0o755)
