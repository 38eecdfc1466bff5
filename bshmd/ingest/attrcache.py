"""Settling on filesystems that cache attributes: the minimum window, and a fresh last look.

An NFS, SMB or FUSE client may answer ``stat`` from its attribute cache, so two looks
``settle_seconds`` apart can both show the size of a moment ago while another host is still
writing. Two defences, both per folder:

- ``settle_window``: a file is never declared settled in less than the folder's attribute
  cache time (``folders[].attribute_cache_seconds``, else what the mount's options say, see
  ``bshmd.fs.mounts.attribute_cache``) plus ``settle_seconds``. Logged per folder at start.
- ``bshmd.fs.fresh.revalidate``: right before a file is declared settled it is opened and
  its last byte read, which makes NFS and FUSE clients fetch fresh attributes; those are the
  ones compared.
"""

from __future__ import annotations

from dataclasses import dataclass

from bshmd.config import FolderConfig
from bshmd.fs.mounts import attribute_cache_for


@dataclass(frozen=True)
class SettleWindow:
    settle_seconds: float
    attribute_cache_seconds: float
    source: str  # where the attribute cache time comes from

    @property
    def seconds(self) -> float:
        """How long a file's size and mtime must stay unchanged before it is read."""
        return self.settle_seconds + self.attribute_cache_seconds

    def describe(self) -> str:
        return (f"files settle after {self.seconds:g} s unchanged (settle_seconds {self.settle_seconds:g} s "
                f"+ attribute cache {self.attribute_cache_seconds:g} s: {self.source})")


def settle_window(folder: FolderConfig, settle_seconds: float) -> SettleWindow:
    if folder.attribute_cache_seconds is not None:
        return SettleWindow(settle_seconds, folder.attribute_cache_seconds,
                            "folders[].attribute_cache_seconds")
    seconds, source = attribute_cache_for(folder.input)
    return SettleWindow(settle_seconds, seconds, source)

