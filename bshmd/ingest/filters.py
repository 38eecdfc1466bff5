"""Which paths below an input root are candidate images, and which are noise to ignore.

Copy tools, desktops and file servers leave their own files beside real images: partial
uploads that are renamed when complete, resource forks, thumbnail caches, recycle bins,
snapshot folders, SMB delete placeholders. None of them is an image to process (nothing is
written for them: no result, no quarantine entry, no claim), and bshmd must never pick up
anything it wrote itself. ``folders[].ignore`` adds the site's own globs.

A file that looks like an image but whose extension is not processed (``.jxl``, or ``.png``
with ``extensions: [jpg]``) is reported once per file at INFO, so a photographer who drops
one is told why nothing happens.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from bshmd.decode.names import DEVELOPED_EXTENSIONS, IMAGE_LOOKING_EXTENSIONS, RAW_EXTENSIONS, extension_of

log = logging.getLogger("bshmd.ingest.filters")

# Compared in lower case, against every component of a path (file and folder names). Names
# starting with "." are always ignored (see is_ignored_name): that covers macOS's ._* forks,
# .DS_Store, .Spotlight-V100, .Trashes, .fseventsd, .TemporaryItems, NetApp's .snapshot, rsync's
# .name.XXXXXX, LibreOffice's .~lock.*, .nfs*, .smbdelete* and bshmd's own .bshmd folder.
IGNORED_NAMES = frozenset({
    "thumbs.db", "ehthumbs.db", "desktop.ini",  # Windows Explorer
    "icon\r",  # macOS folder icon
    "@eadir", "#recycle", "#snapshot", "@sharebin", "@tmp",  # Synology DSM
    "@recycle", "@recently-snapshot", ".@__thumb",  # QNAP
    "~snapshot",  # NetApp (SMB view)
    "$recycle.bin", "system volume information",  # Windows volumes
    "network trash folder", "temporary items",  # netatalk / AFP
    "lost+found",
})
IGNORED_PATTERNS = (
    # Partial uploads and downloads, renamed to their final name when complete.
    "*.part", "*.partial", "*.filepart", "*.download", "*.crdownload", "*.opdownload",
    "*.tmp", "*.temp", "*.crswap", "*.!ut", "*.!qb", "*.!sync", "*.sb-*",
    "~$*",  # Office lock files
    "*@synoeastream", "*@synoresource",  # Synology resource forks beside files
    "*.bshmd-tmp*",  # bshmd's own temporary files
)
_NOTE_CAP = 10_000  # paths remembered as already reported (oldest forgotten first)
_noted: OrderedDict[str, None] = OrderedDict()
_noted_lock = threading.Lock()


def is_ignored_name(name: str) -> bool:
    """True for a single path component that must never be processed or descended into."""
    if not name or name.startswith("."):
        return True  # hidden files and folders, including bshmd's own .bshmd state folder
    lowered = name.lower()
    if lowered in IGNORED_NAMES:
        return True
    return any(fnmatch.fnmatchcase(lowered, pattern) for pattern in IGNORED_PATTERNS)


def note_unprocessed_image(path: Path, extension: str, extensions: frozenset[str]) -> None:
    """Say once per file, at INFO, that an image-looking file is left alone, and why."""
    name = os.fspath(path)
    with _noted_lock:
        if name in _noted:
            return
        _noted[name] = None
        if len(_noted) > _NOTE_CAP:
            _noted.popitem(last=False)
    enabled = ", ".join(sorted(ext.lstrip(".") for ext in extensions))
    log.info("not processing %s: .%s is not in extensions (%s)", name, extension, enabled,
             extra={"bshmd_file": name, "bshmd_outcome": "ignored:extension"})


class PathFilter:
    """Decides for one input root whether a file is a candidate and a folder worth walking.

    ``excluded`` holds folders bshmd writes into (outputs, quarantines, done and rejected
    folders of every configured folder pair). The config loader already refuses them inside
    an input, but a symlink or a later edit must not make the daemon eat its own results.
    ``ignore`` holds the folder's own globs (``folders[].ignore``), case-insensitive: one
    without "/" is matched against each file and folder name, one with "/" against the path
    relative to the root. ``raw_pairs`` says which half of a RAW+JPEG pair is processed.
    """

    def __init__(self, root: Path, extensions: Iterable[str], excluded: Iterable[Path] = (),
                 ignore: Iterable[str] = (), raw_pairs: str = "both") -> None:
        self.root = Path(os.path.abspath(root))
        self.extensions = frozenset("." + ext.lower().lstrip(".") for ext in extensions)
        self.excluded = tuple(Path(os.path.abspath(path)) for path in excluded)
        globs = [pattern.lower().strip("/") for pattern in ignore]
        self._name_globs = tuple(g for g in globs if "/" not in g)
        self._path_globs = tuple(g for g in globs if "/" in g)
        self.raw_pairs = raw_pairs

    def is_excluded_dir(self, path: Path) -> bool:
        return any(path == ex or ex in path.parents for ex in self.excluded)

    def _ignored(self, parts: tuple[str, ...]) -> bool:
        for part in parts:
            if is_ignored_name(part):
                return True
            lowered = part.lower()
            if any(fnmatch.fnmatchcase(lowered, glob) for glob in self._name_globs):
                return True
        # A path glob names a folder or a file: whatever lies below a matching folder is ignored too.
        prefixes = ["/".join(parts[:end]).lower() for end in range(1, len(parts) + 1)] if self._path_globs else []
        return any(fnmatch.fnmatchcase(prefix, glob) for prefix in prefixes for glob in self._path_globs)

    def accepts_dir(self, path: Path) -> bool:
        """Whether a folder below the root is walked at all."""
        try:
            parts = path.relative_to(self.root).parts
        except ValueError:
            parts = (path.name,)
        return not self._ignored(parts) and not self.is_excluded_dir(path)

    def accepts_file(self, path: Path) -> bool:
        """Whether a file (absolute path below the root) is a candidate image."""
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            return False
        parts = rel.parts
        if not parts or self._ignored(parts) or self.is_excluded_dir(path.parent):
            return False
        if os.path.splitext(parts[-1])[1].lower() not in self.extensions:
            extension = extension_of(parts[-1])
            if extension in IMAGE_LOOKING_EXTENSIONS:
                note_unprocessed_image(path, extension, self.extensions)
            return False
        return True

    def paired_with(self, path: Path) -> Path | None:
        """The other half of a RAW+JPEG pair that ``raw_pairs`` processes instead of ``path``.

        ``jpeg`` (the default): a RAW file is left alone when a JPEG or HEIF of the same stem
        lies beside it (names compared case-insensitively); ``raw``: the JPEG is left alone
        when its RAW is there; ``both``: nothing is left alone. A partner still being uploaded
        under a partial name (``IMG_1.JPG.part``) counts as there.
        """
        extension = extension_of(path.name)
        if self.raw_pairs == "jpeg" and extension in RAW_EXTENSIONS:
            wanted = DEVELOPED_EXTENSIONS
        elif self.raw_pairs == "raw" and extension in DEVELOPED_EXTENSIONS:
            wanted = RAW_EXTENSIONS
        else:
            return None
        stem = os.path.splitext(path.name)[0].lower()
        try:
            with os.scandir(path.parent) as entries:
                names = [entry.name for entry in entries]
        except OSError:
            return None
        for name in sorted(names):
            lowered = name.lower()
            base, ext = os.path.splitext(lowered)
            if ext.lstrip(".") not in wanted and is_ignored_name(name) and not name.startswith("."):
                base, ext = os.path.splitext(base)  # a partial upload: IMG_1.JPG.part
            if base == stem and ext.lstrip(".") in wanted and "." + ext.lstrip(".") in self.extensions:
                return path.with_name(name)
        return None


def excluded_dirs_for(folders: Iterable[object]) -> list[Path]:
    """Every folder bshmd writes into, over all configured folder pairs."""
    excluded: list[Path] = []
    for folder in folders:
        for attr in ("output", "quarantine", "done_dir", "rejected_dir", "state_dir"):
            value = getattr(folder, attr, None)
            if value is not None:
                excluded.append(Path(value))
    return excluded
