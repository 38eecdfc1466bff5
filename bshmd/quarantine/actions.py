"""What a person does with a quarantine entry: requeue, accept, reject, purge.

The command line, the review page and the job API all act through these functions; each
step is logged on ``bshmd.quarantine`` and recorded in the entry's ``status`` and ``history``.

- **requeue**: the input goes back to ``<input>/<relpath>`` (``name~N`` if that name is taken)
  and its mtime is set to now. The mtime gives it a new FileKey, so the done record the job
  ledger kept for the quarantined attempt does not stop it being processed again. With
  ``accept``, an accept-once marker (bshmd.quarantine.marker) lets it pass the quality gate on
  that next attempt (only for exactly that size and mtime).
- **accept**: the stored rejected matte becomes the result right away, written by the
  pipeline's own ``write_results`` (bshmd.outputs.files: the same bytes, stamped with the
  input's mtime, atomic), and the input is kept / moved / deleted as ``on_success`` says through
  the pipeline's own ``leave_input`` (bshmd.fs.leave: checked against its size and mtime, its
  XMP sidecar along). With ``keep`` it goes back into the input tree with a done record, so
  it is not processed again.
- **reject**: the input and its sidecars move to ``folder.rejected_dir/<rel folder>/``, status
  "rejected"; nothing retries it.

After requeue or accept the entry's JSON (final status, full history) moves to
``<quarantine>/.history/<rel folder>/<name>.<UTC time>.reason.json`` and the matte and preview
are deleted. Taking an action back is bshmd.quarantine.undo.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from bshmd.decode.sidecar import sidecar_of
from bshmd.errors import InputRejected
from bshmd.fs.atomic import atomic_write, ensure_root, free_name, open_parent, safe_move
from bshmd.fs.leave import leave_input
from bshmd.fs.sidecars import move_with_sidecar
from bshmd.ledger.keys import FileKey
from bshmd.quarantine.entries import QuarantineEntry, list_entries
from bshmd.quarantine.marker import write_accept_marker
from bshmd.quarantine.record import HISTORY_DIR, MATTE_SUFFIX, PREVIEW_SUFFIX, REASON_SUFFIX
from bshmd.quarantine.store import sidecar_taken

if TYPE_CHECKING:
    from bshmd.config import Config, FolderConfig

log = logging.getLogger("bshmd.quarantine")


@dataclass(frozen=True)
class Accepted:
    """What accepting an entry made: its results, and where the input went (None: deleted)."""

    outputs: list[Path]
    input: Path | None


def retire(entry: QuarantineEntry) -> Path:
    """Move the finished entry's JSON to the history folder, delete matte and preview."""
    root = entry.folder.quarantine
    rel_folder = entry.reason_file.parent.relative_to(root)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    history_file = root / HISTORY_DIR / rel_folder / f"{entry.path.name}.{stamp}{REASON_SUFFIX}"
    atomic_write(history_file, entry.record.encode(), root=root)
    entry.reason_file.unlink(missing_ok=True)
    for key in ("matte", "preview"):
        sidecar = entry.sidecar(key)
        if sidecar is not None:
            sidecar.unlink(missing_ok=True)
    return history_file


def _touch_new_key(path: Path, before_ns: int) -> None:
    """A new mtime, hence a new FileKey: the old key's done record must not match it."""
    now = time.time_ns()
    if now == before_ns:
        now += 1
    os.utime(path, ns=(now, now))


def requeue(entry: QuarantineEntry, *, accept: bool = False, by: str = "cli") -> Path:
    """Put the input back into its input folder to be processed again; returns its new path."""
    folder = entry.folder
    if not entry.path.exists():
        raise InputRejected("input_missing", f"{entry.path}: the quarantined input is gone; nothing to requeue")
    before = entry.path.stat()
    wanted = folder.input.joinpath(*entry.relpath.parts)
    # The XMP sidecar goes back first, so it is there when the photo is picked up again.
    move_with_sidecar(entry.path, wanted, sidecar_of(entry.path), root=folder.input)
    moved = safe_move(entry.path, wanted, root=folder.input)
    try:
        _touch_new_key(moved, before.st_mtime_ns)
        key = FileKey.of(folder.input, moved)
        if accept:
            write_accept_marker(folder, key, by)
    except BaseException:
        log.error("requeue of %s: the input is back at %s but could not be prepared", entry.path, moved)
        raise
    entry.record.add_step("requeued", by, to=str(moved), accept_once=accept)
    retire(entry)
    log.info("requeued %s → %s%s (by %s)", entry.path, moved, " with accept-once" if accept else "", by)
    return moved


def accept(entry: QuarantineEntry, config: Config, *, by: str = "cli") -> Accepted:
    """Write the stored rejected matte's results as final outputs, then apply on_success."""
    import numpy as np
    from PIL import Image

    from bshmd.decode.image import decode_photo
    from bshmd.decode.sidecar import with_sidecar_xmp
    from bshmd.outputs.colour import to_srgb
    from bshmd.outputs.files import write_results

    folder = next((f for f in config.folders if f.quarantine == entry.folder.quarantine), entry.folder)
    matte_file = entry.sidecar("matte")
    if matte_file is None or not matte_file.is_file():
        raise InputRejected("no_matte", f"{entry.path}: no stored matte (reason {entry.reason}); requeue it instead")
    try:
        info = entry.path.stat()
    except FileNotFoundError:
        raise InputRejected("input_missing", f"{entry.path}: the quarantined input is gone") from None
    outputs_cfg = config.outputs_for(folder)
    # Decoded exactly as the pipeline decodes it (its sidecar's XMP included), so the results
    # are the ones the pipeline would have written with this matte.
    photo = decode_photo(entry.path, max_pixels=config.limits.max_pixels,
                         max_file_bytes=config.limits.max_file_bytes, keep_16bit=outputs_cfg.bit_depth == "keep")
    photo = with_sidecar_xmp(photo, entry.path)
    with Image.open(matte_file) as image:
        alpha = np.asarray(image.convert("L"), dtype=np.uint8)
    if alpha.shape != photo.rgb.shape[:2]:
        raise InputRejected("matte_mismatch",
                            f"{matte_file}: matte {alpha.shape} does not fit the image {photo.rgb.shape[:2]}")
    paths = write_results(to_srgb(photo.rgb, photo.meta.icc), alpha, outputs_cfg, output_root=folder.output,
                          relpath=entry.relpath, mtime_ns=info.st_mtime_ns, photo=photo,
                          notes=list(photo.meta.dropped))
    assert paths is not None  # nothing asked it to stop
    action = config.on_success_for(folder)
    if action == "keep":
        moved: Path | None = _return_as_done(entry, folder, config)
    else:
        moved = leave_input(entry.path, action, relpath=entry.relpath, done_dir=folder.done_dir,
                            expect=(info.st_size, info.st_mtime_ns), sidecar=sidecar_of(entry.path))
    entry.record.add_step("accepted", by, outputs=[str(p) for p in paths.values()],
                          input=str(moved) if moved else None)
    retire(entry)
    log.info("accepted %s: wrote %s (by %s)", entry.path, ", ".join(str(p) for p in paths.values()), by)
    return Accepted(list(paths.values()), moved)


def _return_as_done(entry: QuarantineEntry, folder: FolderConfig, config: Config) -> Path:
    """on_success: keep — the input goes back to its place, marked done so it is not processed again.

    The done record is made (in the job ledger) for the key the file will have after the
    move, before the move, so a running daemon cannot pick the file up in between. Its XMP
    sidecar goes back with it.
    """
    from bshmd.ledger import open_ledger
    from bshmd.ledger.outcome import ACCEPTED, Outcome
    from bshmd.ledger.share import ensure_marker

    ledger = open_ledger(config, f"{config.effective_instance_id}-review")
    try:
        folder_id = ensure_marker(ledger, folder.input, folder.output).folder
        info = entry.path.stat()
        target = folder.input.joinpath(*entry.relpath.parts)
        with open_parent(target, folder.input) as (dir_fd, name):
            final_name = free_name(dir_fd, name)
        predicted = target.with_name(final_name)
        key = FileKey(str(PurePosixPath(*predicted.relative_to(folder.input).parts)), info.st_size, info.st_mtime_ns)
        ledger.record_done(folder_id, key, Outcome(ACCEPTED, "review"))
        xmp = sidecar_of(entry.path)
        moved = safe_move(entry.path, predicted, root=folder.input, expect=(info.st_size, info.st_mtime_ns))
        if moved != predicted:  # the name was taken meanwhile: mark the name it got instead
            ledger.record_done(folder_id, FileKey.of(folder.input, moved), Outcome(ACCEPTED, "review"))
        move_with_sidecar(entry.path, moved, xmp, root=folder.input)
    finally:
        ledger.close()
    return moved


def reject(entry: QuarantineEntry, *, by: str = "cli") -> Path:
    """Move the input and its sidecars to the rejected folder, for good; returns the input's new path."""
    folder = entry.folder
    root = folder.rejected_dir
    ensure_root(root)
    rel_folder = entry.reason_file.parent.relative_to(folder.quarantine)
    target = root.joinpath(*rel_folder.parts, entry.path.name)
    taken = sidecar_taken(target.parent)
    if entry.path.exists():
        xmp = sidecar_of(entry.path)
        moved = safe_move(entry.path, target, root=root, taken=taken)
        move_with_sidecar(entry.path, moved, xmp, root=root)
    else:
        with open_parent(target, root) as (dir_fd, name):
            moved = target.with_name(free_name(dir_fd, name, taken))
    record = entry.record
    if (matte := entry.sidecar("matte")) is not None and matte.exists():
        record.matte = safe_move(matte, moved.with_name(moved.name + MATTE_SUFFIX), root=root).name
    if (preview := entry.sidecar("preview")) is not None and preview.exists():
        record.preview = safe_move(preview, moved.with_name(moved.name + PREVIEW_SUFFIX), root=root).name
    record.add_step("rejected", by, to=str(moved))
    record.folder = str(root)
    atomic_write(moved.with_name(moved.name + REASON_SUFFIX), record.encode(), root=root)
    entry.reason_file.unlink(missing_ok=True)
    log.info("rejected %s → %s (by %s)", entry.path, moved, by)
    return moved


def purge(folders: Sequence[FolderConfig], older_than_days: float) -> int:
    """Delete quarantined entries (input, record, matte, preview) older than the cut-off.

    Also deletes history records older than the cut-off. Returns the number of entries purged.
    """
    cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=older_than_days)
    purged = 0
    for entry in list_entries(folders):
        if entry.time > cutoff:
            continue
        for path in (entry.path, entry.sidecar("matte"), entry.sidecar("preview"), entry.reason_file):
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        purged += 1
        log.info("purged %s (%s, quarantined %s)", entry.path, entry.reason, entry.record.time)
    for folder in folders:
        history = folder.quarantine / HISTORY_DIR
        for dirpath, _dirs, filenames in os.walk(history):
            for filename in filenames:
                path = Path(dirpath) / filename
                with contextlib.suppress(OSError):
                    if dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc) <= cutoff:
                        path.unlink()
    return purged
