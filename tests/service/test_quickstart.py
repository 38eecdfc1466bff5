"""The quick start: ``make run`` with etc/quickstart.yaml, offline and with a model placed by hand."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from daemonproc import REPO, DaemonProcess, free_port
from PIL import Image

from bshmd.errors import EXIT_MODEL
from bshmd.testing.images import synthetic_portrait
from bshmd.testing.standin import write_standin_graph
from tests.support.waiting import wait_until

QUICKSTART = REPO / "etc" / "quickstart.yaml"


def checkout_copy(tmp_path: Path) -> Path:
    """A folder laid out like the checkout's root, with the quick start's configuration in etc/."""
    (tmp_path / "etc").mkdir()
    return Path(shutil.copy(QUICKSTART, tmp_path / "etc" / "quickstart.yaml"))


def test_make_run_without_config_uses_the_quickstart() -> None:
    dry = subprocess.run(["make", "-n", "run"], cwd=REPO, capture_output=True, text=True, timeout=30,
                         env={k: v for k, v in os.environ.items() if k != "CONFIG"})
    assert dry.returncode == 0, dry.stderr
    assert "bin/bshmd run -c etc/quickstart.yaml" in dry.stdout


@pytest.mark.slow
def test_offline_first_start_creates_hot_folders_and_says_where_to_put_the_model(tmp_path: Path) -> None:
    config = checkout_copy(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "MODELSCOPE_DOMAIN")}
    # A network namespace of its own: no interface but a loopback that is down, so nothing is reachable.
    result = subprocess.run(["unshare", "--net", sys.executable, "-m", "bshmd", "run", "-c", str(config)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == EXIT_MODEL, result.stderr
    hot = tmp_path / "hot"
    for name in ("in", "out", "quarantine"):
        assert (hot / name).is_dir()
        assert f"bshmd: created {hot / name}\n" in result.stdout
    assert f"drop photos into {hot / 'in'}" in result.stdout
    assert "review page: http://127.0.0.1:9464/review/" in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("bshmd: error:")]
    assert "cannot be reached" in error  # no download attempts and retries first
    assert "place the model by hand" in error and "tf_graph.pb" in error and "set model.path" in error
    assert not list((hot / "model-cache").rglob("tf_graph.pb"))


@pytest.mark.slow
def test_with_a_model_placed_by_hand_a_photo_dropped_into_hot_in_is_cut_out(tmp_path: Path) -> None:
    config = checkout_copy(tmp_path)
    # As the file's comment says: tf_graph.pb in ./hot/model, named by model.path. The stand-in
    # graph (a test fixture with BSHM's tensors) takes the real model's place, and its softer
    # mattes the gate's; a free port keeps parallel runs apart.
    write_standin_graph(tmp_path / "hot" / "model")
    settings = yaml.safe_load(config.read_text())
    settings["model"]["path"] = "../hot/model"
    settings.update(http={"port": free_port()}, gate={"enabled": False})
    config.write_text(yaml.safe_dump(settings))

    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        daemon.wait_log("ready:", timeout=120)
        photo = tmp_path / "hot" / "in" / "portrait.png"
        Image.fromarray(synthetic_portrait(160, 120)).save(tmp_path / "portrait.png")
        shutil.move(tmp_path / "portrait.png", photo)
        cutout = tmp_path / "hot" / "out" / "portrait.png.cutout.png"
        wait_until(cutout.is_file, 60, "the cut-out in ./hot/out")
        with Image.open(cutout) as image:
            assert (image.mode, image.size) == ("RGBA", (160, 120))
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
    finally:
        daemon.kill()
    assert f"review page: http://127.0.0.1:{settings['http']['port']}/review/" in daemon.text()
