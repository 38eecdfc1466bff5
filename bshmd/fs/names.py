"""The names bshmd gives its own temporary files, so every layer can tell them apart."""

from __future__ import annotations

import os
import secrets

TMP_SUFFIX = ".bshmd-tmp"


def temp_name(name: str) -> str:
    """A hidden temporary name beside ``name`` that hot-folder watchers (ours too) ignore."""
    # Keep the temporary name within NAME_MAX (255 bytes) whatever the final name's length.
    stem = name if len(os.fsencode(name)) <= 180 else "long-name"
    return f".{stem}.{secrets.token_hex(4)}{TMP_SUFFIX}"


def is_temp_name(name: str) -> bool:
    """True for the temporary files atomic_write leaves only while it writes (or after a crash)."""
    return name.startswith(".") and name.endswith(TMP_SUFFIX)
