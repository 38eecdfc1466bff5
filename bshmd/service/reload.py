"""SIGHUP: what a re-read configuration changes in a running daemon, and what waits for a restart.

Folders, thresholds and the log level change in place. The model, the HTTP endpoint and the
instance id are bound at start (a loaded graph, a bound socket, claims held under that id),
and the pipeline's worker counts and queue size shape threads already running: a change to
those is logged as needing a restart and the running value is kept.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bshmd.config import Config, load_config
from bshmd.errors import BshmdError

log = logging.getLogger("bshmd.service")

RESTART_SECTIONS = ("model", "http", "instance_id")
RESTART_PIPELINE_KEYS = ("decode_workers", "write_workers", "queue_size")


def reread(path: Path) -> Config | None:
    """The configuration in ``path``, or None (each problem logged) to keep the running one."""
    try:
        return load_config(path)
    except BshmdError as exc:
        for line in str(exc).splitlines():
            log.error("reload: %s", line)
        log.error("reload: keeping the running configuration")
        return None


def take_over(old: Config, new: Config) -> Config:
    """``new`` as it applies now: restart-only values kept from ``old`` (each change logged)."""
    kept = {}
    for section in RESTART_SECTIONS:
        if getattr(new, section) != getattr(old, section):
            log.warning("reload: '%s' changed; it needs a restart to take effect", section)
            kept[section] = getattr(old, section)
    for key in RESTART_PIPELINE_KEYS:
        if getattr(new.pipeline, key) != getattr(old.pipeline, key):
            log.warning("reload: 'pipeline.%s' changed; it needs a restart to take effect", key)
    return new.model_copy(update=kept) if kept else new


def note_applied(old: Config, applied: Config) -> None:
    """Once the parts took ``applied`` over: its log level set, and the change logged."""
    from bshmd.service.logsetup import set_level

    set_level(applied.logging.level)
    before = {f.input for f in old.folders}
    after = {f.input for f in applied.folders}
    log.info("reload: configuration from %s applied: %d folder(s)%s%s", applied.source, len(applied.folders),
             "".join(f"; added {p}" for p in sorted(after - before)),
             "".join(f"; removed {p}" for p in sorted(before - after)))
