"""Full-resolution views of one entry, cut into tiles made on demand and kept on disk.

The viewer zooms from "whole photo in the window" to 100 % and beyond. It never asks for the
whole photo: it asks for the 512-pixel tiles it can see, at the pyramid level that fits its
zoom (level ``k`` is the photo scaled by ``1/2**k``; level 0 is full resolution)::

    photo    JPEG  the photo, orientation applied
    matte    PNG   the rejected matte, lossless: what the gate saw, pixel for pixel
    cutout   WebP  photo with the matte as alpha (the page puts it on a checkerboard, white, black)
    overlay  JPEG  the photo with what the matte removes tinted red

A tile is made the first time it is asked for and read from disk after, in the entry's own
folder beside its thumbnails (same key: a replaced file gets new tiles). Making one needs the
level's pixels: decoding a 24 MP photo takes a good part of a second, so the last decoded
levels stay in memory, within a fixed pixel budget: the daemon's memory does not grow with
the number of entries viewed. JPEG photos are decoded at reduced size for levels above 0.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import math
import shutil
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bshmd.decode.image import own_pixel_limit, sniff_format
from bshmd.review.thumbnails import cache_write, read_matte

if TYPE_CHECKING:
    import numpy as np

    from bshmd.config import Config
    from bshmd.quarantine.entries import QuarantineEntry
    from bshmd.review.thumbnails import ThumbnailCache

log = logging.getLogger("bshmd.review")

TILE = 512
TILE_KINDS: dict[str, tuple[str, str]] = {  # kind → (file extension, content type)
    "photo": ("jpg", "image/jpeg"),
    "matte": ("png", "image/png"),
    "cutout": ("webp", "image/webp"),
    "overlay": ("jpg", "image/jpeg"),
}
OVERLAY_RGB = (230, 40, 40)
OVERLAY_STRENGTH = 0.55  # how much of the removed part's colour is replaced by the tint
MEMORY_PIXELS = 40_000_000  # decoded pixels kept between tile requests (about 160 MB at most)


@dataclass(frozen=True)
class Geometry:
    """What the viewer needs to lay out tiles: the oriented size and the pyramid's depth."""

    width: int
    height: int
    levels: int  # level levels-1 fits in one tile
    has_photo: bool
    has_matte: bool

    def level_size(self, level: int) -> tuple[int, int]:
        scale = 1 << level
        return math.ceil(self.width / scale), math.ceil(self.height / scale)

    def tiles_across(self, level: int) -> tuple[int, int]:
        width, height = self.level_size(level)
        return math.ceil(width / TILE), math.ceil(height / TILE)

    def as_json(self) -> dict[str, object]:
        return {"width": self.width, "height": self.height, "levels": self.levels, "tile": TILE,
                "has_photo": self.has_photo, "has_matte": self.has_matte}


@dataclass
class _Level:
    photo: np.ndarray | None  # HxWx3 uint8
    matte: np.ndarray | None  # HxW uint8

    @property
    def pixels(self) -> int:
        return sum(a.shape[0] * a.shape[1] for a in (self.photo, self.matte) if a is not None)


class TileCache:
    """Tiles of quarantine entries; thread-safe, one decode per level at a time."""

    def __init__(self, config: Config, thumbnails: ThumbnailCache, *, memory_pixels: int = MEMORY_PIXELS) -> None:
        self.config = config
        self.thumbnails = thumbnails  # owns the cache folder and the entry key
        self.memory_pixels = memory_pixels
        self.decoded = 0  # levels decoded from the files (the rest came from memory)
        self.made = 0  # tiles encoded (the rest came from disk)
        self._levels: OrderedDict[tuple[str, int], _Level] = OrderedDict()
        self._geometry: OrderedDict[str, Geometry | None] = OrderedDict()
        self._lock = threading.Lock()  # guards the two dicts
        self._decode_lock = threading.Lock()  # one decode at a time: two would double the memory

    # --- geometry ------------------------------------------------------------------------

    def geometry(self, entry: QuarantineEntry) -> Geometry | None:
        """The oriented size of the entry's photo (or matte); None when neither can be shown."""
        key = self.thumbnails.key(entry)
        with self._lock:
            if key in self._geometry:
                self._geometry.move_to_end(key)
                return self._geometry[key]
        size = self._photo_size(entry.path)
        matte_size = self._matte_size(entry.sidecar("matte"))
        if size is not None and matte_size is not None and matte_size != size:
            log.info("review: %s: matte %s does not fit the photo %s; showing the photo", entry.path, matte_size, size)
            matte_size = None
        width, height = size or matte_size or (0, 0)
        geometry = None
        if width and height:
            levels = 1 + max(0, math.ceil(math.log2(max(width, height) / TILE)))
            geometry = Geometry(width, height, levels, size is not None, matte_size is not None)
        with self._lock:
            self._geometry[key] = geometry
            while len(self._geometry) > 4096:
                self._geometry.popitem(last=False)
        return geometry

    def _photo_size(self, path: Path) -> tuple[int, int] | None:
        from PIL import Image

        limits = self.config.limits
        try:
            if path.is_symlink() or not path.is_file() or path.stat().st_size > limits.max_file_bytes:
                return None
            with path.open("rb") as file:
                if sniff_format(file.read(64)) is None:
                    return None
            with own_pixel_limit(), Image.open(path) as image:
                if image.width * image.height > limits.max_pixels:
                    return None
                orientation = image.getexif().get(0x0112, 1)
                width, height = image.size
            # Orientations 5-8 turn the picture a quarter: width and height swap.
            return (height, width) if orientation in (5, 6, 7, 8) else (width, height)
        except Exception as exc:  # noqa: BLE001 - any decoder failure means "nothing to show"
            log.info("review: no view of %s: %s", path, exc)
            return None

    def _matte_size(self, path: Path | None) -> tuple[int, int] | None:
        return read_matte(path, self.config.limits.max_pixels, lambda image: image.size, "view")

    # --- tiles ---------------------------------------------------------------------------

    def tile_dir(self, entry: QuarantineEntry, key: str) -> Path:
        return self.thumbnails.cache_path(entry, key, ".tiles")

    def get(self, entry: QuarantineEntry, kind: str, level: int, column: int, row: int) -> bytes | None:
        """One tile's encoded bytes; None when the entry has nothing of this kind or no such tile."""
        geometry = self.geometry(entry)
        if geometry is None or kind not in TILE_KINDS or not 0 <= level < geometry.levels:
            return None
        if kind != "photo" and not geometry.has_matte or kind != "matte" and not geometry.has_photo:
            return None
        across, down = geometry.tiles_across(level)
        if not (0 <= column < across and 0 <= row < down):
            return None
        key = self.thumbnails.key(entry)
        path = self.tile_dir(entry, key) / f"{kind}-{level}-{column}-{row}.{TILE_KINDS[kind][0]}"
        with contextlib.suppress(OSError):
            return path.read_bytes()
        pixels = self._level(entry, key, geometry, level)
        data = _encode_tile(kind, pixels, column, row)
        self.made += 1
        self._store(entry, path, data)
        return data

    def forget(self, entry: QuarantineEntry, key: str) -> None:
        """Drop an entry's tiles from disk and memory once it left the quarantine."""
        with self._lock:
            for cached in [k for k in self._levels if k[0] == key]:
                del self._levels[cached]
            self._geometry.pop(key, None)
        shutil.rmtree(self.tile_dir(entry, key), ignore_errors=True)

    def _level(self, entry: QuarantineEntry, key: str, geometry: Geometry, level: int) -> _Level:
        with self._lock:
            found = self._levels.get((key, level))
            if found is not None:
                self._levels.move_to_end((key, level))
                return found
        with self._decode_lock:
            with self._lock:
                found = self._levels.get((key, level))
            if found is not None:
                return found
            size = geometry.level_size(level)
            made = _Level(None, None)
            failed: list[BaseException] = []

            def photo() -> None:
                try:
                    made.photo = self._decode_photo(entry.path, size)
                except Exception as exc:  # noqa: BLE001 - raised below, in the request's thread
                    failed.append(exc)

            # Photo and matte decode side by side (Pillow's decoders let go of the GIL): the
            # first view of a photo waits for the slower of the two, not for both.
            photo_thread = threading.Thread(target=photo, name="bshmd-review-decode") if geometry.has_photo else None
            if photo_thread is not None:
                photo_thread.start()
            try:
                if geometry.has_matte:
                    made.matte = self._decode_matte(entry.sidecar("matte"), level, size)
            finally:
                if photo_thread is not None:
                    photo_thread.join()
            if failed:
                raise failed[0]
            self.decoded += 1
            with self._lock:
                self._levels[(key, level)] = made
                while sum(v.pixels for v in self._levels.values()) > self.memory_pixels and len(self._levels) > 1:
                    self._levels.popitem(last=False)
            _trim()
            return made

    def _decode_photo(self, path: Path, size: tuple[int, int]) -> np.ndarray:
        try:
            return self._decode_photo_from(path, size)
        except OSError:
            with path.open("rb") as file:
                data = file.read(self.config.limits.max_file_bytes + 1)
            if data[:2] != b"\xff\xd8":
                raise
            # A JPEG cut off mid-copy (as the thumbnails do): an end marker lets the decoder
            # stop where the data ends, and the viewer shows as much as arrived.
            return self._decode_photo_from(io.BytesIO(data + b"\xff\xd9"), size)

    @staticmethod
    def _decode_photo_from(source: Path | io.BytesIO, size: tuple[int, int]) -> np.ndarray:
        import numpy as np
        from PIL import Image

        # One decoded copy at a time (a 24 MP photo is about 100 MB as an image): turn and
        # convert only when needed, where ImageOps.exif_transpose and convert always copy.
        with own_pixel_limit(), Image.open(source) as image:
            orientation = image.getexif().get(0x0112, 1)
            stored = (size[1], size[0]) if orientation in (5, 6, 7, 8) else size
            # JPEG: decode at 1/2, 1/4 or 1/8 when that is enough. Pillow picks the scale from
            # whole quotients, so ask for the rounded-down size: a level is rounded up.
            factor = max(1, round(image.width / stored[0]))
            image.draft("RGB", (max(1, image.width // factor), max(1, image.height // factor)))
            picture = image.convert("RGB") if image.mode != "RGB" else image
            picture.load()
            t = Image.Transpose  # EXIF orientation → the turn that shows the picture as it was taken
            turn = {2: t.FLIP_LEFT_RIGHT, 3: t.ROTATE_180, 4: t.FLIP_TOP_BOTTOM, 5: t.TRANSPOSE,
                    6: t.ROTATE_270, 7: t.TRANSVERSE, 8: t.ROTATE_90}.get(orientation)
            if turn is not None:
                picture = picture.transpose(turn)
            if picture.size != size:
                picture = _shrink(picture, size)
            return np.asarray(picture, dtype=np.uint8)

    @staticmethod
    def _decode_matte(path: Path | None, level: int, size: tuple[int, int]) -> np.ndarray:
        import numpy as np
        from PIL import Image

        assert path is not None
        with own_pixel_limit(), Image.open(path) as image:
            matte = image.convert("L")
        if level:
            matte = matte.reduce(1 << level)  # a box average: the matte's soft edges stay honest
            if matte.size != size:
                matte = matte.resize(size)
        return np.asarray(matte, dtype=np.uint8)

    def _store(self, entry: QuarantineEntry, path: Path, data: bytes) -> None:
        if not entry.folder.output.is_dir():
            return  # an unmounted output share: serve without caching rather than create it
        cache_write(path, data, "a tile")


def _trim() -> None:
    """Hand the freed pages of a decode back to the system.

    A decode frees some hundred megabytes in blocks small enough for malloc to keep for later,
    in whichever of its per-thread arenas the request's thread used; without this the
    server's resident size wanders up and down by that much with the requests' threads.
    """
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL("libc.so.6")
            _libc.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _libc = False  # not glibc: nothing to do
    if _libc:
        _libc.malloc_trim(0)


_libc: ctypes.CDLL | bool | None = None


def _shrink(image, size: tuple[int, int]):  # noqa: ANN001, ANN202 - PIL images
    from PIL import Image

    factor = max(1, min(image.width // size[0], image.height // size[1]))
    if factor > 1:
        image = image.reduce(factor)
    return image if image.size == size else image.resize(size, Image.Resampling.BOX)


def _encode_tile(kind: str, level: _Level, column: int, row: int) -> bytes:
    import numpy as np
    from PIL import Image

    window = (slice(row * TILE, (row + 1) * TILE), slice(column * TILE, (column + 1) * TILE))
    buffer = io.BytesIO()
    if kind == "matte":
        assert level.matte is not None
        Image.fromarray(np.ascontiguousarray(level.matte[window]), "L").save(buffer, "PNG", compress_level=3)
        return buffer.getvalue()
    assert level.photo is not None
    photo = level.photo[window]
    if kind == "photo":
        Image.fromarray(np.ascontiguousarray(photo), "RGB").save(buffer, "JPEG", quality=90)
    elif kind == "cutout":
        assert level.matte is not None
        rgba = np.dstack([photo, level.matte[window]])
        Image.fromarray(rgba, "RGBA").save(buffer, "WEBP", quality=90, method=2)
    else:
        assert level.matte is not None
        removed = (255 - level.matte[window].astype(np.float32)) * (OVERLAY_STRENGTH / 255)
        tint = np.asarray(OVERLAY_RGB, dtype=np.float32)
        blended = photo * (1 - removed[..., None]) + tint * removed[..., None]
        Image.fromarray(np.clip(blended + 0.5, 0, 255).astype(np.uint8), "RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()
