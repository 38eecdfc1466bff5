"""What a doctor check says (``Check``), and what the checks read from this machine (``Host``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bshmd.fs.mounts import MOUNTINFO, Mount, parse_mountinfo

Status = Literal["OK", "WARN", "FAIL"]
INOTIFY_WATCHES = Path("/proc/sys/fs/inotify/max_user_watches")


@dataclass(frozen=True)
class Check:
    status: Status
    name: str
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Host:
    """What the checks read from this machine; tests point it at prepared values."""

    mountinfo: Path = MOUNTINFO
    inotify_watches: Path = INOTIFY_WATCHES
    user: str | None = None  # the service user; None: whoever runs the doctor
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def mounts(self) -> list[Mount]:
        return parse_mountinfo(self._mountinfo_text())

    def _mountinfo_text(self) -> str:
        try:
            return self.mountinfo.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError:
            return ""
