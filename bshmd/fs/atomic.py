"""Writing and moving files so that a reader never sees half a file, and nothing escapes its root.

``atomic_write`` writes to a temporary name in the destination folder, makes it durable
(fsync), gives it its final mode and group, renames it over the final name and fsyncs the
folder. The temporary name starts with "." and ends with ".bshmd-tmp", so hot-folder
watchers downstream (ours included) ignore it.

Paths are walked one component at a time from ``root`` with ``O_NOFOLLOW`` and ``dir_fd``, so
a symlinked folder inside the tree is refused even if it appears between a check and the
write. A symlink *at the final name* is replaced by the new file (rename swaps the directory
entry; the link's target is never written).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from bshmd.fs.move import Expected, place
from bshmd.fs.move import exists_at as _exists
from bshmd.fs.move import fsync_dir as _fsync_dir
from bshmd.fs.names import TMP_SUFFIX, is_temp_name  # noqa: F401 - also imported from here
from bshmd.fs.names import temp_name as _temp_name

log = logging.getLogger("bshmd.atomic")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class UnsafePathError(ValueError):
    """A destination outside its root, or reached through a symlinked folder."""


class UnknownGroupError(LookupError):
    """outputs.group names a group this host does not have."""


def group_id(group: str | None) -> int:
    """The numeric id of ``group`` (a name, or digits), or -1 for 'leave it as it is'."""
    if group is None:
        return -1
    import grp

    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        if group.isdigit():
            return int(group)
        raise UnknownGroupError(f"outputs.group = {group!r}: no such group on this host") from None


def _relative_parts(path: Path, root: Path) -> tuple[Path, tuple[str, ...]]:
    root_abs = Path(os.path.abspath(root))
    path_abs = Path(os.path.abspath(path))  # folds "..", lexically: the walk below checks links
    try:
        rel = path_abs.relative_to(root_abs)
    except ValueError:
        raise UnsafePathError(f"{path}: lies outside {root}; refusing to write there") from None
    if not rel.parts:
        raise UnsafePathError(f"{path}: is the root folder itself, not a file under it")
    return root_abs, rel.parts


@contextlib.contextmanager
def open_parent(path: Path, root: Path, *, create: bool = True) -> Iterator[tuple[int, str]]:
    """(descriptor of the folder that holds ``path``, file name), walked safely from ``root``.

    Missing folders are created (when ``create``); a component that is a symlink or not a
    folder raises UnsafePathError. ``root`` itself may be a symlink (a mount point often is).
    """
    root_abs, parts = _relative_parts(path, root)
    fd = os.open(root_abs, _DIR_FLAGS)
    try:
        for index, part in enumerate(parts[:-1]):
            try:
                next_fd = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=fd)
                next_fd = _open_component(part, fd, root_abs, parts[: index + 1])
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    where = root_abs.joinpath(*parts[: index + 1])
                    raise UnsafePathError(f"{where}: is a symlink or not a folder; refusing to write through it") from None
                raise
            os.close(fd)
            fd = next_fd
        yield fd, parts[-1]
    finally:
        os.close(fd)


def _open_component(part: str, dir_fd: int, root: Path, parts: tuple[str, ...]) -> int:
    try:
        return os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePathError(f"{root.joinpath(*parts)}: is a symlink or not a folder") from None
        raise


def ensure_root(root: Path) -> None:
    """Create the folder ``root`` if it is missing, but never its parents.

    Done, quarantine and rejected folders may not exist before the first file needs them. A
    missing parent means a share that is not mounted: creating it would write into the bare
    mount point, so that is an error (FileNotFoundError).
    """
    with contextlib.suppress(FileExistsError):
        os.mkdir(root)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def atomic_write(path: Path, data: bytes, *, root: Path, mode: int = 0o644, group: str | None = None,
                 mtime_ns: int | None = None, before_rename: Callable[[], None] | None = None) -> None:
    """Write ``data`` to ``path`` (under ``root``) so that it appears complete or not at all.

    ``root`` must exist (an output folder that is missing is an unmounted share); the folders
    between it and ``path`` are created. ``mtime_ns`` stamps the file's mtime before the
    rename, so the stamp arrives together with the content. ``before_rename`` runs right
    before the rename and may raise to leave nothing behind (the claim's fence).
    """
    gid = group_id(group)  # an unknown group fails before anything is written
    with open_parent(Path(path), root) as (dir_fd, name):
        tmp = _temp_name(name)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=dir_fd)
        try:
            try:
                _write_all(fd, data)
                os.fchmod(fd, mode)  # explicit, so the umask does not decide
                if gid != -1:
                    os.fchown(fd, -1, gid)
                if mtime_ns is not None:
                    os.utime(fd, ns=(mtime_ns, mtime_ns))
                os.fsync(fd)
            finally:
                os.close(fd)
            if before_rename is not None:
                before_rename()
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
        _fsync_dir(dir_fd)


def numbered_name(name: str, number: int) -> str:
    """'a.jpg' → 'a~1.jpg'; 'archive' → 'archive~1'; '.hidden' → '.hidden~1'."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return f"{name}~{number}"
    return f"{stem}~{number}.{ext}"


def free_name(dir_fd: int, name: str, taken: Callable[[str], bool] | None = None) -> str:
    """``name`` or the first 'name~N.ext' that does not exist in the folder (nor is ``taken``)."""
    number = 0
    candidate = name
    while _exists(dir_fd, candidate) or (taken is not None and taken(candidate)):
        number += 1
        candidate = numbered_name(name, number)
    return candidate


def safe_move(src: Path, dst: Path, *, root: Path, taken: Callable[[str], bool] | None = None,
              expect: Expected | None = None) -> Path:
    """Move the file ``src`` to ``dst`` under ``root`` without overwriting anything.

    ``root`` is created if missing (see ensure_root); folders under it as needed.
    If ``dst`` exists, 'name~1.ext', 'name~2.ext'… is used instead; ``taken`` may reserve
    further names (a sidecar's owner). Returns the final path. The move itself is
    ``bshmd.fs.move.place``: a hard link then unlink on one filesystem; across filesystems a
    copy that is verified against the source before the source is removed. With ``expect``
    (size, mtime_ns), a source that is not (or no longer) that file raises SourceChanged and
    stays where it is.
    """
    src = Path(src)
    ensure_root(root)
    with open_parent(Path(dst), root) as (dir_fd, name):
        while True:
            final = free_name(dir_fd, name, taken)
            try:
                place(src, dir_fd, final, expect=expect)
            except FileExistsError:
                continue  # another mover took that name between the check and the link
            break
        _fsync_dir(dir_fd)
    final_path = Path(dst).with_name(final)
    log.debug("moved %s to %s", src, final_path)
    return final_path
