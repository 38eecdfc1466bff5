"""XMP sidecars: the ``.xmp`` file a raw developer or DAM writes beside a photo.

Two namings are in use: ``IMG_1.xmp`` (Adobe: the photo's stem) and ``IMG_1.CR2.xmp``
(darktable, digiKam: the photo's full name); the extension may be upper case. A stem
sidecar describes every photo of that stem (a RAW and its JPEG), so it belongs to one photo
only while no other photo of that stem lies beside it.

``read_sidecar_xmp`` gives the sidecar's bytes for the metadata step to merge into outputs;
``sidecar_of`` names the sidecar that is the photo's alone, so its moves (quarantine,
``on_success: move``) take it along (bshmd.fs.sidecars).

Every lookup needs the names beside the photo. Listing the folder for each photo made a
backlog quadratic (9.6 ms a photo at 10,000 files), so a folder's listing is kept, indexed,
until the folder's mtime changes: adding, removing or renaming a name changes it, so a kept
listing is exact. Two cases make an mtime unreliable and are not kept: a listing taken while
the folder's mtime is under ``RACY_SECONDS`` old (a name added later in the same clock tick,
or within a file system's 2 s granularity, leaves the mtime as it was), and one that failed.
A network or FUSE client answers ``stat`` from its attribute cache (NFS ``actimeo``), so
the folder's mtime may lag a name another host just added, while opening the folder to list
it revalidates (NFS close-to-open). A kept listing of such a folder is therefore also listed
again once it is older than the mount's attribute-cache time (bshmd.fs.mounts): a sidecar
that arrives may go unseen for up to that long (3 s on NFS by default), where a listing per
photo saw it at once; the same window bshmd already waits out before a file counts as settled.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from bshmd.decode.names import IMAGE_LOOKING_EXTENSIONS, extension_of
from bshmd.fs.mounts import attribute_cache_for

if TYPE_CHECKING:
    from bshmd.decode.record import Decoded

SIDECAR_EXTENSION = ".xmp"
MAX_SIDECAR_BYTES = 16 * 1024 * 1024  # XMP packets are kilobytes; refuse to read a stray huge file
RACY_SECONDS = 2.0  # FAT/exFAT and some SMB servers keep mtimes to 2 s
MAX_KEPT_FOLDERS = 64  # a listing of 100,000 names is some 20 MB


@dataclass(frozen=True)
class _Listing:
    """The regular files of one folder, looked up by lower-case name."""

    stamp: tuple[int, int, int]  # st_dev, st_ino, st_mtime_ns of the folder when listed
    expires: float = math.inf  # time.monotonic() after which it is listed again (network mounts)
    by_lower: dict[str, str] = field(default_factory=dict)
    case_twins: frozenset[str] = frozenset()  # lower-case names that more than one name has

    @classmethod
    def of(cls, stamp: tuple[int, int, int], names: list[str]) -> _Listing:
        ordered = sorted(names)  # sorted: of two names equal but for case, the later wins
        by_lower = {name.lower(): name for name in ordered}
        twins: frozenset[str] = frozenset()
        if len(by_lower) != len(ordered):
            counts = Counter(name.lower() for name in ordered)
            twins = frozenset(lower for lower, count in counts.items() if count > 1)
        return cls(stamp, by_lower=by_lower, case_twins=twins)

    def other_picture_of_stem(self, photo: str) -> bool:
        """Whether a picture other than ``photo`` has its stem (``IMG_1.CR2`` beside ``IMG_1.JPG``).

        Asked by name, one per picture extension, so the answer costs no walk of the folder."""
        stem = os.path.splitext(photo)[0].lower()
        # A name of that stem is the stem and an extension, or the stem alone where splitext
        # finds none but the name still has one (``..png``: leading dots are no separator).
        for lower in (stem, *(f"{stem}.{extension}" for extension in IMAGE_LOOKING_EXTENSIONS)):
            name = self.by_lower.get(lower)
            if (name is not None and (name != photo or lower in self.case_twins)
                    and os.path.splitext(name)[0].lower() == stem
                    and extension_of(name) in IMAGE_LOOKING_EXTENSIONS):
                return True
        return False


_EMPTY = _Listing((0, 0, 0))
_kept: OrderedDict[str, _Listing] = OrderedDict()
_kept_lock = threading.Lock()


def _stamp(folder: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns


def _list(folder: str) -> list[str] | None:
    try:
        with os.scandir(folder) as entries:
            return [entry.name for entry in entries if entry.is_file(follow_symlinks=False)]
    except OSError:
        return None


def _listing_beside(photo: Path) -> _Listing:
    folder = os.fspath(photo.parent)
    stamp = _stamp(folder)
    if stamp is None:
        return _EMPTY
    with _kept_lock:
        kept = _kept.get(folder)
        if kept is not None and kept.stamp == stamp and time.monotonic() < kept.expires:
            _kept.move_to_end(folder)
            return kept
    names = _list(folder)
    if names is None:
        return _EMPTY
    listing = _Listing.of(stamp, names)
    if time.time() - stamp[2] / 1e9 >= RACY_SECONDS and _stamp(folder) == stamp:
        cached, _ = attribute_cache_for(Path(folder))
        if cached > 0:
            listing = replace(listing, expires=time.monotonic() + cached)
        with _kept_lock:
            _kept[folder] = listing
            _kept.move_to_end(folder)
            while len(_kept) > MAX_KEPT_FOLDERS:
                _kept.popitem(last=False)
    return listing


def find_sidecar(photo: Path) -> Path | None:
    """The XMP sidecar of ``photo``, full-name form first, then stem form; None if it has none."""
    photo = Path(photo)
    return _find(photo, _listing_beside(photo))


def _find(photo: Path, listing: _Listing) -> Path | None:
    names = listing.by_lower
    full = names.get(photo.name.lower() + SIDECAR_EXTENSION)
    if full is not None:
        return photo.with_name(full)
    stem = names.get(os.path.splitext(photo.name)[0].lower() + SIDECAR_EXTENSION)
    return photo.with_name(stem) if stem is not None else None


def sidecar_of(photo: Path) -> Path | None:
    """The sidecar that belongs to ``photo`` alone, so it moves with it (see the module docstring)."""
    photo = Path(photo)
    listing = _listing_beside(photo)
    sidecar = _find(photo, listing)
    if sidecar is None or sidecar.name.lower() == photo.name.lower() + SIDECAR_EXTENSION:
        return sidecar
    if listing.other_picture_of_stem(photo.name):
        return None  # shared with another photo of the shot: it stays with that one
    return sidecar


def read_sidecar_xmp(photo: Path) -> bytes | None:
    """The XMP packet of ``photo``'s sidecar (full-name form first), or None without one."""
    sidecar = find_sidecar(Path(photo))
    if sidecar is None:
        return None
    try:
        with open(sidecar, "rb") as handle:
            data = handle.read(MAX_SIDECAR_BYTES + 1)
    except OSError:
        return None
    return data if 0 < len(data) <= MAX_SIDECAR_BYTES else None


def with_sidecar_xmp(photo: Decoded, path: Path) -> Decoded:
    """``photo`` (decoded from ``path``) with its sidecar's XMP in place of the embedded one.

    The sidecar is what a raw developer or DAM last wrote: it wins over the embedded XMP,
    cleaned by the same checks (meta_from_blocks) as an embedded packet. The pipeline and an
    accepted quarantine entry both decode through this, so their results carry the same
    metadata.
    """
    from bshmd.decode.meta import meta_from_blocks

    sidecar = read_sidecar_xmp(path)
    if sidecar is None:
        return photo
    return replace(photo, meta=photo.meta.with_xmp(meta_from_blocks(xmp=sidecar).xmp))
