"""A host without TensorFlow runs ``bshmd run`` with ``runtime: onnxruntime`` on an exported model.

A fresh virtual environment gets bshmd (installed from this tree with ``pip install --no-deps``)
and only the distributions bshmd needs at run time besides TensorFlow, linked from the test
environment's own site-packages: TensorFlow provably absent, and nothing downloaded but the
build backend pip fetches to build bshmd's wheel.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import venv
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from bshmd.testing.images import synthetic_portrait
from tests.service.daemonproc import DaemonProcess, folder, write_config
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
LEFT_OUT = {"tensorflow", "tensorflow-cpu", "keras", "modelscope", "systemd-python", "tf2onnx",
            "onnxconverter-common", "openvino"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(names: list[str]) -> set[str]:
    """The distributions ``names`` need, transitively, as installed here (extras and markers ignored)."""
    seen: set[str] = set()
    pending = list(names)
    while pending:
        name = _canonical(pending.pop())
        if name in seen or name in LEFT_OUT:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return seen


def _link_distributions(names: set[str], site: Path) -> None:
    """Symlink each distribution's top-level files and folders (and its .dist-info) into ``site``."""
    for name in names:
        dist = metadata.distribution(name)
        root = Path(str(dist.locate_file("")))
        tops = {Path(str(file)).parts[0] for file in dist.files or []}
        for top in tops:
            source, target = root / top, site / top
            if top in ("..", "bin") or not source.exists() or target.exists():
                continue
            target.symlink_to(source)


@pytest.fixture(scope="module")
def no_tf_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env_dir = tmp_path_factory.mktemp("no-tf-venv")
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    needed = [Requirement(text).name for text in _project_dependencies()] + ["onnxruntime", "pip"]
    _link_distributions(_closure(needed), site)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps",
                    str(REPO)], check=True, env=env, cwd=env_dir, timeout=240)
    probe = subprocess.run([python, "-c", "import tensorflow"], capture_output=True, env=env, cwd=env_dir)
    assert probe.returncode != 0, "TensorFlow is importable in the environment meant to lack it"
    return python


def _project_dependencies() -> list[str]:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]


@pytest.mark.slow
def test_bshmd_run_with_onnxruntime_needs_no_tensorflow(no_tf_python: Path, exports, unet_dir: Path,  # noqa: ANN001
                                                         tmp_path: Path) -> None:
    import cv2

    exports[("onnx", "fp32")]
    hot = folder(tmp_path, "hot")
    config = write_config(tmp_path / "bshmd.yaml", unet_dir, [hot],
                          state_dir=str(tmp_path / "state"),
                          outputs={"formats": ["alpha"]})
    data = yaml.safe_load(config.read_text())
    data["model"].update({"runtime": "onnxruntime", "export_dir": str(exports.config.export_dir)})
    config.write_text(yaml.safe_dump(data))
    photo = synthetic_portrait(320, 240)
    cv2.imwrite(str(Path(hot["input"]) / "portrait.png"), photo[:, :, ::-1])

    env = {"PYTHONPATH": "", "BSHMD_STATE_DIR": str(tmp_path / "state")}
    daemon = DaemonProcess(config, tmp_path / "daemon.log", env=env, argv=[str(no_tf_python), "-m", "bshmd"])
    try:
        try:
            wait_until(lambda: any(Path(hot["output"]).glob("portrait*")), 120, "a result from the daemon")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; daemon log:\n{daemon.text()}") from exc
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(60) == 0, daemon.text()
    finally:
        daemon.kill()
    log = daemon.text()
    assert "runtime onnxruntime" in log, log
    assert "TensorFlow" not in log, log
