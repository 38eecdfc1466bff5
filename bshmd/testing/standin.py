"""A stand-in for BSHM's ``tf_graph.pb``: a TEST FIXTURE, never a default, never "the model".

The real graph cannot be downloaded where the tests run, so they load this one instead. It
honours exactly the contract bshmd relies on:

- ``input_image:0``: float32, shape (H, W, 3), RGB 0..255, no batch axis;
- ``output_png:0``: uint8, shape (H, W, 4): the input's RGB and, in channel 4, the alpha.

Its alpha is a plain, deterministic function of the pixels, so that a subject on a plain
backdrop gives a sensible matte: each pixel's colour distance from the median colour of the
image border (taken to be the backdrop), mapped linearly from ``LOW..HIGH`` to 0..255 and
smoothed with a 5×5 average. ``extra_convs`` adds convolution layers whose result is folded in
with a weight of 1e-30: they cost time like a real network but never change a single alpha
value, which lets benchmarks dial in a realistic cost.

The graph is built with ``tf.compat.v1`` ops in its own ``tf.Graph`` and holds constants
only (no variables), i.e. it is frozen like the real one.
"""

from __future__ import annotations

from pathlib import Path

from bshmd.engine.tf import import_tf

GRAPH_FILE = "tf_graph.pb"
LOW = 12.0  # colour distance (0..441) still counted as backdrop
HIGH = 60.0  # colour distance from which a pixel is fully foreground
_NEGLIGIBLE = 1e-30  # weight of the extra convolutions: far below float32 resolution of 0..255


def _graph_path(path: Path) -> Path:
    path = Path(path)
    if path.suffix == ".pb":
        path.parent.mkdir(parents=True, exist_ok=True)
        return path
    path.mkdir(parents=True, exist_ok=True)
    return path / GRAPH_FILE


def build_standin_graph_def(*, extra_convs: int = 0, channels: int = 8):  # -> tf.compat.v1.GraphDef
    """Build the stand-in's frozen GraphDef (see the module docstring for what it computes)."""
    import numpy as np

    tf = import_tf()
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        image = v1.placeholder(tf.float32, shape=(None, None, 3), name="input_image")
        border = tf.concat([image[0], image[-1], image[:, 0], image[:, -1]], axis=0)
        ranked = tf.sort(border, axis=0)
        backdrop = ranked[tf.shape(ranked)[0] // 2]
        distance = tf.sqrt(tf.reduce_sum(tf.square(image - backdrop), axis=-1) + 1e-12)
        alpha = tf.clip_by_value((distance - LOW) * (255.0 / (HIGH - LOW)), 0.0, 255.0)
        alpha = tf.nn.avg_pool2d(alpha[None, :, :, None], ksize=5, strides=1, padding="SAME")[0, :, :, 0]

        if extra_convs > 0:
            # Fixed positive weights normalised to sum 1 keep activations in 0..1 (never inf/NaN),
            # so the 1e-30 fold-in below is exactly absorbed by float32 rounding.
            rng = np.random.default_rng(0)
            features = image[None] / 255.0
            in_channels = 3
            for index in range(extra_convs + 1):
                weights = rng.uniform(0.5, 1.0, size=(3, 3, in_channels, channels)).astype(np.float32)
                weights /= weights.sum(axis=(0, 1, 2), keepdims=True)
                features = tf.nn.relu(
                    tf.nn.conv2d(features, tf.constant(weights), strides=1, padding="SAME",
                                 name=f"standin_conv{index}")
                )
                in_channels = channels
            alpha = alpha + tf.reduce_mean(features[0], axis=-1) * _NEGLIGIBLE

        rgb = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
        alpha_u8 = tf.cast(tf.round(alpha), tf.uint8)
        tf.concat([rgb, alpha_u8[:, :, None]], axis=-1, name="output_png")
    return graph.as_graph_def()


def write_standin_graph(path: Path, *, extra_convs: int = 0, channels: int = 8) -> Path:
    """Write the stand-in graph to ``path`` (a ``.pb`` file, or a folder to hold ``tf_graph.pb``).

    Returns the file written.
    """
    target = _graph_path(path)
    graph_def = build_standin_graph_def(extra_convs=extra_convs, channels=channels)
    target.write_bytes(graph_def.SerializeToString())
    return target


def standin_model_dir(tmp_path_factory_dir: Path) -> Path:
    """Write the default stand-in into ``tmp_path_factory_dir`` and return that folder.

    For session-scoped fixtures in any test directory::

        @pytest.fixture(scope="session")
        def model_dir(tmp_path_factory):
            return standin_model_dir(tmp_path_factory.mktemp("standin-model"))
    """
    write_standin_graph(Path(tmp_path_factory_dir))
    return Path(tmp_path_factory_dir)


def build_fixed_matte_graph_def(alpha):  # -> tf.compat.v1.GraphDef
    """A graph with BSHM's contract whose alpha is always ``alpha`` (uint8 H×W), whatever the photo.

    A TEST FIXTURE for outputs whose correct result is known in advance: a photo made by
    blending a known foreground over a known backdrop through ``alpha`` (see
    bshmd.testing.known_matte) has a known true composite. It accepts only H×W×3 inputs.
    """
    import numpy as np

    tf = import_tf()
    v1 = tf.compat.v1
    alpha = np.asarray(alpha, dtype=np.uint8)
    graph = tf.Graph()
    with graph.as_default():
        image = v1.placeholder(tf.float32, shape=(alpha.shape[0], alpha.shape[1], 3), name="input_image")
        rgb = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
        tf.concat([rgb, tf.constant(alpha[:, :, None])], axis=-1, name="output_png")
    return graph.as_graph_def()


def write_fixed_matte_graph(path: Path, alpha) -> Path:
    """Write the fixed-matte graph (``build_fixed_matte_graph_def``) to ``path``; returns the file."""
    target = _graph_path(path)
    target.write_bytes(build_fixed_matte_graph_def(alpha).SerializeToString())
    return target
