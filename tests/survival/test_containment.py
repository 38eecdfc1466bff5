"""Symlinks and odd names: nothing read from outside the input root, nothing written outside
the output and quarantine roots, nothing overwritten through a link."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from tests.survival.harness import CUTOUT, REASON, Daemon, image_bytes, wait_until, write_config


def _snapshot(path: Path) -> tuple[bytes, int]:
    st = os.stat(path, follow_symlinks=False)
    return path.read_bytes(), st.st_mtime_ns


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")}


@pytest.mark.slow
def test_links_and_odd_names_stay_inside_their_roots(tmp_path: Path, standin_model: Path) -> None:
    rng = random.Random(11)
    src, out, quarantine, outside = (tmp_path / n for n in ("in", "out", "quarantine", "outside"))
    for folder in (src, out, quarantine, outside):
        folder.mkdir()
    # Outside every root: a real photo, victims for links to point at, folders to escape into.
    (outside / "photo.png").write_bytes(image_bytes(rng))
    (outside / "victim").write_bytes(b"precious\n")
    os.utime(outside / "victim", ns=(10**18, 10**18))
    (outside / "elsewhere").mkdir()
    (outside / "qelsewhere").mkdir()
    passwd = _snapshot(Path("/etc/passwd"))
    before_outside = _tree(outside)

    # Links in the input tree pointing out of it.
    (src / "etc").symlink_to("/etc")
    (src / "passwd.jpg").symlink_to("/etc/passwd")
    (src / "outside.png").symlink_to(outside / "photo.png")
    (src / "up.png").symlink_to("../outside/photo.png")
    # A link at a result's name, a linked output subfolder and a linked quarantine subfolder.
    (out / ("x.png" + CUTOUT)).symlink_to(outside / "victim")
    (out / "shoot").symlink_to(outside / "elsewhere")
    (quarantine / "bad").symlink_to(outside / "qelsewhere")

    config = write_config(tmp_path / "bshmd.yaml", model_dir=standin_model, input=src, output=out,
                          quarantine=quarantine)
    daemon = Daemon(config, tmp_path / "daemon.log")
    daemon.start()
    try:
        daemon.wait_ready()
        ordinary = ["x.png", "a..b.png", "..foo.png", "sub/...png", "sub/..x..png"]
        for name in ordinary:
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes(image_bytes(rng))
        (src / "shoot").mkdir()
        (src / "shoot" / "y.png").write_bytes(image_bytes(rng))
        (src / "bad").mkdir()
        (src / "bad" / "broken.jpg").write_bytes(b"not a photograph" * 10)
        (src / "canary.png").write_bytes(image_bytes(rng))
        wait_until(lambda: (out / ("canary.png" + CUTOUT)).exists() and (out / ("x.png" + CUTOUT)).is_file()
                   and not (out / ("x.png" + CUTOUT)).is_symlink(), 60, what="the ordinary files")
        wait_until(lambda: "shoot/y.png" in daemon.text() and "bad/broken.jpg" in daemon.text(), 30,
                   what="the daemon to meet the linked output and quarantine folders")
        assert daemon.alive() and daemon.get("/healthz")[0] == 200
        assert daemon.stop() == 0
    finally:
        daemon.ensure_dead()

    # Nothing outside changed: the victims keep content and mtime, no file was added.
    assert _tree(outside) == before_outside
    assert (outside / "victim").read_bytes() == b"precious\n"
    assert _snapshot(Path("/etc/passwd")) == passwd
    # Ordinary names, dots and all, have their results inside the output root.
    for name in ["x.png", "a..b.png", "canary.png"]:
        result = out / (name + CUTOUT)
        assert result.is_file() and not result.is_symlink()
        assert os.path.realpath(result).startswith(str(out) + "/")
    # Links out of the input were not followed: no result, no quarantine entry, targets in place.
    for name in ("passwd.jpg", "outside.png", "up.png"):
        assert not (out / (name + CUTOUT)).exists()
        assert not (quarantine / (name + REASON)).exists()
        assert (src / name).is_symlink()
    assert not (out / "etc").exists() and not (quarantine / "etc").exists()
    # An input whose result folder is a link to elsewhere goes to quarantine with a clear reason;
    # one whose quarantine folder is a link stays where it was.
    record = json.loads((quarantine / "shoot" / ("y.png" + REASON)).read_bytes())
    assert record["reason"] == "unsafe_output_path" and (quarantine / "shoot" / "y.png").is_file()
    assert (src / "bad" / "broken.jpg").exists()
    # Everything under the roots is a real file or folder, except the links placed there on purpose.
    for root in (out, quarantine):
        links = [p for p in root.rglob("*") if p.is_symlink()]
        assert {str(p.relative_to(tmp_path)) for p in links} <= {"out/shoot", "quarantine/bad"}
    assert "Traceback" not in daemon.text()
