"""TensorFlow starts quietly: no C++/absl lines on stderr at the default level, all of them at DEBUG."""

from __future__ import annotations

import ctypes
import io
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from bshmd.engine import tf as tf_module

# absl's line prefix, its pre-initialisation notice, and words TensorFlow's start-up lines use.
TF_NOISE = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|oneDNN|cuda|cpu_feature_guard|TensorFlow binary",
                      re.IGNORECASE | re.MULTILINE)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from bshmd.testing.images import synthetic_portrait
    from bshmd.testing.standin import write_standin_graph

    root = tmp_path_factory.mktemp("quiet")
    model = root / "model"
    write_standin_graph(model)
    src = root / "in"
    src.mkdir()
    Image.fromarray(synthetic_portrait(96, 128)).save(src / "a.png")
    return model, src


def process(model: Path, src: Path, dst: Path, *config: str) -> subprocess.CompletedProcess[str]:
    settings = dst.parent / f"{dst.name}.yaml"
    settings.write_text("gate:\n  enabled: false\n" + "".join(config))
    return subprocess.run([sys.executable, "-m", "bshmd", "process", str(src), str(dst), "--model", str(model),
                           "-c", str(settings), "--no-progress"],
                          capture_output=True, text=True, timeout=180, env=_env())


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the operator's own setting would win
    return env


@pytest.mark.slow
def test_process_prints_no_tensorflow_lines_at_the_default_level(photos: tuple[Path, Path], tmp_path: Path) -> None:
    model, src = photos
    result = process(model, src, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "a.png.cutout.png").is_file()
    assert not TF_NOISE.search(result.stderr), result.stderr
    assert not TF_NOISE.search(result.stdout), result.stdout


@pytest.mark.slow
def test_debug_level_lets_tensorflow_log_its_start(photos: tuple[Path, Path], tmp_path: Path) -> None:
    model, src = photos
    result = process(model, src, tmp_path / "out", "logging:\n  level: DEBUG\n")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^I\d{4} .*\] ", result.stderr, re.MULTILINE), result.stderr  # TensorFlow's INFO lines


def test_filter_keeps_warnings_and_foreign_lines_drops_info_and_notes_a_missing_driver() -> None:
    lines = [
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        b"I0000 00:00:1796109206.067390   19915 port.cc:153] oneDNN custom operations are on.",
        b"I0000 00:00:1796109206.074830   19915 cudart_stub.cc:31] Could not find cuda drivers on your machine.",
        b"I0000 00:00:1796109206.09   19915 cpu_feature_guard.cc:227] This TensorFlow binary is optimized",
        b"To enable the following instructions: AVX2 FMA, rebuild TensorFlow with the appropriate flags.",
        b"E0000 00:00:1796109210.015741   19915 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)",
        b"W1201 07:21:09.000001   19915 gpu_device.cc:2344] Cannot dlopen some GPU libraries.",
        b"Traceback (most recent call last):",
        b"2026-12-01 07:21:09,001 INFO    bshmd.service: http: serving on http://127.0.0.1:9464",
        b"E1201 07:21:09.000002   19915 op_kernel.cc:1818] OP_REQUIRES failed",
    ]
    sink = io.BytesIO()
    status = tf_module.filter_stream(io.BytesIO(b"\n".join(lines) + b"\n"), sink)
    assert sink.getvalue().decode().splitlines() == [
        "W1201 07:21:09.000001   19915 gpu_device.cc:2344] Cannot dlopen some GPU libraries.",
        "Traceback (most recent call last):",
        "2026-12-01 07:21:09,001 INFO    bshmd.service: http: serving on http://127.0.0.1:9464",
        "E1201 07:21:09.000002   19915 op_kernel.cc:1818] OP_REQUIRES failed",
    ]
    assert status == tf_module._SAW_NO_CUDA
    assert tf_module.filter_stream(io.BytesIO(lines[1] + b"\n"), io.BytesIO()) == 0


def test_what_tensorflow_prints_before_aborting_the_import_still_reaches_stderr() -> None:
    # A CPU without the instructions TensorFlow was built for: a fatal line, then abort().
    code = (
        "import os\n"
        "from bshmd.engine.tf import _FilteredStderr\n"
        "with _FilteredStderr():\n"
        "    os.write(2, b'I0000 00:00:1.5   7 port.cc:1] oneDNN custom operations are on.\\n')\n"
        "    os.write(2, b'F0000 00:00:1.6   7 cpu_feature_guard.cc:9] The TensorFlow library was compiled to use AVX\\n')\n"
        "    os.abort()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert result.returncode == -signal.SIGABRT
    # The filter outlives the aborted process and holds the pipe until it has passed everything on.
    assert b"compiled to use AVX" in result.stderr
    assert b"oneDNN" not in result.stderr


@pytest.mark.slow
def test_a_host_without_a_cuda_driver_gets_one_info_line_of_ours() -> None:
    code = ("import logging, sys\n"
            "logging.basicConfig(level=logging.INFO, stream=sys.stderr, format='%(levelname)s %(name)s: %(message)s')\n"
            "from bshmd.engine.tf import import_tf\n"
            "import_tf().compat.v1.Session().close()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=_env())
    assert result.returncode == 0, result.stderr
    assert not TF_NOISE.search(result.stderr.replace("no CUDA GPU", "")), result.stderr
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:  # this host has no NVIDIA driver: say so, once
        assert result.stderr.splitlines() == [
            "INFO bshmd.engine: no CUDA GPU (no NVIDIA driver, or no device visible): TensorFlow runs on the CPU"]
    else:  # a GPU host: TensorFlow uses it, or the one line says why not
        assert len(result.stderr.splitlines()) <= 1, result.stderr
