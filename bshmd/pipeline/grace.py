"""A young file that reads as cut short is still being copied: not a bad file, not finished.

Copies from laptops stall for seconds (Wi-Fi, Finder, a sleeping client) for longer than any
reasonable ``settle_seconds``. A file read in such a pause decodes as ``truncated`` (or is
still ``empty``). While its mtime is younger than ``truncated_grace_seconds`` that is taken to
mean "not finished": the input is given back (``NotFinished``) and looked at again after a
window as long as it has been quiet so far, so each look doubles the quiet time it has been
given. Past the grace it is quarantined as ``truncated`` like any cut-off file.

A file whose size or mtime changed since it was settled is not finished either, whatever its
decoding said: it goes back to settling at once.

The answer is data (``NotFinished`` with ``retry_after``, returned, not raised; it is no
``InputRejected``, so nothing that handles refusals can send it to quarantine): the pipeline
releases the claim with ``Outcome(RELEASED, NOT_FINISHED, retry_after)``, which the job
ledger keeps (nobody claims the file sooner) and the folder's scanner turns back into
settling. Nothing here waits or touches the file. The clock is the host's wall clock against
the file's mtime, so hosts and NAS need synchronised clocks (as claims do).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bshmd.errors import InputRejected, NotFinished
from bshmd.fs.fresh import revalidate
from bshmd.ledger.keys import FileKey

# Refusals that a copy still in progress produces.
GRACE_REASONS = frozenset({"truncated", "empty"})

__all__ = ["GRACE_REASONS", "NotFinished", "judge"]


def judge(path: Path, key: FileKey, rejection: InputRejected | None, *, grace_seconds: float,
          settle_seconds: float, clock: Callable[[], float] = time.time) -> NotFinished | None:
    """``NotFinished`` when ``path`` (settled as ``key``) is still being written, else None.

    None means: go on with ``rejection`` (quarantine) or, without one, with the results. A
    file that vanished is left to the caller too (quarantine records it as missing).
    """
    fresh, _why = revalidate(path)
    if fresh is None:
        return None
    found = (fresh.st_size, fresh.st_mtime_ns)
    if found != (key.size, key.mtime_ns):
        return NotFinished(
            "changed",
            f"{path.name}: changed since it was settled ({key.size} → {fresh.st_size} bytes); settling again",
            settle_seconds, {"bytes_settled": key.size, "bytes_now": fresh.st_size},
        )
    if rejection is None or rejection.reason_code not in GRACE_REASONS:
        return None
    age = max(clock() - fresh.st_mtime_ns / 1e9, 0.0)
    if age >= grace_seconds:
        rejection.measured.setdefault("quiet_seconds", round(age, 3))
        return None
    # Wait as long again as it has been quiet, but look once more right after the grace ends.
    retry_after = max(min(max(age, settle_seconds), grace_seconds - age + 0.05), 0.05)
    return NotFinished(
        rejection.reason_code,
        f"{rejection.message}; written {age:.1f} s ago, within truncated_grace_seconds "
        f"({grace_seconds:g} s): still being copied",
        retry_after, {**rejection.measured, "quiet_seconds": round(age, 3)},
    )
