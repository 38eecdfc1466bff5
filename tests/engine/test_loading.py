"""Loading the graph: the stand-in through the production loader, and every broken-model case."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from bshmd.engine import MattingEngine
from bshmd.errors import EXIT_MODEL, ModelLoadError
from bshmd.testing.standin import write_standin_graph

from .images import subject_on_backdrop


def _write_graph(path: Path, build) -> Path:
    """Freeze a small graph built by ``build(tf)`` into ``path``."""
    from bshmd.engine.tf import import_tf

    tf = import_tf()
    graph = tf.Graph()
    with graph.as_default():
        build(tf)
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return path


def _no_contract_tensors(tf) -> None:
    image = tf.compat.v1.placeholder(tf.float32, (None, None, 3), name="image")
    tf.identity(image, name="result")


def _float_output(tf) -> None:
    image = tf.compat.v1.placeholder(tf.float32, (None, None, 3), name="input_image")
    tf.concat([image, image[:, :, :1]], axis=-1, name="output_png")


def _batched_input(tf) -> None:
    image = tf.compat.v1.placeholder(tf.float32, (None, None, None, 3), name="input_image")
    tf.cast(tf.concat([image, image[..., :1]], axis=-1), tf.uint8, name="output_png")


def _missing_folder(tmp: Path, standin: Path) -> Path:
    return tmp / "nowhere" / "tf_graph.pb"


def _missing_file(tmp: Path, standin: Path) -> Path:
    return tmp / "tf_graph.pb"


def _empty_file(tmp: Path, standin: Path) -> Path:
    (tmp / "tf_graph.pb").write_bytes(b"")
    return tmp / "tf_graph.pb"


def _truncated_file(tmp: Path, standin: Path) -> Path:
    data = standin.read_bytes()
    (tmp / "tf_graph.pb").write_bytes(data[: len(data) // 2])
    return tmp / "tf_graph.pb"


def _random_bytes(tmp: Path, standin: Path) -> Path:
    (tmp / "tf_graph.pb").write_bytes(np.random.default_rng(7).bytes(4096))
    return tmp / "tf_graph.pb"


BROKEN = {
    "missing folder": (_missing_folder, "does not exist"),
    "missing file": (_missing_file, "is missing"),
    "empty file": (_empty_file, "is empty"),
    "truncated file": (_truncated_file, "is not a TensorFlow GraphDef"),
    "random bytes": (_random_bytes, "is not a TensorFlow GraphDef"),
    "graph without the tensors": (lambda t, s: _write_graph(t / "tf_graph.pb", _no_contract_tensors),
                                  "has no tensor input_image:0"),
    "wrong dtype": (lambda t, s: _write_graph(t / "tf_graph.pb", _float_output),
                    "output_png:0 is float32, expected uint8"),
    "batch axis": (lambda t, s: _write_graph(t / "tf_graph.pb", _batched_input),
                   "without a batch axis"),
}


def test_standin_loads_and_mattes_a_subject(engine: MattingEngine) -> None:
    image = subject_on_backdrop(96, 128)
    (alpha,) = engine.predict([image])
    assert alpha.shape == (96, 128) and alpha.dtype == np.uint8
    assert alpha[48, 64] == 255  # the subject
    assert alpha[5, 5] == 0  # the backdrop
    assert engine.load_seconds > 0


def test_engine_alpha_is_channel_four_of_a_modelscope_style_run(engine: MattingEngine,
                                                                 standin_dir: Path) -> None:
    """Same feed as ModelScope's ImageMattingPipeline: RGB as float 0..255, no resize."""
    from bshmd.engine.tf import import_tf

    tf = import_tf()
    image = subject_on_backdrop(70, 90, seed=3)
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((standin_dir / "tf_graph.pb").read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        output = session.run("output_png:0", feed_dict={"input_image:0": image.astype(float)})
    (alpha,) = engine.predict([image])
    np.testing.assert_array_equal(alpha, output[:, :, 3])


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_model_gives_a_one_line_error_naming_the_file_and_the_fix(
        case: str, tmp_path: Path, standin_dir: Path) -> None:
    make, expected = BROKEN[case]
    graph_file = make(tmp_path, standin_dir / "tf_graph.pb")
    with pytest.raises(ModelLoadError) as caught:
        MattingEngine(graph_file)
    message = str(caught.value)
    assert "\n" not in message
    assert str(graph_file.parent) in message
    assert expected in message
    assert "bshmd model fetch" in message
    assert caught.value.exit_status == EXIT_MODEL


def test_pinned_sha256_that_matches_loads(standin_dir: Path) -> None:
    graph_file = standin_dir / "tf_graph.pb"
    digest = hashlib.sha256(graph_file.read_bytes()).hexdigest()
    with MattingEngine(graph_file, sha256=digest.upper()) as loaded:
        assert loaded.predict([subject_on_backdrop(32, 32)])[0].shape == (32, 32)


def test_pinned_sha256_mismatch_names_expected_and_actual(standin_dir: Path) -> None:
    graph_file = standin_dir / "tf_graph.pb"
    actual = hashlib.sha256(graph_file.read_bytes()).hexdigest()
    expected = "0" * 64
    with pytest.raises(ModelLoadError) as caught:
        MattingEngine(graph_file, sha256=expected)
    assert actual in str(caught.value) and expected in str(caught.value)


def test_a_gpu_that_is_not_there_is_a_load_error(standin_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="model.device is 'gpu:99'"):
        MattingEngine(standin_dir / "tf_graph.pb", device="gpu:99")


def test_session_settings_are_accepted(tmp_path: Path) -> None:
    graph_file = write_standin_graph(tmp_path / "custom.pb", extra_convs=1)
    with MattingEngine(graph_file, device="cpu", intra_op_threads=1, inter_op_threads=1,
                       gpu_memory_fraction=0.5) as loaded:
        assert loaded.warmup() > 0
        (alpha,) = loaded.predict([subject_on_backdrop(40, 50)])
    assert alpha.shape == (40, 50)
