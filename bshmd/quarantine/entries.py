"""The entries of a quarantine tree: one walker, and the entries it finds, listed or looked up.

An entry is an input's ``<name>.reason.json`` with its record; the input itself sits beside
it as ``<name>`` (or is missing: ``input_missing``). Folders starting with "." (the history,
and anything else hidden) are never walked, and their files are never entries.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from bshmd.errors import InputRejected
from bshmd.quarantine.record import REASON_SUFFIX, QuarantineRecord

if TYPE_CHECKING:
    from bshmd.config import FolderConfig

log = logging.getLogger("bshmd.quarantine")


@dataclass
class QuarantineEntry:
    path: Path  # the quarantined input (may be missing: record.input_missing)
    reason_file: Path
    record: QuarantineRecord
    folder: FolderConfig

    @property
    def reason(self) -> str:
        return self.record.reason

    @property
    def time(self) -> dt.datetime:
        return self.record.when

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def relpath(self) -> PurePosixPath:
        """Where the input was, relative to its input folder."""
        relpath = PurePosixPath(self.record.relpath) if self.record.relpath else None
        if relpath is not None and not relpath.is_absolute() and ".." not in relpath.parts:
            return relpath
        return PurePosixPath(*self.path.relative_to(self.folder.quarantine).parts)

    @property
    def name(self) -> str:
        """The input's path inside its quarantine folder, as the page and the CLI show it."""
        return self.path.relative_to(self.folder.quarantine).as_posix()

    def sidecar(self, key: str) -> Path | None:
        """The "matte" or "preview" file the record names beside it; None without a safe name."""
        name = self.record.matte if key == "matte" else self.record.preview if key == "preview" else None
        if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
            return None
        return self.reason_file.with_name(name)


def reason_files(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every entry's reason file under ``root`` with its stat, in a stable order.

    The one walk of a quarantine tree: listing entries and noticing that the listing changed
    (bshmd.review.listing) both read it, so they never disagree about what is an entry.
    """
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            if filename.endswith(REASON_SUFFIX) and not filename.startswith("."):
                path = Path(dirpath) / filename
                try:
                    info = os.stat(path)
                except OSError:
                    continue  # removed while walking: no longer an entry
                yield path, info


def load_entry(reason_file: Path, folder: FolderConfig) -> QuarantineEntry | None:
    """The entry of ``reason_file``; None (logged) when it cannot be read as a record."""
    try:
        record = QuarantineRecord.decode(reason_file.read_bytes())
    except (OSError, ValueError) as exc:
        log.warning("unreadable quarantine record %s: %s", reason_file, exc)
        return None
    path = reason_file.with_name(reason_file.name[: -len(REASON_SUFFIX)])
    return QuarantineEntry(path, reason_file, record, folder)


def list_entries(folders: Sequence[FolderConfig]) -> list[QuarantineEntry]:
    """Entries still waiting for a person (status "quarantined"), newest first."""
    entries = []
    for folder in folders:
        if not folder.quarantine.is_dir():
            continue
        for reason_file, _info in reason_files(folder.quarantine):
            entry = load_entry(reason_file, folder)
            if entry is not None and entry.status == "quarantined":
                entries.append(entry)
    entries.sort(key=lambda e: (e.time, str(e.path)), reverse=True)
    return entries


def find_entry(folders: Sequence[FolderConfig], path: Path) -> QuarantineEntry:
    """The entry for a path a user typed: the quarantined file or its .reason.json."""
    candidate = Path(os.path.abspath(path))
    if candidate.name.endswith(REASON_SUFFIX):
        candidate = candidate.with_name(candidate.name[: -len(REASON_SUFFIX)])
    for folder in folders:
        root = Path(os.path.abspath(folder.quarantine))
        if root not in candidate.parents:
            continue
        rel = candidate.relative_to(root)
        if any(part.startswith(".") for part in rel.parts[:-1]):
            break
        reason_file = candidate.with_name(candidate.name + REASON_SUFFIX)
        entry = load_entry(reason_file, folder) if reason_file.is_file() else None
        if entry is None:
            raise InputRejected("not_quarantined", f"{path}: no quarantine record ({reason_file.name}) beside it")
        if entry.status != "quarantined":
            raise InputRejected("not_quarantined", f"{path}: already {entry.status}")
        return entry
    roots = ", ".join(str(f.quarantine) for f in folders)
    raise InputRejected("not_quarantined", f"{path}: is not inside a quarantine folder ({roots})")
