"""The one configuration factory of the tests: a validated Config from a few settings."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bshmd.config import Config, parse_config

# The folder pair named relative to a base folder, as most tests lay it out.
RELATIVE_PAIR = {"input": "in", "output": "out", "quarantine": "quarantine"}


def config_data(where: Mapping[str, Path] | Path, folders: list[dict[str, Any]] | None = None, *,
                defaults: Mapping[str, Any] | None = None, folder: Mapping[str, Any] | None = None,
                **settings: Any) -> dict[str, Any]:
    """The mapping make_config validates (for a test that writes it to a file instead)."""
    if isinstance(where, Mapping):
        pair: dict[str, Any] = {"input": str(where["in"]), "output": str(where["out"]),
                                "quarantine": str(where["quarantine"])}
    else:
        pair = dict(RELATIVE_PAIR)
    pair.update(folder or {})
    data: dict[str, Any] = {"folders": folders if folders is not None else [pair], **(defaults or {})}
    for key, value in settings.items():
        if isinstance(value, Mapping) and isinstance(data.get(key), Mapping):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def make_config(where: Mapping[str, Path] | Path, folders: list[dict[str, Any]] | None = None, *,
                defaults: Mapping[str, Any] | None = None, folder: Mapping[str, Any] | None = None,
                **settings: Any) -> Config:
    """A validated Config.

    ``where`` is either the ``hot`` fixture's folders (tests/conftest.py: in, out and
    quarantine side by side), which become the one folder pair with ``folder``'s keys over
    them, or a base folder: then ``folders`` (default: in, out and quarantine in it) are
    relative to it. ``defaults`` are a test module's usual settings; ``settings`` override
    them, a mapping merged into a mapping one level deep (``batch={"max_size": 2}`` keeps the
    default's ``max_wait_ms``).
    """
    base = where["in"].parent if isinstance(where, Mapping) else where
    return parse_config(config_data(where, folders, defaults=defaults, folder=folder, **settings), base_dir=base)


# The ingest tests' timings: a file settles in half a second, a full rescan is rare.
QUICK_INGEST = {"settle_seconds": 0.5, "poll_seconds": 0.5, "rescan_seconds": 30}
