"""Removing what crashed writers left behind: bshmd's own temporary and lock files, once old.

A SIGKILL between writing a temporary file and renaming it leaves a hidden ``*.bshmd-tmp``
behind next to the results; a 0.1 claims folder (``.bshmd/claims/``, adopted into the job
ledger) may still hold the temporary and ``<claim>.g<N>.lock`` files its writers left.

Only names that exactly match what bshmd itself creates are touched, and only when they are
old enough that no live writer (another instance on another host included) can still be
using them. Age counts from the later of mtime and ctime: ``atomic_write`` stamps a result's
temporary file with the *input's* mtime before renaming it, so mtime alone could make a file
being written right now look days old; the ctime moves with that stamp.
"""

from __future__ import annotations

import logging
import os
import re
import stat as stat_module
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from bshmd.config import Config
from bshmd.fs.names import is_temp_name

log = logging.getLogger("bshmd.ingest.sweep")
_ingest_log = logging.getLogger("bshmd.ingest")  # sweep_folders reports as the ingestor

# The claim files of bshmd 0.1 (``.bshmd/claims/``, adopted into the job ledger at the first
# start): the temporary and generation-lock names its writers created.
TMP_NAME_PATTERN = re.compile(r"\.[0-9a-f]{32}-[0-9]+\.bshmd-tmp")
LOCK_NAME_PATTERN = re.compile(r"[0-9a-f]{64}\.g[0-9]+\.lock")
LOCK_MIN_SECONDS = 10.0

# The temporary names of bshmd.fs.names.temp_name (atomic writes, verified moves): "." +
# final name (or "long-name") + "." + 8 hex digits + ".bshmd-tmp".
RESULT_TMP_PATTERN = re.compile(r"\..+\.[0-9a-f]{8}\.bshmd-tmp", re.DOTALL)
RESULT_TMP_MIN_AGE = 3600.0  # a result written over a slow share by another host takes a while
STATE_DIR_NAME = ".bshmd"


def claims_max_age(lease_seconds: float) -> float:
    """Age after which a claim temp file or lock is certainly abandoned: two lock lifetimes."""
    return 2 * max(lease_seconds, LOCK_MIN_SECONDS)


def results_max_age(lease_seconds: float) -> float:
    return max(RESULT_TMP_MIN_AGE, 2 * lease_seconds)


def is_claim_leftover(name: str) -> bool:
    return bool(TMP_NAME_PATTERN.fullmatch(name) or LOCK_NAME_PATTERN.fullmatch(name))


def is_result_leftover(name: str) -> bool:
    return is_temp_name(name) and bool(RESULT_TMP_PATTERN.fullmatch(name))


def _age(st: os.stat_result, now: float) -> float:
    return now - max(st.st_mtime, st.st_ctime)


def _remove_if_old(folder: str, name: str, max_age: float, now: float, removed: list[Path]) -> None:
    path = os.path.join(folder, name)
    try:
        st = os.lstat(path)
        if stat_module.S_ISREG(st.st_mode) and _age(st, now) > max_age:
            os.unlink(path)
            removed.append(Path(path))
    except FileNotFoundError:
        pass  # its writer finished it, or another instance swept it
    except OSError as exc:
        log.info("cannot remove leftover %r: %s", path, exc.strerror or exc)


def sweep_claims(claims_dir: Path, max_age: float, *, now: float | None = None,
                 stop: threading.Event | None = None) -> list[Path]:
    """Remove claim temp files and generation locks older than ``max_age`` from ``claims_dir``.

    Claims live in two-character shard folders (see ClaimStore._path_for); nothing else is
    looked at.
    """
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        shards = sorted(os.listdir(claims_dir))
    except OSError:
        return removed  # no claims yet, or the share is away: nothing to do now
    for shard in shards:
        if stop is not None and stop.is_set():
            break
        shard_path = os.path.join(claims_dir, shard)
        if len(shard) != 2 or os.path.islink(shard_path) or not os.path.isdir(shard_path):
            continue
        try:
            names = os.listdir(shard_path)
        except OSError as exc:
            log.info("cannot list %r: %s", shard_path, exc.strerror or exc)
            continue
        for name in names:
            if is_claim_leftover(name):
                _remove_if_old(shard_path, name, max_age, now, removed)
    return removed


def sweep_results(root: Path, max_age: float, *, now: float | None = None,
                  stop: threading.Event | None = None) -> list[Path]:
    """Remove result temp files older than ``max_age`` anywhere below ``root``.

    Symlinked folders are not followed, and the state folder (claims) is left to sweep_claims.
    """
    now = time.time() if now is None else now
    removed: list[Path] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        if stop is not None and stop.is_set():
            break
        if Path(folder) == Path(root) and STATE_DIR_NAME in dirs:
            dirs.remove(STATE_DIR_NAME)
        for name in files:
            if is_result_leftover(name):
                _remove_if_old(folder, name, max_age, now, removed)
    return removed


def sweep_leftovers(claims_dir: Path, result_roots: Iterable[Path], lease_seconds: float, *,
                    now: float | None = None, stop: threading.Event | None = None) -> list[Path]:
    """Sweep one folder pair: its claims folder and every tree results are written to."""
    removed = sweep_claims(claims_dir, claims_max_age(lease_seconds), now=now, stop=stop)
    seen: set[str] = set()
    for root in result_roots:
        key = os.path.abspath(root)
        if key in seen or not os.path.isdir(root):
            continue
        seen.add(key)
        removed += sweep_results(Path(root), results_max_age(lease_seconds), now=now, stop=stop)
    return removed


def sweep_folders(config: Config, stop: threading.Event, emit: Callable[[str, dict], None]) -> None:
    """Once per start (its own thread): sweep every configured folder pair, logging what went."""
    for cfg in config.folders:
        if stop.is_set():
            return
        try:
            removed = sweep_leftovers(cfg.state_dir / "claims",
                                      (cfg.output, cfg.quarantine, cfg.done_dir, cfg.rejected_dir),
                                      config.ledger.lease_seconds, stop=stop)
        except Exception:
            _ingest_log.exception("sweeping leftovers of %s failed; continuing", cfg.output)
            continue
        if removed:
            _ingest_log.info("removed %d leftover temporary or lock file(s) of %s", len(removed), cfg.input)
            emit("swept", {"folder": str(cfg.input), "removed": len(removed)})
