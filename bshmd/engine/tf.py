"""The one place that imports TensorFlow, so that importing bshmd stays instant.

TensorFlow's C++ runtime logs through absl, and everything it logs before absl is initialised
(oneDNN, the CUDA stubs, cpu_feature_guard, a failed ``cuInit`` on a host without a driver)
goes straight to file descriptor 2 whatever ``TF_CPP_MIN_LOG_LEVEL`` says. So the import and
the first device enumeration run with descriptor 2 captured; afterwards the INFO lines and the
known CUDA-missing lines are dropped, one INFO line of ours says what it means, and anything
else (a real warning or error) is passed on unchanged. With ``logging.level: DEBUG`` nothing
is captured and TensorFlow logs everything.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

log = logging.getLogger("bshmd.engine")

# absl's prefix: severity, MMDD, time (epoch seconds before initialisation), thread, file:line].
_ABSL_LINE = re.compile(rb"^([IWEF])\d{4} [\d:.]+\s+\d+ [^\]]+\] (.*)$")
_ABSL_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# What TensorFlow says, at any severity, when this host has no NVIDIA driver at all. A driver
# without CUDA's libraries ("Cannot dlopen some GPU libraries") is a real warning and stays.
_CUDA_MISSING = re.compile(rb"failed call to cuInit|Could not find cuda drivers")

_lock = threading.Lock()
_tf: ModuleType | None = None


def import_tf() -> ModuleType:
    """Return ``tensorflow`` (used through ``tf.compat.v1``), importing it quietly on first use.

    An operator who sets ``TF_CPP_MIN_LOG_LEVEL`` keeps their value.
    """
    global _tf
    with _lock:
        if _tf is None:
            verbose = logging.getLogger("bshmd").isEnabledFor(logging.DEBUG)
            # 1: TensorFlow's own INFO lines go once absl is initialised; warnings stay.
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "1")
            if verbose:
                import tensorflow as tf

                tf.config.list_physical_devices()
            else:
                captured: list[bytes] = []
                try:
                    with _captured_stderr(captured):
                        import tensorflow as tf

                        tf.config.list_physical_devices()  # enumeration is where cuInit fails
                finally:
                    _pass_on(captured)  # also when the import failed: its reasons are in there
            _tf = tf
        return _tf


@contextmanager
def _captured_stderr(lines: list[bytes]) -> Iterator[None]:
    """Redirect descriptor 2 into a temporary file; ``lines`` holds its lines afterwards."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                sink.seek(0)
                lines.extend(sink.read().splitlines())
    finally:
        os.close(saved)


def _pass_on(lines: list[bytes]) -> None:
    """Write the lines worth an operator's attention back to stderr; note a missing CUDA once."""
    kept: list[bytes] = []
    cuda_missing = False
    keeping = True  # a line without absl's prefix continues the one before it
    for line in lines:
        if line.startswith(_ABSL_PREAMBLE):
            continue
        match = _ABSL_LINE.match(line)
        if match:
            severity, message = match.group(1), match.group(2)
            if _CUDA_MISSING.search(message):
                cuda_missing, keeping = True, False
            else:
                keeping = severity != b"I"
        if keeping:
            kept.append(line)
    if kept:
        os.write(2, b"\n".join(kept) + b"\n")
    if cuda_missing:
        log.info("no CUDA driver found: TensorFlow runs on the CPU")
