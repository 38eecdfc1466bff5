"""ONNX Runtime and OpenVINO against TensorFlow on the U-Net-shaped stand-in, and how each loads.

The mattes of every runtime must equal TensorFlow's within 1 level on at least 99.9 % of the
pixels, at sizes from a sliver to a 24 MP frame (downscaled to max_side and brought back up).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from bshmd.config import ModelConfig
from bshmd.engine import MattingEngine
from bshmd.engine.export import MANIFEST, find_export, graph_sha256
from bshmd.engine.ort import OnnxRuntimeEngine
from bshmd.engine.ov import OpenVinoEngine
from bshmd.errors import ModelLoadError
from bshmd.testing.images import synthetic_portrait

# (width, height): a sliver, VGA, 720p, 1080p, and 24 MP (slow: 2000 px network, 24 MP upsampling).
SIZES = [(17, 31), (640, 480), (1280, 720), (1920, 1080),
         pytest.param((6528, 3672), marks=pytest.mark.slow, id="24MP")]
FP16_MAX_DIFFERENCE = 4  # levels: the fp16 export's bound (measured: 1)


@pytest.fixture(scope="module")
def tensorflow(unet_dir: Path):  # noqa: ANN201
    with MattingEngine(unet_dir / "tf_graph.pb", device="cpu") as engine:
        yield engine


@pytest.fixture(scope="module")
def runtimes(exports, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201, ANN001
    config = exports.config
    engines = {
        "onnxruntime": OnnxRuntimeEngine.from_export(config, exports[("onnx", "fp32")], precision="fp32"),
        "openvino": OpenVinoEngine.from_export(config, exports[("openvino", "fp32")], precision="fp32"),
        "onnxruntime-fp16": OnnxRuntimeEngine.from_export(config, exports[("onnx", "fp16")], precision="fp16"),
    }
    yield engines
    for engine in engines.values():
        engine.close()


def _difference(expected: np.ndarray, got: np.ndarray) -> np.ndarray:
    assert got.shape == expected.shape and got.dtype == np.uint8
    return np.abs(expected.astype(np.int16) - got.astype(np.int16))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_runtime_mattes_as_tensorflow_does(size: tuple[int, int], tensorflow: MattingEngine,
                                                  runtimes: dict, record_property) -> None:  # noqa: ANN001
    width, height = size
    photo = synthetic_portrait(width, height, seed=width % 7)
    (expected,) = tensorflow.predict([photo])
    assert 0 < expected.mean() < 255
    for name, engine in runtimes.items():
        (got,) = engine.predict([photo])
        difference = _difference(expected, got)
        record_property(f"{name}-max-difference", int(difference.max()))
        if name.endswith("fp16"):
            assert difference.max() <= FP16_MAX_DIFFERENCE, name
        assert (difference <= 1).mean() >= 0.999, (name, int(difference.max()))


def test_a_batch_of_mixed_sizes_runs_in_order_on_each_runtime(tensorflow: MattingEngine, runtimes: dict) -> None:
    photos = [synthetic_portrait(64, 48, seed=1), synthetic_portrait(48, 64, seed=2), synthetic_portrait(64, 48)]
    expected = tensorflow.predict(photos)
    for engine in runtimes.values():
        for want, got in zip(expected, engine.predict(photos), strict=True):
            assert _difference(want, got).max() <= 1


def test_the_manifest_names_the_graph_the_tools_and_the_measured_difference(exports, unet_dir: Path) -> None:  # noqa: ANN001
    made = exports[("onnx", "fp32")]
    manifest = json.loads((made.folder / MANIFEST).read_text())
    assert manifest["source_sha256"] == graph_sha256(unet_dir / "tf_graph.pb")
    assert set(manifest["tools"]) >= {"tensorflow", "tf2onnx", "onnx", "onnxruntime"}
    assert manifest["input"]["name"] == "input_image" and manifest["output"]["name"] == "output_png"
    assert manifest["max_matte_difference"] <= 1
    assert [row["size"] for row in manifest["comparison"]] == ["31x17", "640x480"]


def test_a_runtime_loads_only_the_export_of_its_own_graph(exports, unet_dir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    exports[("onnx", "fp32")]
    config = exports.config.model_copy(update={"runtime": "onnxruntime"})
    with MattingEngine.from_config(config, fetch=False) as engine:
        assert isinstance(engine, OnnxRuntimeEngine)
        assert engine.info.runtime == "onnxruntime"
    other = tmp_path / "other"
    other.mkdir()
    (other / "tf_graph.pb").write_bytes((unet_dir / "tf_graph.pb").read_bytes() + b"\n")
    with pytest.raises(ModelLoadError, match="bshmd model export -c FILE --to onnx --precision fp32"):
        MattingEngine.from_config(config.model_copy(update={"path": other}), fetch=False)
    with pytest.raises(ModelLoadError, match="--to openvino --precision fp16"):
        find_export(config, unet_dir / "tf_graph.pb", "openvino", "fp16")


def test_a_manifest_made_from_another_graph_is_refused(exports, unet_dir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    import shutil

    made = exports[("onnx", "fp32")]
    config = exports.config.model_copy(update={"export_dir": tmp_path})
    sha = graph_sha256(unet_dir / "tf_graph.pb")
    copy = tmp_path / sha[:16] / "onnx-fp32"
    shutil.copytree(made.folder, copy)
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest["source_sha256"] = "0" * 64
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="was made from a graph with SHA-256 0000"):
        find_export(config, unet_dir / "tf_graph.pb", "onnxruntime", "fp32")


GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def test_missing_gpu_providers_fall_back_with_one_warning(exports, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    config = exports.config.model_copy(update={"providers": GPU_PROVIDERS, "precision": "fp32"})
    caplog.set_level(logging.WARNING, logger="bshmd")
    with OnnxRuntimeEngine.from_export(config, exports[("onnx", "fp32")], precision="fp32") as engine:
        assert engine.info.device == "CPUExecutionProvider"
        engine.predict([synthetic_portrait(40, 30)])
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "TensorrtExecutionProvider" in warnings[0].getMessage()
    assert "CUDAExecutionProvider" in warnings[0].getMessage()


def test_strict_refuses_to_start_naming_the_missing_provider(exports) -> None:  # noqa: ANN001
    config = exports.config.model_copy(update={"providers": GPU_PROVIDERS, "strict": True})
    with pytest.raises(ModelLoadError, match="TensorrtExecutionProvider"):
        OnnxRuntimeEngine.from_export(config, exports[("onnx", "fp32")], precision="fp32")


def test_an_onnx_file_without_the_contract_is_a_load_error(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["input_image"], ["output_png"])], "wrong",
        [helper.make_tensor_value_info("input_image", TensorProto.FLOAT, ["H", "W", 3])],
        [helper.make_tensor_value_info("output_png", TensorProto.FLOAT, ["H", "W", 3])])
    model_file = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), model_file)
    with pytest.raises(ModelLoadError, match=r"output_png is tensor\(float\)"):
        OnnxRuntimeEngine(model_file)


def test_openvino_compiles_each_size_once_and_caches_it_across_restarts(
        exports, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    made = exports[("openvino", "fp32")]
    caplog.set_level(logging.INFO, logger="bshmd.engine")
    with OpenVinoEngine.from_export(exports.config, made, precision="fp32") as engine:
        for _ in range(2):
            engine.predict([synthetic_portrait(96, 64), synthetic_portrait(96, 64, seed=1)])
        compiles = [r for r in caplog.records if "compiled the network for 96×64" in r.getMessage()]
        assert len(compiles) == 1
        # A 24 MP 3:2 frame runs at max_side on the long side, the short one on the step.
        assert engine.network_size(4000, 6000) == (1336, 2000)
    assert any((made.folder / "compiled").iterdir()), "no compiled blob cached for a restart"


def test_openvino_without_the_device_asked_for_runs_on_the_cpu_or_refuses(exports) -> None:  # noqa: ANN001
    made = exports[("openvino", "fp32")]
    with OpenVinoEngine(made.model_file, device="gpu:3") as engine:
        assert engine.info.device == "CPU"
    with pytest.raises(ModelLoadError, match="gpu:3"):
        OpenVinoEngine(made.model_file, device="gpu:3", strict=True)


def test_model_config_takes_the_runtime_settings() -> None:
    config = ModelConfig(runtime="openvino", precision="fp16", providers=["CUDAExecutionProvider"], strict=True)
    assert config.providers == ("CUDAExecutionProvider",) and config.strict
    with pytest.raises(ValueError, match="runtime"):
        ModelConfig(runtime="tensorrt")


def test_tensorflow_fp16_on_a_cpu_warns_and_runs_fp32(unet_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bshmd")
    with MattingEngine(unet_dir / "tf_graph.pb", device="cpu", precision="fp16") as engine:
        assert engine.info.precision == "fp32"
    assert any("fp16 needs a GPU" in record.getMessage() for record in caplog.records)
