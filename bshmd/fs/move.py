"""Moving a file out of a hot folder without ever losing a byte of it: one primitive, ``place``.

A photographer's file may still be written while bshmd moves it (a copy that stalled, then
went on). On one filesystem a move is a hard link plus an unlink of the old name: both names
are the same inode, so whatever the writer adds lands in the moved file. Across filesystems
(a quarantine or done folder on another share) a move is a copy, and unlinking the source
while the writer still writes would lose the rest of the photo. So ``place``:

1. checks that the source still has the size and mtime the caller expects (the ones it was
   settled, decoded and judged with), else raises ``SourceChanged`` and touches nothing;
2. on another filesystem, copies to a temporary name, fsyncs, reads the copy back and
   compares it with the source (size, mtime, SHA-256 of the bytes read from each);
3. checks again that the source is unchanged (size, mtime, inode), puts the copy (or the
   link) under its final name, never overwriting (``FileExistsError``), and checks once more;
4. only then unlinks the source. A source that changed at any step is left where it is and
   whatever was placed is removed: ``SourceChanged``. A copy that does not verify raises
   OSError(EIO) and is removed; the source stays.

``remove_unchanged`` is the same promise for ``on_success: delete``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat as stat_module
from pathlib import Path

from bshmd.fs.names import temp_name

_CHUNK = 1 << 20
# A copy's mtime may be rounded by the destination (FAT: 2 s, SMB: 100 ns, some NAS: 1 s).
_MTIME_TOLERANCE_NS = 2_000_000_000
# No hard links across devices, or at all (SMB, some FUSE): copy instead.
_NO_LINK = (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK)

Expected = tuple[int, int]  # (size, mtime_ns) the file had when it was settled


class SourceChanged(Exception):
    """The file is not as it was when it was settled: it is being written. Nothing was moved."""

    def __init__(self, path: Path | str, expected: Expected | None, found: Expected | None) -> None:
        what = "vanished" if found is None else f"is now {found[0]} bytes, mtime {found[1]}"
        super().__init__(f"{path}: changed while it was being moved away ({what}; expected "
                         f"{expected[0] if expected else '?'} bytes, mtime {expected[1] if expected else '?'})")
        self.path = Path(path)
        self.expected = expected
        self.found = found


def exists_at(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def fsync_dir(dir_fd: int) -> None:
    try:
        os.fsync(dir_fd)
    except OSError as exc:  # some network filesystems refuse fsync on folders; the rename stands
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise


def _identity(st: os.stat_result) -> Expected:
    return st.st_size, st.st_mtime_ns


def check_unchanged(path: Path, expect: Expected | None) -> os.stat_result:
    """The stat of ``path`` (of its target, for a link); SourceChanged unless it is ``expect``."""
    st = os.stat(path)
    if expect is not None and _identity(st) != tuple(expect):
        raise SourceChanged(path, expect, _identity(st))
    return st


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_ino, a.st_dev, a.st_size, a.st_mtime_ns) == (b.st_ino, b.st_dev, b.st_size, b.st_mtime_ns)


def _recheck(src: Path, before: os.stat_result, expect: Expected | None) -> None:
    try:
        now = os.stat(src)
    except FileNotFoundError:
        raise SourceChanged(src, expect, None) from None
    if not _same(now, before):
        raise SourceChanged(src, expect or _identity(before), _identity(now))


def place(src: Path, dir_fd: int, final: str, *, expect: Expected | None = None) -> None:
    """Move the file ``src`` to ``final`` in the folder ``dir_fd``; see the module docstring.

    FileExistsError when ``final`` is taken (the caller picks another name; nothing was
    changed); FileNotFoundError when ``src`` is gone; SourceChanged when it changed.
    """
    src = Path(src)
    before = check_unchanged(src, expect)
    try:
        os.link(src, final, dst_dir_fd=dir_fd, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
        _copy_verified(src, before, dir_fd, final, expect)
    else:
        try:
            _recheck(src, before, expect)
        except SourceChanged:
            with contextlib.suppress(OSError):
                os.unlink(final, dir_fd=dir_fd)
            raise
    os.unlink(src)


def remove_unchanged(path: Path, expect: Expected | None) -> None:
    """Unlink ``path`` only while it is still the file of ``expect`` (else SourceChanged)."""
    check_unchanged(path, expect)
    os.unlink(path)


def _copy_verified(src: Path, before: os.stat_result, dir_fd: int, final: str,
                   expect: Expected | None) -> None:
    tmp = temp_name(final)
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                 dir_fd=dir_fd)
    placed = False
    try:
        try:
            with open(src, "rb") as reader:
                opened = os.fstat(reader.fileno())
                if not _same(opened, before):
                    raise SourceChanged(src, expect or _identity(before), _identity(opened))
                source_hash, copied = _copy(reader.fileno(), fd)
            os.fchmod(fd, stat_module.S_IMODE(before.st_mode))
            os.utime(fd, ns=(before.st_atime_ns, before.st_mtime_ns))
            os.fsync(fd)
            _verify_copy(src, fd, source_hash, copied, before)
        finally:
            os.close(fd)
        _recheck(src, before, expect)
        _link_or_rename(tmp, final, dir_fd)
        placed = True
        _recheck(src, before, expect)
    except BaseException:
        if placed:
            with contextlib.suppress(OSError):
                os.unlink(final, dir_fd=dir_fd)
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)


def _copy(reader: int, writer: int) -> tuple[bytes, int]:
    digest = hashlib.sha256()
    copied = 0
    while chunk := os.read(reader, _CHUNK):
        digest.update(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(writer, view):]
        copied += len(chunk)
    return digest.digest(), copied


def _verify_copy(src: Path, fd: int, source_hash: bytes, copied: int, before: os.stat_result) -> None:
    """The copy, read back, holds exactly the bytes read from the source, all of them."""
    digest = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, _CHUNK, offset):
        digest.update(chunk)
        offset += len(chunk)
    st = os.fstat(fd)
    problems = []
    if copied != before.st_size:
        problems.append(f"read {copied} bytes of {before.st_size}")
    if offset != copied or st.st_size != copied:
        problems.append(f"the copy has {st.st_size} bytes, {copied} were written")
    if digest.digest() != source_hash:
        problems.append("the copy's SHA-256 differs from the source's")
    if abs(st.st_mtime_ns - before.st_mtime_ns) > _MTIME_TOLERANCE_NS:
        problems.append(f"the copy's mtime {st.st_mtime_ns} is not the source's {before.st_mtime_ns}")
    if problems:
        if copied != before.st_size:  # the source grew or shrank while it was read
            raise SourceChanged(src, _identity(before), (copied, before.st_mtime_ns))
        raise OSError(errno.EIO, f"copy of {src} does not verify: {'; '.join(problems)}")


def _link_or_rename(tmp: str, final: str, dir_fd: int) -> None:
    try:
        os.link(tmp, final, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except FileExistsError:
        raise
    except OSError:
        # No hard links here (SMB, some FUSE): check-then-rename, a small window only.
        if exists_at(dir_fd, final):
            raise FileExistsError(errno.EEXIST, "exists", final) from None
        os.rename(tmp, final, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
