"""The quarantine tree: inputs that could not become results, each with the reason, for a person.

On disk, for an input ``<input>/<rel folder>/<name>``::

    <quarantine>/<rel folder>/<name>               the input, moved (never overwritten: name~N.ext)
    <quarantine>/<rel folder>/<name>.reason.json   why, and what happened to it since
    <quarantine>/<rel folder>/<name>.matte.png     the rejected matte, full resolution (gate failures)
    <quarantine>/<rel folder>/<name>.preview.png   the same matte, long side ≤ 256 (for the review page)

The record (``<name>.reason.json``) is bshmd.quarantine.record; what a person can do with
an entry afterwards (requeue, accept, reject, purge) is bshmd.quarantine.actions.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from bshmd import __version__
from bshmd.decode.sidecar import sidecar_of
from bshmd.fs.atomic import atomic_write, ensure_root, free_name, numbered_name, open_parent, safe_move
from bshmd.fs.sidecars import move_with_sidecar
from bshmd.quarantine.record import (
    MATTE_SUFFIX,
    PREVIEW_SUFFIX,
    REASON_SUFFIX,
    SIDECAR_SUFFIXES,
    QuarantineRecord,
    Step,
)

if TYPE_CHECKING:
    import numpy as np

    from bshmd.config import FolderConfig
    from bshmd.errors import InputRejected

log = logging.getLogger("bshmd.quarantine")

PREVIEW_SIDE = 256


def _png(array: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array, "L").save(buffer, "PNG", compress_level=6)
    return buffer.getvalue()


def _preview(matte: np.ndarray) -> np.ndarray:
    import cv2

    height, width = matte.shape
    scale = PREVIEW_SIDE / max(height, width)
    if scale >= 1:
        return matte
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(matte, size, interpolation=cv2.INTER_AREA)


def _usable_matte(matte: Any) -> bool:
    import numpy as np

    return isinstance(matte, np.ndarray) and matte.ndim == 2 and matte.dtype == np.uint8 and matte.size > 0


def sidecar_taken(folder: Path):  # noqa: ANN202 - a predicate for free_name
    """Whether a name in ``folder`` is taken by another entry's reason, matte or preview."""
    return lambda name: any((folder / (name + suffix)).exists() for suffix in SIDECAR_SUFFIXES)


def quarantine_input(folder: FolderConfig, source: Path, relpath: PurePosixPath, rejection: InputRejected, *,
                     instance_id: str, matte: np.ndarray | None = None,
                     expect: tuple[int, int] | None = None) -> Path:
    """Move ``source`` into the quarantine tree with its reason; returns where it now is.

    The sidecars (reason, matte, preview) are written first, under the name the input will
    get, then the input is moved: a crash in between leaves the input where it was (it is
    retried) plus a stale reason file, which the next attempt for the same input takes over
    (so one input never has two entries); a crash after the input was linked into place but
    before it was removed from the input folder is finished by the next attempt. A vanished input
    is only recorded (``input_missing``). Errors that leave the input in place (disk full,
    permissions) are raised, after removing what was written, so the caller can retry later.
    With ``expect`` (the size and mtime it was judged with), an input that is no longer that
    file raises SourceChanged (bshmd.fs.move) and stays where it is. Its XMP sidecar, if it
    has one of its own, follows it.
    """
    root = folder.quarantine
    relpath = PurePosixPath(relpath)
    wanted = root.joinpath(*relpath.parts)
    source = Path(source)
    ensure_root(root)
    earlier = _interrupted_attempt(folder, wanted, relpath)
    if earlier is not None and _same_file(earlier, source):
        # The input was linked into place, then the process died before unlinking it.
        source.unlink()
        log.info("quarantined %s → %s (%s; finishing an interrupted move)", source, earlier, rejection.reason_code)
        return earlier
    with open_parent(wanted, root) as (dir_fd, name):
        if earlier is not None and not os.path.lexists(earlier):
            final_name = earlier.name  # stale sidecars of an attempt cut short: replace them
        else:
            final_name = free_name(dir_fd, name, sidecar_taken(wanted.parent))
    target = wanted.with_name(final_name)
    keep_matte = matte is not None and _usable_matte(matte)
    record = QuarantineRecord(
        reason=rejection.reason_code,
        message=rejection.message,
        measured=dict(rejection.measured or {}),
        version=__version__,
        instance=instance_id,
        input_root=str(folder.input),
        relpath=str(relpath),
        folder=str(root),
        history=[Step("quarantined", instance_id)],
        matte=final_name + MATTE_SUFFIX if keep_matte else None,
        preview=final_name + PREVIEW_SUFFIX if keep_matte else None,
    )
    written: list[Path] = []
    try:
        if keep_matte:
            assert matte is not None
            for suffix, image in ((MATTE_SUFFIX, matte), (PREVIEW_SUFFIX, _preview(matte))):
                atomic_write(target.with_name(final_name + suffix), _png(image), root=root)
                written.append(target.with_name(final_name + suffix))
        reason_file = target.with_name(final_name + REASON_SUFFIX)
        atomic_write(reason_file, record.encode(), root=root)
        written.append(reason_file)
        xmp = sidecar_of(source)
        try:
            sidecars_of_others = sidecar_taken(wanted.parent)
            moved = safe_move(source, target, root=root, expect=expect,
                              taken=lambda n: n != final_name and sidecars_of_others(n))
        except FileNotFoundError:
            if source.exists():
                raise
            record.input_missing = True
            record.message += " (the input vanished before it could be moved here)"
            atomic_write(reason_file, record.encode(), root=root)
            log.warning("%s vanished before it could be quarantined (%s); recorded in %s",
                        source, rejection.reason_code, reason_file)
            return target
    except BaseException:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    if moved != target:  # another mover took the name meanwhile: the sidecars follow the input
        _rename_sidecars(target, moved, root)
    move_with_sidecar(source, moved, xmp, root=root)
    log.info("quarantined %s → %s (%s)", source, moved, rejection.reason_code)
    return moved


def _interrupted_attempt(folder: FolderConfig, wanted: Path, relpath: PurePosixPath) -> Path | None:
    """Where an earlier attempt to quarantine this same input left its reason file, if one did.

    Attempts take ``wanted`` or its numbered variants, so those are looked at in order until
    a name that nobody uses.
    """
    for number in range(1000):
        name = wanted.name if number == 0 else numbered_name(wanted.name, number)
        candidate = wanted.with_name(name)
        reason_file = candidate.with_name(name + REASON_SUFFIX)
        if not os.path.lexists(reason_file):
            if os.path.lexists(candidate):
                continue
            return None
        try:
            record = QuarantineRecord.decode(reason_file.read_bytes())
        except (OSError, ValueError):
            continue
        if (record.relpath == str(relpath) and record.input_root == str(folder.input)
                and record.status == "quarantined" and not record.input_missing):
            return candidate
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b) and not os.path.islink(a) and not os.path.islink(b)
    except OSError:
        return False


def _rename_sidecars(old: Path, new: Path, root: Path) -> None:
    record_file = old.with_name(old.name + REASON_SUFFIX)
    record = QuarantineRecord.decode(record_file.read_bytes())
    if record.matte:
        os.rename(old.with_name(old.name + MATTE_SUFFIX), new.with_name(new.name + MATTE_SUFFIX))
        record.matte = new.name + MATTE_SUFFIX
    if record.preview:
        os.rename(old.with_name(old.name + PREVIEW_SUFFIX), new.with_name(new.name + PREVIEW_SUFFIX))
        record.preview = new.name + PREVIEW_SUFFIX
    atomic_write(new.with_name(new.name + REASON_SUFFIX), record.encode(), root=root)
    record_file.unlink()
