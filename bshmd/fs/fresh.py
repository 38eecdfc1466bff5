"""A file's attributes as they are now, not as a client's attribute cache remembers them.

NFS clients revalidate a file's attributes when it is opened (close-to-open consistency);
FUSE asks its server again when a read reaches the end of file it has cached. So
``revalidate`` opens the file read-only, reads its last byte and takes the attributes of
the open file.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


def revalidate(path: Path) -> tuple[os.stat_result | None, str]:
    """(fresh stat, "") of the file opened read-only, or (None, why) when it does not open.

    A writer's share lock (a Windows client over SMB) or a permission problem makes the open
    fail: the file is not ready either way. O_NONBLOCK: a FIFO must not hang the caller.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return None, errno.errorcode.get(exc.errno or 0, str(exc))
    try:
        size = os.fstat(fd).st_size
        if size > 0:
            os.pread(fd, 1, size - 1)
        return os.fstat(fd), ""
    except OSError as exc:
        return None, errno.errorcode.get(exc.errno or 0, str(exc))
    finally:
        os.close(fd)
