"""A real network for tests on real photos: MediaPipe selfie segmentation as a matte.

This is person *segmentation*, not BSHM matting; tests and scripts use it where they need
what a real network sees in a real photograph (for example to calibrate the quality gate)
on machines that cannot download BSHM. Never used by the daemon.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from bshmd.engine.tf import import_tf


def selfie_matte(model: Path, rgb: Any) -> Any:
    """The model's person probability for ``rgb`` (uint8 H×W×3), as a full-size uint8 matte."""
    import cv2
    import numpy as np

    tf = import_tf()
    with warnings.catch_warnings():
        # TF 2.21 announces the interpreter's move to ai-edge-litert; it still works.
        warnings.filterwarnings("ignore", message=r".*tf\.lite\.Interpreter is deprecated", category=UserWarning)
        interpreter = tf.lite.Interpreter(model_path=str(model))
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    _, height, width, _ = source["shape"]
    batch = cv2.resize(rgb, (int(width), int(height)), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    interpreter.set_tensor(source["index"], batch[None])
    interpreter.invoke()
    probability = interpreter.get_tensor(target["index"])[0, :, :, 0]
    probability = cv2.resize(probability, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.clip(np.rint(probability * 255), 0, 255).astype(np.uint8)
