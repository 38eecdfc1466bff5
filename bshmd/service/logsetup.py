"""Where log lines go: the journal with structured fields under systemd, else stderr.

Callers attach structured data with ``extra={"bshmd_path": ..., "bshmd_reason": ...}``;
in the journal these become fields ``BSHMD_PATH``, ``BSHMD_REASON`` that
``journalctl BSHMD_REASON=truncated`` can filter on.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

from bshmd.config import LoggingConfig

STDERR_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
FIELD_PREFIX = "bshmd_"
SYSLOG_IDENTIFIER = "bshmd"

# Libraries that log chattily at INFO; their warnings still come through.
_QUIET_LOGGERS = ("tensorflow", "absl", "h5py", "PIL", "watchdog", "modelscope", "urllib3")


class JournalFields(logging.Filter):
    """Copies ``extra`` keys named ``bshmd_*`` to upper-case journal field names."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in list(vars(record).items()):
            if key.startswith(FIELD_PREFIX) and value is not None:
                setattr(record, key.upper(), str(value))
        return True


def stderr_is_journal(environ: Mapping[str, str] | None = None, stream: TextIO | None = None) -> bool:
    """True when systemd connected stderr to the journal (``JOURNAL_STREAM`` is ``dev:inode``
    of our stderr); a child whose stderr was redirected does not match."""
    environ = os.environ if environ is None else environ
    value = environ.get("JOURNAL_STREAM", "")
    stream = sys.stderr if stream is None else stream
    try:
        dev, inode = (int(part) for part in value.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, inode)


def use_journal(config: LoggingConfig, environ: Mapping[str, str] | None = None) -> bool:
    if config.journald == "on":
        return True
    if config.journald == "off":
        return False
    return stderr_is_journal(environ)


def journal_handler(**fields: str) -> logging.Handler:
    """A systemd JournalHandler that also sends the ``bshmd_*`` extras as fields."""
    from systemd.journal import JournalHandler

    fields.setdefault("SYSLOG_IDENTIFIER", SYSLOG_IDENTIFIER)
    handler = JournalHandler(**fields)
    handler.addFilter(JournalFields())
    # The journal stamps time, level and unit itself.
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    return handler


def stderr_handler(stream: TextIO | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(STDERR_FORMAT))
    return handler


def configure_logging(config: LoggingConfig, environ: Mapping[str, str] | None = None) -> logging.Handler:
    """Replace the root logger's handlers with one for this run; returns the handler.

    ``logging.journald: on`` without systemd-python falls back to stderr with a warning
    rather than losing every log line.
    """
    root = logging.getLogger()
    handler: logging.Handler | None = None
    fallback_reason = None
    if use_journal(config, environ):
        try:
            handler = journal_handler()
        except ImportError as exc:
            fallback_reason = f"cannot log to the journal ({exc}); logging to stderr"
    if handler is None:
        handler = stderr_handler()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(config.level)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(config.level)))
    if fallback_reason:
        logging.getLogger(__name__).warning(fallback_reason)
    return handler


def set_level(level: str) -> None:
    """Apply a reloaded ``logging.level``."""
    logging.getLogger().setLevel(level)
