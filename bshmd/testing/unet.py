"""A matting-network-shaped stand-in for BSHM: a TEST FIXTURE, never a default, never "the model".

``standin.py``'s graph computes its alpha with a handful of cheap ops. Comparing runtimes
needs what a real matting network makes them do: this graph has BSHM's contract
(``input_image:0`` float32 H×W×3 RGB 0..255, no batch axis; ``output_png:0`` uint8 H×W×4, the
alpha in channel 4) and inside, the op types of a matting U-Net:

- the photo resized (bilinear, from its dynamic shape) to ``SIDE``×``SIDE`` and scaled to 0..1;
- an encoder of Conv2D + FusedBatchNorm + ReLU blocks, each halving the size;
- a decoder that doubles the size (bilinear), concatenates the encoder's skip and convolves;
- a 1-channel sigmoid head, resized back (bilinear, dynamic) to the photo's size.

Weights are seeded (He-scaled), batch-norm statistics are fixed, so a given ``seed`` always
gives the same graph, and the alpha is a smooth function of the photo that no runtime can
take a short cut through. Its CPU cost is a fraction of a second per photo on 2 cores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bshmd.engine.tf import import_tf
from bshmd.testing.standin import _graph_path

SIDE = 512  # the network's working size, as BSHM's own
ENCODER = (16, 24, 32, 48)  # channels per level; each level halves the size
STEM = 12


def build_unet_graph_def(*, seed: int = 0, side: int = SIDE, encoder: tuple[int, ...] = ENCODER) -> Any:
    """The frozen GraphDef (see the module docstring)."""
    import numpy as np

    tf = import_tf()
    v1 = tf.compat.v1
    rng = np.random.default_rng(seed)

    def conv_bn_relu(x: Any, out_channels: int, stride: int, name: str) -> Any:
        in_channels = int(x.shape[-1])
        weights = rng.normal(0.0, np.sqrt(2.0 / (9 * in_channels)), (3, 3, in_channels, out_channels))
        x = tf.nn.conv2d(x, tf.constant(weights.astype(np.float32)), strides=stride, padding="SAME",
                         name=f"{name}/conv")
        scale = rng.uniform(0.8, 1.2, out_channels).astype(np.float32)
        offset = rng.normal(0.0, 0.1, out_channels).astype(np.float32)
        mean = rng.normal(0.0, 0.05, out_channels).astype(np.float32)
        variance = rng.uniform(0.5, 1.5, out_channels).astype(np.float32)
        x, _, _ = v1.nn.fused_batch_norm(x, scale, offset, mean=mean, variance=variance, epsilon=1e-3,
                                         is_training=False, name=f"{name}/bn")
        return tf.nn.relu(x, name=f"{name}/relu")

    graph = tf.Graph()
    with graph.as_default():
        image = v1.placeholder(tf.float32, shape=(None, None, 3), name="input_image")
        size = tf.shape(image)[:2]
        x = tf.image.resize(image[None] / 255.0, [side, side], method="bilinear")
        x = conv_bn_relu(x, STEM, 1, "stem")
        skips = [x]
        for level, channels in enumerate(encoder):
            x = conv_bn_relu(x, channels, 2, f"down{level}")
            x = conv_bn_relu(x, channels, 1, f"down{level}b")
            skips.append(x)
        skips.pop()
        for level, skip in reversed(list(enumerate(skips))):
            x = tf.image.resize(x, tf.shape(skip)[1:3], method="bilinear")
            x = tf.concat([x, skip], axis=-1)
            x = conv_bn_relu(x, int(skip.shape[-1]), 1, f"up{level}")
        head = rng.normal(0.0, np.sqrt(1.0 / (9 * int(x.shape[-1]))), (3, 3, int(x.shape[-1]), 1))
        logits = tf.nn.conv2d(x, tf.constant(head.astype(np.float32) * 4.0), strides=1, padding="SAME",
                              name="head/conv")
        matte = tf.sigmoid(logits)
        matte = tf.image.resize(matte, size, method="bilinear")[0, :, :, 0]
        rgb = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
        alpha = tf.cast(tf.round(matte * 255.0), tf.uint8)
        tf.concat([rgb, alpha[:, :, None]], axis=-1, name="output_png")
    return graph.as_graph_def()


def write_unet_graph(path: Path, *, seed: int = 0) -> Path:
    """Write the U-Net stand-in to ``path`` (a ``.pb`` file, or a folder to hold ``tf_graph.pb``)."""
    target = _graph_path(path)
    target.write_bytes(build_unet_graph_def(seed=seed).SerializeToString())
    return target
