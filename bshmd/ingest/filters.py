"""Which paths below an input root are candidate images, and which are noise to ignore.

Copy tools, desktops and file servers leave their own files beside real images (partial
downloads, resource forks, thumbnail caches, SMB delete placeholders). None of them is an
image to process, and bshmd must never pick up anything it wrote itself.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from pathlib import Path

# Compared in lower case. Exact names first, then shell patterns.
IGNORED_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
IGNORED_PATTERNS = (
    "._*",  # macOS AppleDouble resource forks written to SMB shares
    "*.part",  # Firefox, rsync --partial-dir, wget
    "*.tmp",
    "*.crdownload",  # Chrome
    "~$*",  # Office lock files
    ".nfs*",  # NFS silly-renamed open-but-deleted files
    ".smbdelete*",  # Samba delete-on-close placeholders
    "*.bshmd-tmp*",  # bshmd's own temporary files
)


def is_ignored_name(name: str) -> bool:
    """True for a single path component that must never be processed or descended into."""
    if not name or name.startswith("."):
        return True  # hidden files and folders, including bshmd's own .bshmd state folder
    lowered = name.lower()
    if lowered in IGNORED_NAMES:
        return True
    return any(fnmatch.fnmatchcase(lowered, pattern) for pattern in IGNORED_PATTERNS)


class PathFilter:
    """Decides for one input root whether a file is a candidate and a folder worth walking.

    ``excluded`` holds folders bshmd writes into (outputs, quarantines, done and rejected
    folders of every configured folder pair). The config loader already refuses them inside
    an input, but a symlink or a later edit must not make the daemon eat its own results.
    """

    def __init__(self, root: Path, extensions: Iterable[str], excluded: Iterable[Path] = ()) -> None:
        self.root = Path(os.path.abspath(root))
        self.extensions = frozenset("." + ext.lower().lstrip(".") for ext in extensions)
        self.excluded = tuple(Path(os.path.abspath(path)) for path in excluded)

    def is_excluded_dir(self, path: Path) -> bool:
        return any(path == ex or ex in path.parents for ex in self.excluded)

    def accepts_dir(self, path: Path) -> bool:
        """Whether a folder below the root is walked at all."""
        return not is_ignored_name(path.name) and not self.is_excluded_dir(path)

    def accepts_file(self, path: Path) -> bool:
        """Whether a file (absolute path below the root) is a candidate image."""
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            return False
        parts = rel.parts
        if not parts or any(is_ignored_name(part) for part in parts):
            return False
        if os.path.splitext(parts[-1])[1].lower() not in self.extensions:
            return False
        return not self.is_excluded_dir(path.parent)


def excluded_dirs_for(folders: Iterable[object]) -> list[Path]:
    """Every folder bshmd writes into, over all configured folder pairs."""
    excluded: list[Path] = []
    for folder in folders:
        for attr in ("output", "quarantine", "done_dir", "rejected_dir", "state_dir"):
            value = getattr(folder, attr, None)
            if value is not None:
                excluded.append(Path(value))
    return excluded
