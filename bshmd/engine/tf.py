"""The one place that imports TensorFlow, so that importing bshmd stays instant."""

from __future__ import annotations

import os
from types import ModuleType


def import_tf() -> ModuleType:
    """Return ``tensorflow.compat.v1``-capable ``tensorflow``, importing it on first use.

    TensorFlow's C++ runtime prints several lines of INFO noise on import; level 2 keeps
    warnings and errors. An operator who sets ``TF_CPP_MIN_LOG_LEVEL`` keeps their value.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf
