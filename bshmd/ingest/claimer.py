"""Claiming ready files from the ledger in batches and handing them to the pipeline.

Every instance (the scanner too) claims the ``ready`` rows of its folders, up to
``batch.max_size`` at a time, checks that each file is still the version that settled, and
hands it over. When to look again is on the ingestor's ``clock``; which claims have run out
is the database's to judge (bshmd.ledger.store).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bshmd.config import Config
from bshmd.errors import ClaimLost, LedgerUnavailable
from bshmd.ingest import settle as settle_states
from bshmd.ingest.folders import Clock, Folder, Folders
from bshmd.ingest.scan import stat_candidate
from bshmd.ingest.scanner import Scanner
from bshmd.ledger.claims import LedgerClaim
from bshmd.ledger.keys import FileKey
from bshmd.ledger.outcome import NOT_FINISHED, RELEASED, SKIPPED, Outcome
from bshmd.pipeline.job import Job

log = logging.getLogger("bshmd.ingest")

OnReady = Callable[[Job], bool]


class Claimer:
    def __init__(self, folders: Folders, scanner: Scanner, on_ready: OnReady, *, wake: threading.Event,
                 should_pause: Callable[[], bool] = lambda: False, clock: Clock = time.monotonic) -> None:
        self.folders = folders
        self.scanner = scanner
        self._on_ready = on_ready
        self._wake = wake  # wakes the ingest thread
        self._inbox_lock = threading.Lock()
        self._ended: list[LedgerClaim] = []  # claims that ended on any thread, for the ingest thread
        self._should_pause = should_pause  # stopping, or a new configuration waits to be applied
        self._clock = clock

    @property
    def _config(self) -> Config:
        return self.folders.config

    @property
    def _folders(self) -> dict[str, Folder]:
        return self.folders.current

    def take_ended(self) -> None:
        """On the ingest thread: look at the claims that ended since the last pass."""
        with self._inbox_lock:
            ended, self._ended = self._ended, []
        for claim in ended:
            self._ended_claim(claim)

    def run_due(self) -> None:
        """Claim and hand over what waits in every folder whose input and output are there."""
        for folder in self.folders:
            if self._should_pause():
                break
            if folder.available and folder.output_available and not folder.refused:
                self.take_ready(folder)

    def take_ready(self, folder: Folder) -> None:
        """Claim files waiting in the ledger (put there by whichever instance scans) and hand
        them over; a full batch means more may wait, so look again at once."""
        config = self.folders.config
        if self._clock() < folder.ledger_due:
            return
        limit = config.batch.max_size
        try:
            claims = folder.store.claim_ready(limit)
        except (LedgerUnavailable, OSError) as exc:
            log.debug("cannot claim waiting files of %s: %s", folder.root, exc)
            folder.ledger_due = self._clock() + config.poll_seconds
            return
        folder.ledger_due = 0.0 if len(claims) >= limit else self._clock() + min(config.poll_seconds, 1.0)
        for claim in claims:
            self._offer(folder, claim)

    def _offer(self, folder: Folder, claim: LedgerClaim) -> None:
        config = self.folders.config
        path = folder.root / claim.key.relpath
        try:
            st = stat_candidate(folder.root, path, folder.path_filter)
        except OSError:
            st = None
        if st is None:
            if not os.path.lexists(path):
                folder.store.drop(claim)  # gone from the folder: nothing to do, ever
            else:
                claim.release(Outcome(RELEASED, "not a candidate", retry_after=config.rescan_seconds))
            return
        if FileKey.of(folder.root, path, st) != claim.key:
            # Changed since it settled: the scanner settles the new version and marks it.
            claim.release(Outcome(RELEASED, "changed", retry_after=config.settle_seconds))
            if folder.scanner:
                self.scanner.observe(folder, path, st)
            return
        # RAW+JPEG pairs (raw_pairs, bshmd.ingest.filters): the other half is processed instead.
        partner = folder.path_filter.paired_with(path)
        if partner is not None:
            log.info("leaving %s alone: %s of the same shot is processed (raw_pairs: %s)", path,
                     partner.name, folder.path_filter.raw_pairs,
                     extra={"bshmd_file": str(path), "bshmd_outcome": "skipped:raw_pair"})
            self._complete_skipped(claim)
            return
        self._hand_over(folder, path, claim.key, claim)

    @staticmethod
    def _complete_skipped(claim: LedgerClaim) -> None:
        try:
            claim.complete(Outcome(SKIPPED, "raw_pair"))
        except (ClaimLost, LedgerUnavailable) as exc:  # another instance has it now, or decides later
            log.debug("cannot record %r as skipped: %s", claim.key.relpath, exc)

    def _hand_over(self, folder: Folder, path: Path, key: FileKey, claim: LedgerClaim) -> None:
        # taken_from: an earlier holder may have written the result before it died; the
        # pipeline checks for it instead of doing the work again.
        job = Job(folder=folder.cfg, path=path, key=key, claim=claim, taken_from=claim.taken_from)
        try:
            accepted = bool(self._on_ready(job))
        except Exception:
            log.exception("the pipeline refused %r with an error", key.relpath)
            accepted = False
        if not accepted:
            claim.release()  # comes back through _note_ended and is offered again later

    def _note_ended(self, claim: LedgerClaim) -> None:
        """A claim this process held ended (any thread): the ingest thread looks at it next."""
        with self._inbox_lock:
            self._ended.append(claim)
        self._wake.set()

    def _ended_claim(self, claim: LedgerClaim) -> None:
        """Done: the scanner's record says so. Released: the ledger offers it again once its
        ``retry_after`` (the pipeline's pause for a failing output or quarantine folder, see
        bshmd.pipeline.retry) has passed; this instance looks then. Not finished (a copy still
        being written, see bshmd.pipeline.grace): the scanner settles it again as well, so a
        new version is marked ready as soon as it is quiet. Lost: another has it."""
        for folder in self._folders.values():
            if folder.store is not claim.folder:
                continue
            outcome = claim.outcome
            path = folder.root / claim.key.relpath
            if outcome is not None and outcome.done:
                if folder.scanner and folder.tracker.state_of(path) is not None:
                    folder.tracker.finish(path, claim.key, settle_states.DONE)
            elif outcome is not None:
                due = self._clock() + (outcome.retry_after or 0.0)
                folder.ledger_due = min(folder.ledger_due or due, due)
                if outcome.reason == NOT_FINISHED and folder.scanner:
                    folder.tracker.reopen(path, claim.key)
                    folder.tracker.retry_later(path, outcome.retry_after or self._config.settle_seconds)
