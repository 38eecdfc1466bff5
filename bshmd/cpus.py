"""How many CPUs this process may use: a host fact that configuration defaults (``auto``
worker counts) and the stages that size their thread pools both read, so it sits beside
bshmd.config, below every layer."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, as taskset or docker --cpuset-cpus set it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)
