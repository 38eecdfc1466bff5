"""How a job ended: one typed record that the pipeline makes once and hands, as the same
object, to the ledger (through the job's claim) and to whoever listens (``on_done``). Nothing
parses it back from a string; ``str()`` of it is for log lines only."""

from __future__ import annotations

from dataclasses import dataclass

PROCESSED = "processed"  # results written
RECOVERED = "recovered"  # results an earlier holder had written were found: only recorded
QUARANTINED = "quarantined"  # moved to quarantine with a reason
ACCEPTED = "accepted"  # a reviewer accepted it from quarantine (bshmd quarantine requeue --accept)
ADOPTED = "adopted"  # taken over from a 0.1 output tree (its claim file said done, or results stood)
SKIPPED = "skipped"  # left alone on purpose: the other half of its RAW+JPEG pair is processed
RELEASED = "released"  # given back unfinished; anyone may claim it again (after retry_after)

DONE_KINDS = frozenset({PROCESSED, RECOVERED, QUARANTINED, ACCEPTED, ADOPTED, SKIPPED})

# A release reason: the input is still being written (bshmd.pipeline.grace). No instance claims
# it before ``retry_after``, and the folder's scanner settles it again meanwhile.
NOT_FINISHED = "not_finished"


@dataclass(frozen=True)
class Outcome:
    """``kind``: one of the constants above; ``reason``: why (a quarantine reason code, a
    release reason such as ``shutdown`` or ``disk_full``); ``retry_after``: for a release,
    how many seconds nobody should claim the file again (the database clock counts them)."""

    kind: str
    reason: str | None = None
    retry_after: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in DONE_KINDS and self.kind != RELEASED:
            raise ValueError(f"unknown outcome kind {self.kind!r}")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("retry_after must not be negative")

    @property
    def done(self) -> bool:
        return self.kind in DONE_KINDS

    def __str__(self) -> str:
        return f"{self.kind}:{self.reason}" if self.reason else self.kind
