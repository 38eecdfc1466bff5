"""``bshmd process`` as a user runs it: a subprocess over a tree of real photographs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from bshmd.errors import EXIT_MODEL, EXIT_QUARANTINED, EXIT_USAGE


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bshmd.testing.standin import write_standin_graph

    folder = tmp_path_factory.mktemp("standin-model")
    write_standin_graph(folder)
    return folder


def bshmd(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bshmd", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=180)


@pytest.mark.slow
def test_process_writes_results_and_quarantines_the_broken_file(tmp_path: Path, shared_testdata: Path,
                                                                 model_dir: Path) -> None:
    src = tmp_path / "photos"
    (src / "session").mkdir(parents=True)
    shutil.copy(shared_testdata / "portrait-hopper.png", src / "studio.png")
    shutil.copy(shared_testdata / "portrait-astronaut.png", src / "session" / "astronaut.png")
    data = (shared_testdata / "no-person-rocket.jpg").read_bytes()
    (src / "broken.jpg").write_bytes(data[: len(data) // 3])  # a copy cut short
    (src / "notes.txt").write_text("not an image")
    (src / "._studio.png").write_bytes(b"\x00\x05\x16\x07")  # macOS resource fork: never an input
    # The stand-in graph's mattes are softer than BSHM's: widen the gate's uncertainty limit.
    config = tmp_path / "oneshot.yaml"
    config.write_text("gate:\n  max_uncertain: 0.9\n  max_foreground: 1.0\noutputs:\n  formats: [cutout, composite]\n")

    result = bshmd("process", src, tmp_path / "out", "--model", model_dir, "-c", config, "--no-progress",
                   cwd=tmp_path)

    assert result.returncode == EXIT_QUARANTINED, result.stderr
    assert "processed 2 of 3 images" in result.stdout
    assert "quarantined 1 (truncated: 1)" in result.stdout
    assert "images/s" in result.stdout
    out = tmp_path / "out"
    for rel, size in (("studio.png", (512, 600)), ("session/astronaut.png", (512, 512))):
        with Image.open(out / f"{rel}.cutout.png") as cutout:
            assert (cutout.mode, cutout.size) == ("RGBA", size)
        with Image.open(out / f"{rel}.composite.jpg") as composite:
            assert (composite.mode, composite.size) == ("RGB", size)
        assert (src / rel).exists()  # inputs stay where they are
    quarantine = tmp_path / "out.quarantine"
    assert (quarantine / "broken.jpg").is_file()
    assert not (src / "broken.jpg").exists()
    assert (src / "notes.txt").exists() and not list(out.glob("notes*")) and not list(out.glob("._*"))


def test_process_without_a_model_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    result = bshmd("process", "src", "out", cwd=tmp_path)
    assert result.returncode == EXIT_USAGE
    assert "--model" in result.stderr


@pytest.mark.slow
def test_process_with_an_unloadable_model_exits_3(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "tf_graph.pb").write_bytes(b"not a graph")
    result = bshmd("process", "src", "out", "--model", "model", cwd=tmp_path)
    assert result.returncode == EXIT_MODEL, result.stderr
