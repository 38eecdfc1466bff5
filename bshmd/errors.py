"""The exceptions bshmd raises, and the process exit status each one ends the daemon with.

The names say what happened; ``exit_status`` says what the operator sees. Errors about a
single input file (``InputRejected`` and its subclasses) never end the daemon: they send
that file to quarantine with ``reason_code``. ``NotFinished`` is no refusal at all: the input
is still being written and is looked at again later.
"""

from __future__ import annotations

from typing import Any

# Documented in README.md ("Exit codes"); keep the two in step.
EXIT_OK = 0
EXIT_FAILURE = 1  # unexpected internal error
EXIT_USAGE = 2  # bad command line or invalid configuration
EXIT_MODEL = 3  # the model could not be fetched, verified or loaded
EXIT_QUARANTINED = 4  # `bshmd process`: finished, but some inputs went to quarantine
EXIT_ENVIRONMENT = 5  # the host is not fit to run (e.g. NOTIFY_SOCKET without systemd-python)
EXIT_FORCED = 130  # a second signal forced the shutdown


class BshmdError(Exception):
    """Base class of every error bshmd raises on purpose."""

    exit_status = EXIT_FAILURE


class ConfigError(BshmdError):
    """The configuration file is missing, unreadable or invalid."""

    exit_status = EXIT_USAGE


class ModelLoadError(BshmdError):
    """The model folder, graph file or graph contents are not usable."""

    exit_status = EXIT_MODEL


class ModelFetchError(ModelLoadError):
    """The model could not be downloaded or found in the cache."""


class EnvironmentNotReady(BshmdError):
    """The host lacks something bshmd needs to run safely."""

    exit_status = EXIT_ENVIRONMENT


class LedgerUnavailable(BshmdError):
    """The job ledger (its database, or the output share it guards) cannot be reached now:
    nothing can be claimed or recorded until it is back. Files wait; nothing is lost."""


class ClaimLost(BshmdError):
    """This instance no longer holds the claim (its lease expired and another instance took it)."""


class ShareOwnedElsewhere(BshmdError):
    """An output folder is already tracked by another job ledger (another host's SQLite file,
    or another PostgreSQL database): two ledgers over one share would process files twice."""

    exit_status = EXIT_USAGE


class InputRejected(BshmdError):
    """One input file cannot be turned into a result; it goes to quarantine.

    ``reason_code`` is a short stable identifier (``truncated``, ``too_large`` …) that
    operators filter on; ``measured`` holds the values that led to the decision.
    """

    def __init__(self, reason_code: str, message: str, measured: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message
        self.measured = dict(measured or {})


class NotFinished(BshmdError):
    """Not a refusal: the input is still being written (bshmd.pipeline.grace). It is given
    back, never quarantined, and offered again after ``retry_after`` seconds."""

    def __init__(self, why: str, message: str, retry_after: float, measured: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.why = why  # "changed", or the reason it would have been refused for (grace.GRACE_REASONS)
        self.message = message
        self.retry_after = retry_after
        self.measured = dict(measured or {})
