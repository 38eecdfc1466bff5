"""Signal capture with real signals, and where log lines go."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys

import pytest

from bshmd.config import LoggingConfig
from bshmd.service.logsetup import (
    JournalFields,
    configure_logging,
    journal_handler,
    stderr_is_journal,
    use_journal,
)
from bshmd.service.signals import SignalQueue, capture_signals


def test_signals_are_queued_for_the_main_loop_and_handlers_restored() -> None:
    before = signal.getsignal(signal.SIGHUP)
    forced = []
    signals = SignalQueue(on_force=forced.append)
    with capture_signals(signals):
        os.kill(os.getpid(), signal.SIGHUP)
        assert signals.get(timeout=5) == signal.SIGHUP
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.get(timeout=5) == signal.SIGTERM
        assert signals.stop_requested and not forced
        # A second stop signal does not wait for the main loop.
        os.kill(os.getpid(), signal.SIGINT)
        assert forced == [signal.SIGINT]
        assert signals.get(timeout=0) is None
    assert signal.getsignal(signal.SIGHUP) is before


def test_capture_refuses_other_threads() -> None:
    import threading

    errors = []

    def body() -> None:
        try:
            with capture_signals(SignalQueue()):
                pass
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=body, name="bshmd-test-signals")
    thread.start()
    thread.join()
    assert errors and "main thread" in str(errors[0])


def test_journal_stream_must_match_stderr(tmp_path) -> None:
    # A real child whose stderr is a file: JOURNAL_STREAM naming that file's dev:inode matches.
    target = tmp_path / "stderr"
    target.touch()
    st = target.stat()
    code = "from bshmd.service.logsetup import stderr_is_journal; print(stderr_is_journal())"
    for stream, expected in ((f"{st.st_dev}:{st.st_ino}", "True"), (f"{st.st_dev}:{st.st_ino + 1}", "False"),
                             ("garbage", "False")):
        with target.open("w") as err:
            out = subprocess.run([sys.executable, "-c", code], stderr=err, capture_output=False,
                                 stdout=subprocess.PIPE, text=True, env={**os.environ, "JOURNAL_STREAM": stream},
                                 timeout=60)
        assert out.stdout.strip() == expected, stream
    assert not stderr_is_journal({}, io.StringIO())


def test_journald_setting_overrides_detection() -> None:
    assert use_journal(LoggingConfig(journald="on"), {})
    assert not use_journal(LoggingConfig(journald="off"), {"JOURNAL_STREAM": "1:1"})
    assert not use_journal(LoggingConfig(journald="auto"), {})


def test_journal_handler_sends_bshmd_extras_as_fields() -> None:
    sent = []
    handler = journal_handler()

    def capture(message: str, /, **fields: object) -> None:  # journald is not running here
        sent.append((message, fields))

    handler.send = capture
    logger = logging.getLogger("bshmd.test.journal")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("quarantined %s", "a.jpg", extra={"bshmd_reason": "truncated", "bshmd_path": "/in/a.jpg"})
    finally:
        logger.removeHandler(handler)
    message, fields = sent[0]
    assert message == "bshmd.test.journal: quarantined a.jpg"
    assert fields["BSHMD_REASON"] == "truncated" and fields["BSHMD_PATH"] == "/in/a.jpg"
    assert fields["SYSLOG_IDENTIFIER"] == "bshmd" and fields["PRIORITY"] == "4"
    assert isinstance(handler.filters[0], JournalFields)


def test_stderr_logging_is_readable_and_levelled(capfd: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging(LoggingConfig(level="WARNING", journald="off"), environ={})
        logging.getLogger("bshmd.test").info("hidden")
        logging.getLogger("bshmd.test").warning("shown %d", 1)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    err = capfd.readouterr().err
    assert "hidden" not in err
    assert "WARNING bshmd.test: shown 1" in err
