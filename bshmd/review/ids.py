"""Opaque entry ids: what the browser uses instead of a filesystem path.

An id is ``<folder index>-<base64url of the path relative to that folder's quarantine root>``.
Decoding refuses anything that could leave the root (absolute paths, ``..``, NUL bytes,
hidden folders such as ``.history``), and ``resolve`` then asks the quarantine module's own
``find_entry`` for the entry and checks that neither the file nor a folder on its way is a
symbolic link pointing elsewhere.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from bshmd.errors import InputRejected
from bshmd.fs.paths import is_within
from bshmd.quarantine.entries import QuarantineEntry, find_entry

if TYPE_CHECKING:
    from bshmd.config import FolderConfig

_ID = re.compile(r"(\d{1,4})-([A-Za-z0-9_-]{1,2800})")


class BadEntryId(ValueError):
    """The id is malformed, points outside a quarantine root, or names no waiting entry."""


def entry_id(folders: Sequence[FolderConfig], entry: QuarantineEntry) -> str:
    index = next(i for i, f in enumerate(folders) if f.quarantine == entry.folder.quarantine)
    token = base64.urlsafe_b64encode(os.fsencode(entry.name)).decode("ascii").rstrip("=")
    return f"{index}-{token}"


def decode_id(folders: Sequence[FolderConfig], value: str) -> tuple[int, PurePosixPath]:
    match = _ID.fullmatch(value or "")
    if match is None:
        raise BadEntryId("malformed id")
    index = int(match.group(1))
    if index >= len(folders):
        raise BadEntryId("no such folder")
    token = match.group(2)
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BadEntryId("malformed id") from exc
    if not raw or b"\x00" in raw or raw.startswith(b"/"):
        raise BadEntryId("not a relative path")
    rel = PurePosixPath(os.fsdecode(raw))
    if rel.is_absolute() or any(part in ("", ".", "..") or part.startswith(".") for part in rel.parts):
        raise BadEntryId("not a path inside the quarantine folder")
    if os.fsdecode(raw) != rel.as_posix():  # "a//b", "a/./b", trailing "/": not what entry_id makes
        raise BadEntryId("not a canonical path")
    return index, rel


def resolve(folders: Sequence[FolderConfig], value: str) -> QuarantineEntry:
    """The waiting entry an id names; BadEntryId for anything else."""
    index, rel = decode_id(folders, value)
    folder = folders[index]
    path = folder.quarantine.joinpath(*rel.parts)
    # No link anywhere: a link in the tree could point find_entry's reads outside the root.
    if not is_within(path.parent, folder.quarantine) or path.is_symlink():
        raise BadEntryId("a link leaves the quarantine folder")
    try:
        entry = find_entry([folder], path)
    except InputRejected as exc:
        raise BadEntryId(exc.message) from exc
    for sidecar in (entry.reason_file, entry.sidecar("matte"), entry.sidecar("preview")):
        if sidecar is not None and sidecar.is_symlink():
            raise BadEntryId("a link leaves the quarantine folder")
    return entry
