"""Small images for the review page, made once per entry and kept on disk.

For each entry three thumbnails are made together (the photo is decoded once): the photo,
the rejected matte, and the cut-out (photo + matte as alpha, shown by the page on a
checkerboard). They live in ``<output>/.bshmd/review-thumbs/`` — beside the results, never
inside an input folder, and in a hidden folder no watcher looks at — named by a hash of the
entry's path, size and mtime (input and matte), so a replaced file gets new thumbnails and an
unchanged one is never decoded again. The cache is disposable: deleting it is always safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from bshmd.decode.image import own_pixel_limit, sniff_format

if TYPE_CHECKING:
    from PIL import Image

    from bshmd.config import Config
    from bshmd.quarantine.entries import QuarantineEntry

T = TypeVar("T")
log = logging.getLogger("bshmd.review")

THUMB_SIDE = 320  # long side in pixels: sharp at 2x for the page's 160 px wide tiles
CACHE_DIR = "review-thumbs"
KINDS: dict[str, tuple[str, str]] = {  # kind → (file suffix, content type)
    "photo": (".photo.jpg", "image/jpeg"),
    "matte": (".matte.jpg", "image/jpeg"),
    "cutout": (".cutout.webp", "image/webp"),
}
_DONE = ".done"  # written last: this entry was decoded; a kind missing now has nothing to show
_FORMAT_VERSION = b"1"


def cache_write(path: Path, data: bytes, what: str) -> bool:
    """Write one cache file (``what`` names it in the warning); False, logged, when it fails.

    Write then rename: a reader never sees half a file. No fsync: it is a cache.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("review: cannot cache %s in %s: %s", what, path.parent, exc)
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False
    return True


@dataclass(frozen=True)
class Thumbnail:
    data: bytes
    content_type: str


def _stat_key(path: Path | None) -> bytes:
    if path is None:
        return b"-"
    try:
        info = path.stat()
    except OSError:
        return b"missing"
    return f"{info.st_size}:{info.st_mtime_ns}".encode()


class ThumbnailCache:
    """Thumbnails of quarantine entries, generated on first request and read from disk after."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.generated = 0  # how many entries had to be decoded (the rest came from disk)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def folder_dir(self, entry: QuarantineEntry) -> Path:
        return entry.folder.state_dir / CACHE_DIR

    def key(self, entry: QuarantineEntry) -> str:
        digest = hashlib.sha256(_FORMAT_VERSION)
        for part in (os.fsencode(entry.path), _stat_key(entry.path), _stat_key(entry.sidecar("matte"))):
            digest.update(len(part).to_bytes(4, "big") + part)
        return digest.hexdigest()

    def cache_path(self, entry: QuarantineEntry, key: str, suffix: str) -> Path:
        return self.folder_dir(entry) / key[:2] / (key + suffix)

    def get(self, entry: QuarantineEntry, kind: str) -> Thumbnail | None:
        """The thumbnail, or None when there is nothing to show (no matte, not a picture)."""
        suffix, content_type = KINDS[kind]
        key = self.key(entry)
        cached = self._read(self.cache_path(entry, key, suffix))
        if cached is not None:
            return Thumbnail(cached, content_type)
        with self._lock_for(key):  # the page asks for three images of one entry at once
            cached = self._read(self.cache_path(entry, key, suffix))
            if cached is None and not self.cache_path(entry, key, _DONE).exists():
                made = self._generate(entry)
                self._store(entry, key, made)
                cached = made.get(kind)
        return Thumbnail(cached, content_type) if cached is not None else None

    def forget(self, entry: QuarantineEntry, key: str) -> None:
        """Delete an entry's thumbnails once it left the quarantine (``key`` taken before it moved)."""
        with self._locks_guard:
            self._locks.pop(key, None)
        for suffix in (*(s for s, _ in KINDS.values()), _DONE):
            with contextlib.suppress(OSError):
                self.cache_path(entry, key, suffix).unlink()

    def _lock_for(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    @staticmethod
    def _read(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except OSError:
            return None

    def _store(self, entry: QuarantineEntry, key: str, made: dict[str, bytes]) -> None:
        if not entry.folder.output.is_dir():
            return  # an unmounted output share: serve without caching rather than create it
        blobs = {KINDS[kind][0]: data for kind, data in made.items()}
        blobs[_DONE] = b""
        for suffix, data in blobs.items():
            if not cache_write(self.cache_path(entry, key, suffix), data, "a thumbnail"):
                return

    def _generate(self, entry: QuarantineEntry) -> dict[str, bytes]:
        self.generated += 1
        made: dict[str, bytes] = {}
        photo = self._open_photo(entry.path)
        matte = self._open_matte(entry.sidecar("matte"))
        if photo is not None:
            made["photo"] = _encode(photo, "JPEG", quality=82)
        if matte is not None:
            if photo is not None:
                matte = matte.resize(photo.size, _lanczos())
            else:
                matte.thumbnail((THUMB_SIDE, THUMB_SIDE), _lanczos())
            made["matte"] = _encode(matte, "JPEG", quality=85)
            if photo is not None:
                cutout = photo.copy()
                cutout.putalpha(matte)
                made["cutout"] = _encode(cutout, "WEBP", quality=80)
        return made

    def _open_photo(self, path: Path) -> Image.Image | None:
        """The photo as a small RGB image, orientation applied; None when it cannot be shown.

        Reads through Pillow's draft mode (JPEGs decode at 1/2 to 1/8 scale) within the
        configured limits. A JPEG cut off mid-copy is shown as far as it arrived.
        """
        limits = self.config.limits
        try:
            if path.is_symlink() or not path.is_file() or path.stat().st_size > limits.max_file_bytes:
                return None
            with path.open("rb") as file:
                head = file.read(64)
            if sniff_format(head) is None:
                return None
            try:
                return self._small_rgb(path)
            except OSError:
                if head[:2] != b"\xff\xd8":
                    raise
                # A JPEG cut off mid-copy: an end marker lets the decoder stop where the data ends.
                return self._small_rgb(io.BytesIO(path.read_bytes() + b"\xff\xd9"))
        except Exception as exc:  # noqa: BLE001 - any decoder failure means "no preview"
            log.info("review: no preview of %s: %s", path, exc)
            return None

    def _small_rgb(self, source: Path | io.BytesIO) -> Image.Image | None:
        from PIL import Image, ImageOps

        with own_pixel_limit(), Image.open(source) as image:
            if image.width * image.height > self.config.limits.max_pixels:
                return None
            image.draft("RGB", (THUMB_SIDE, THUMB_SIDE))
            small = ImageOps.exif_transpose(image).convert("RGB")
        small.thumbnail((THUMB_SIDE, THUMB_SIDE), _lanczos())
        return small

    def _open_matte(self, path: Path | None) -> Image.Image | None:
        def small_grey(image: Image.Image) -> Image.Image:
            image.draft("L", (THUMB_SIDE, THUMB_SIDE))
            return image.convert("L")

        matte = read_matte(path, self.config.limits.max_pixels, small_grey, "preview")
        if matte is not None:
            matte.thumbnail((THUMB_SIDE, THUMB_SIDE), _lanczos())
        return matte


def _lanczos() -> Image.Resampling:
    from PIL import Image

    return Image.Resampling.LANCZOS


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def read_matte(path: Path | None, max_pixels: int, read: Callable[[Image.Image], T], what: str) -> T | None:
    """``read`` of the matte image at ``path``, opened within ``max_pixels``; None when there is
    none, it is a symlink, it is larger, or it cannot be decoded (logged as "no ``what``")."""
    from PIL import Image

    if path is None or path.is_symlink() or not path.is_file():
        return None
    try:
        with own_pixel_limit(), Image.open(path) as image:
            if image.width * image.height > max_pixels:
                return None
            return read(image)
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "nothing to show"
        log.info("review: no %s of %s: %s", what, path, exc)
        return None
