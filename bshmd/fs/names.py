"""The names bshmd gives its own temporary files, so every layer can tell them apart."""

from __future__ import annotations

TMP_SUFFIX = ".bshmd-tmp"


def is_temp_name(name: str) -> bool:
    """True for the temporary files atomic_write leaves only while it writes (or after a crash)."""
    return name.startswith(".") and name.endswith(TMP_SUFFIX)
