"""The one place that imports TensorFlow, so that importing bshmd stays instant.

TensorFlow's C++ runtime logs through absl, and everything it logs before absl is initialised
(oneDNN, the CUDA stubs, a failed ``cuInit`` on a host without a driver) goes straight to file
descriptor 2 whatever ``TF_CPP_MIN_LOG_LEVEL`` says. So the import and the first device
enumeration run with descriptor 2 led through a small filter process: it drops the INFO lines
and the known CUDA-missing lines and passes everything else (a real warning or error, a
traceback, and lines other threads log meanwhile) on to the real stderr as it comes. Being a
process of its own, it still passes on what TensorFlow printed if TensorFlow aborts the import
(a CPU without the instructions it was built for). A host without a CUDA driver then gets one
INFO line of ours. With ``logging.level: DEBUG`` nothing is filtered.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from types import ModuleType
from typing import BinaryIO

log = logging.getLogger("bshmd.engine")

# absl's prefix: severity, MMDD, time (epoch seconds before initialisation), thread, file:line].
_ABSL_LINE = re.compile(rb"^([IWEF])\d{4} [\d:.]+\s+\d+ [^\]]+\] (.*)$")
_ABSL_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# The second line of cpu_feature_guard's INFO message (shown at TF_CPP_MIN_LOG_LEVEL=0).
_INFO_CONTINUATION = b"To enable the following instructions:"
# What TensorFlow says, at any severity, when this host has no NVIDIA driver at all. A driver
# without CUDA's libraries ("Cannot dlopen some GPU libraries") is a real warning and stays.
_CUDA_MISSING = re.compile(rb"failed call to cuInit|Could not find cuda drivers")
# The filter's exit status when it saw that no CUDA driver is there.
_SAW_NO_CUDA = 10
_FILTER = "import sys; from bshmd.engine.tf import filter_stream; sys.exit(filter_stream(sys.stdin.buffer, sys.stdout.buffer))"

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
            # Keras, which TensorFlow imports, writes ~/.keras/keras.json; bshmd reads no Keras
            # setting, so it gets a folder of its own, gone at exit, not the account's home.
            if "KERAS_HOME" not in os.environ:
                os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="bshmd-keras-")
                atexit.register(shutil.rmtree, os.environ["KERAS_HOME"], True)
            if verbose:
                import tensorflow as tf

                tf.config.list_physical_devices()
            else:
                with _FilteredStderr() as filtered:
                    import tensorflow as tf

                    tf.config.list_physical_devices()  # enumeration is where cuInit fails
                if filtered.saw_no_cuda:
                    log.info("no CUDA GPU (no NVIDIA driver, or no device visible): TensorFlow runs on the CPU")
            _tf = tf
        return _tf


class _FilteredStderr:
    """Descriptor 2 led through the filter process for the duration of a ``with`` block."""

    saw_no_cuda = False

    def __enter__(self) -> _FilteredStderr:
        sys.stderr.flush()
        self._saved = os.dup(2)
        try:
            self._child: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-c", _FILTER], stdin=subprocess.PIPE, stdout=self._saved,
                env={**os.environ, "PYTHONPATH": _search_path()})
        except OSError as exc:  # noise is better than not starting at all
            log.debug("cannot start the stderr filter (%s): TensorFlow logs unfiltered", exc)
            self._child = None
            return self
        assert self._child.stdin is not None
        os.dup2(self._child.stdin.fileno(), 2)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._child is None:
            os.close(self._saved)
            return
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        assert self._child.stdin is not None
        self._child.stdin.close()  # the filter sees the end, passes on the rest and exits
        try:
            self.saw_no_cuda = self._child.wait(timeout=30) == _SAW_NO_CUDA
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()


def _search_path() -> str:
    """The filter imports this very module: give it the search path bshmd was found on."""
    return os.pathsep.join(p for p in sys.path if p)


def filter_stream(source: BinaryIO, sink: BinaryIO) -> int:
    """Copy ``source`` to ``sink`` line by line, less TensorFlow's start-up noise.

    Returns ``_SAW_NO_CUDA`` when a line said that no CUDA driver is there, else 0.
    """
    saw_no_cuda = False
    for line in source:
        keep, no_cuda = judge(line.rstrip(b"\n"))
        saw_no_cuda = saw_no_cuda or no_cuda
        if keep:
            sink.write(line)
            sink.flush()
    return _SAW_NO_CUDA if saw_no_cuda else 0


def judge(line: bytes) -> tuple[bool, bool]:
    """(whether to pass the line on, whether it says that no CUDA driver is there)."""
    if line.startswith(_ABSL_PREAMBLE) or line.startswith(_INFO_CONTINUATION):
        return False, False
    match = _ABSL_LINE.match(line)
    if match is None:
        return True, False  # not TensorFlow's: a traceback, or another thread's log line
    if _CUDA_MISSING.search(match.group(2)):
        return False, True
    return match.group(1) != b"I", False

