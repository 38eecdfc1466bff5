"""The quarantine tree: inputs that could not become results, each with the reason, for a person.

On disk, for an input ``<input>/<rel folder>/<name>``::

    <quarantine>/<rel folder>/<name>               the input, moved (never overwritten: name~N.ext)
    <quarantine>/<rel folder>/<name>.reason.json   why, and what happened to it since
    <quarantine>/<rel folder>/<name>.matte.png     the rejected matte, full resolution (gate failures)
    <quarantine>/<rel folder>/<name>.preview.png   the same matte, long side ≤ 256 (for the review page)

``<name>.reason.json``::

    {"reason": "no_subject", "message": "...", "measured": {...}, "time": "2025-01-31T12:00:00Z",
     "version": "0.1.0", "instance": "host-1234", "input_root": "/srv/hot/in",
     "relpath": "studio/a.jpg", "folder": "/srv/hot/quarantine",
     "status": "quarantined" | "requeued" | "accepted" | "rejected",
     "history": [{"time": ..., "action": "quarantined", "by": "host-1234"}, ...],
     "matte": "a.jpg.matte.png" | null, "preview": "a.jpg.preview.png" | null,
     "input_missing": false}

What a person can do with an entry (each step logged on ``bshmd.quarantine`` and recorded in
the JSON's ``status`` and ``history``):

- **requeue**: the input goes back to ``<input>/<relpath>`` (``name~N`` if that name is taken)
  and its mtime is set to now. The mtime gives it a new FileKey, so the done record the claim
  store kept for the quarantined attempt does not stop it being processed again. With
  ``accept``, an accept-once marker in ``<output>/.bshmd/accept/`` lets it pass the quality
  gate on that next attempt (only for exactly that size and mtime).
- **accept**: the stored rejected matte becomes the result right away (written like any
  result), and the input is kept / moved / deleted as ``on_success`` says. With ``keep`` it
  goes back into the input tree with a done record, so it is not processed again.
- **reject**: the input and its sidecars move to ``folder.rejected_dir/<rel folder>/``, status
  "rejected"; nothing retries it.

After requeue or accept the entry's JSON (final status, full history) moves to
``<quarantine>/.history/<rel folder>/<name>.<UTC time>.reason.json`` and the matte and preview
are deleted. Folders starting with "." are never listed as entries.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from bshmd import __version__
from bshmd.decode.sidecar import sidecar_of
from bshmd.errors import InputRejected
from bshmd.fs.atomic import atomic_write, ensure_root, free_name, numbered_name, open_parent, safe_move
from bshmd.ledger.keys import FileKey
from bshmd.pipeline.sidecars import move_with_sidecar

if TYPE_CHECKING:
    import numpy as np

    from bshmd.config import Config, FolderConfig

log = logging.getLogger("bshmd.quarantine")

REASON_SUFFIX = ".reason.json"
MATTE_SUFFIX = ".matte.png"
PREVIEW_SUFFIX = ".preview.png"
SIDECAR_SUFFIXES = (REASON_SUFFIX, MATTE_SUFFIX, PREVIEW_SUFFIX)
HISTORY_DIR = ".history"
PREVIEW_SIDE = 256
STATUSES = ("quarantined", "requeued", "accepted", "rejected")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)
    except (TypeError, ValueError):
        return dt.datetime.fromtimestamp(0, dt.timezone.utc)


def _jsonable(value: Any) -> Any:
    """measured values as plain JSON: numpy scalars to numbers, non-finite floats to null."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float) or hasattr(value, "item"):
        try:
            number = value.item() if hasattr(value, "item") else value
        except (ValueError, TypeError):
            return str(value)
        if isinstance(number, float) and not math.isfinite(number):
            return None
        return number
    return str(value)


def _encode(record: dict[str, Any]) -> bytes:
    # ensure_ascii: names that are not valid UTF-8 (lone surrogates) stay representable.
    return (json.dumps(_jsonable(record), indent=2, ensure_ascii=True) + "\n").encode("ascii")


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


def _sidecar_taken(folder: Path):  # noqa: ANN202 - a predicate for free_name
    return lambda name: any((folder / (name + suffix)).exists() for suffix in SIDECAR_SUFFIXES)


# --- quarantining ----------------------------------------------------------------------------


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
            final_name = free_name(dir_fd, name, _sidecar_taken(wanted.parent))
    target = wanted.with_name(final_name)
    keep_matte = matte is not None and _usable_matte(matte)
    record: dict[str, Any] = {
        "reason": rejection.reason_code,
        "message": rejection.message,
        "measured": rejection.measured,
        "time": _now(),
        "version": __version__,
        "instance": instance_id,
        "input_root": str(folder.input),
        "relpath": str(relpath),
        "folder": str(root),
        "status": "quarantined",
        "history": [{"time": _now(), "action": "quarantined", "by": instance_id}],
        "matte": final_name + MATTE_SUFFIX if keep_matte else None,
        "preview": final_name + PREVIEW_SUFFIX if keep_matte else None,
        "input_missing": False,
    }
    written: list[Path] = []
    try:
        if keep_matte:
            assert matte is not None
            for suffix, image in ((MATTE_SUFFIX, matte), (PREVIEW_SUFFIX, _preview(matte))):
                atomic_write(target.with_name(final_name + suffix), _png(image), root=root)
                written.append(target.with_name(final_name + suffix))
        reason_file = target.with_name(final_name + REASON_SUFFIX)
        atomic_write(reason_file, _encode(record), root=root)
        written.append(reason_file)
        xmp = sidecar_of(source)
        try:
            sidecars_of_others = _sidecar_taken(wanted.parent)
            moved = safe_move(source, target, root=root, expect=expect,
                              taken=lambda n: n != final_name and sidecars_of_others(n))
        except FileNotFoundError:
            if source.exists():
                raise
            record["input_missing"] = True
            record["message"] += " (the input vanished before it could be moved here)"
            atomic_write(reason_file, _encode(record), root=root)
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
            record = json.loads(reason_file.read_bytes())
        except (OSError, ValueError):
            continue
        if (isinstance(record, dict) and record.get("relpath") == str(relpath)
                and record.get("input_root") == str(folder.input) and record.get("status") == "quarantined"
                and not record.get("input_missing")):
            return candidate
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b) and not os.path.islink(a) and not os.path.islink(b)
    except OSError:
        return False


def _rename_sidecars(old: Path, new: Path, root: Path) -> None:
    record_file = old.with_name(old.name + REASON_SUFFIX)
    record = json.loads(record_file.read_text("utf-8"))
    for suffix, key in ((MATTE_SUFFIX, "matte"), (PREVIEW_SUFFIX, "preview")):
        if record.get(key):
            os.rename(old.with_name(old.name + suffix), new.with_name(new.name + suffix))
            record[key] = new.name + suffix
    atomic_write(new.with_name(new.name + REASON_SUFFIX), _encode(record), root=root)
    record_file.unlink()


# --- entries ---------------------------------------------------------------------------------


@dataclass
class QuarantineEntry:
    path: Path  # the quarantined input (may be missing: input_missing)
    reason_file: Path
    record: dict[str, Any]
    folder: FolderConfig

    @property
    def reason(self) -> str:
        return str(self.record.get("reason", "?"))

    @property
    def time(self) -> dt.datetime:
        return _parse_time(self.record.get("time", ""))

    @property
    def relpath(self) -> PurePosixPath:
        """Where the input was, relative to its input folder."""
        relpath = self.record.get("relpath")
        if isinstance(relpath, str) and relpath and not PurePosixPath(relpath).is_absolute() \
                and ".." not in PurePosixPath(relpath).parts:
            return PurePosixPath(relpath)
        return PurePosixPath(*self.path.relative_to(self.folder.quarantine).parts)

    @property
    def status(self) -> str:
        return str(self.record.get("status", "quarantined"))

    def sidecar(self, key: str) -> Path | None:
        name = self.record.get(key)
        if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
            return None
        return self.reason_file.with_name(name)


def _walk_reason_files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for filename in filenames:
            if filename.endswith(REASON_SUFFIX) and not filename.startswith("."):
                yield Path(dirpath) / filename


def _load_entry(reason_file: Path, folder: FolderConfig) -> QuarantineEntry | None:
    try:
        record = json.loads(reason_file.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("unreadable quarantine record %s: %s", reason_file, exc)
        return None
    if not isinstance(record, dict):
        return None
    path = reason_file.with_name(reason_file.name[: -len(REASON_SUFFIX)])
    return QuarantineEntry(path, reason_file, record, folder)


def list_entries(folders: Sequence[FolderConfig]) -> list[QuarantineEntry]:
    """Entries still waiting for a person (status "quarantined"), newest first."""
    entries = []
    for folder in folders:
        if not folder.quarantine.is_dir():
            continue
        for reason_file in _walk_reason_files(folder.quarantine):
            entry = _load_entry(reason_file, folder)
            if entry is not None and entry.status == "quarantined":
                entries.append(entry)
    entries.sort(key=lambda e: (e.time, str(e.path)), reverse=True)
    return entries


def find_entry(folders: Sequence[FolderConfig], path: Path) -> QuarantineEntry:
    """The entry for a path a user typed: the quarantined file or its .reason.json."""
    candidate = Path(os.path.abspath(path))
    if candidate.name.endswith(REASON_SUFFIX):
        candidate = candidate.with_name(candidate.name[: -len(REASON_SUFFIX)])
    for folder in folders:
        root = Path(os.path.abspath(folder.quarantine))
        if root not in candidate.parents:
            continue
        rel = candidate.relative_to(root)
        if any(part.startswith(".") for part in rel.parts[:-1]):
            break
        reason_file = candidate.with_name(candidate.name + REASON_SUFFIX)
        entry = _load_entry(reason_file, folder) if reason_file.is_file() else None
        if entry is None:
            raise InputRejected("not_quarantined", f"{path}: no quarantine record ({reason_file.name}) beside it")
        if entry.status != "quarantined":
            raise InputRejected("not_quarantined", f"{path}: already {entry.status}")
        return entry
    roots = ", ".join(str(f.quarantine) for f in folders)
    raise InputRejected("not_quarantined", f"{path}: is not inside a quarantine folder ({roots})")


# --- actions ---------------------------------------------------------------------------------


def _record_action(entry: QuarantineEntry, status: str, by: str, **extra: Any) -> None:
    entry.record["status"] = status
    entry.record.setdefault("history", []).append({"time": _now(), "action": status, "by": by, **extra})


def _retire(entry: QuarantineEntry) -> Path:
    """Move the finished entry's JSON to the history folder, delete matte and preview."""
    root = entry.folder.quarantine
    rel_folder = entry.reason_file.parent.relative_to(root)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    history_file = root / HISTORY_DIR / rel_folder / f"{entry.path.name}.{stamp}{REASON_SUFFIX}"
    atomic_write(history_file, _encode(entry.record), root=root)
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
            _write_accept_marker(folder, key, by)
    except BaseException:
        log.error("requeue of %s: the input is back at %s but could not be prepared", entry.path, moved)
        raise
    _record_action(entry, "requeued", by, to=str(moved), accept_once=accept)
    _retire(entry)
    log.info("requeued %s → %s%s (by %s)", entry.path, moved, " with accept-once" if accept else "", by)
    return moved


def accept_marker_path(folder: FolderConfig, key: FileKey) -> Path:
    digest = hashlib.sha256(os.fsencode(key.relpath)).hexdigest()
    return folder.state_dir / "accept" / f"{digest}.json"


def _write_accept_marker(folder: FolderConfig, key: FileKey, by: str) -> Path:
    marker = accept_marker_path(folder, key)
    body = {"relpath": key.relpath, "size": key.size, "mtime_ns": key.mtime_ns, "by": by, "time": _now()}
    atomic_write(marker, _encode(body), root=folder.output)
    return marker


def consume_accept(folder: FolderConfig, key: FileKey) -> bool:
    """True once for a key requeued with accept; the marker is removed as it is used.

    A marker for another size or mtime (the file was replaced since) is removed and ignored.
    """
    marker = accept_marker_path(folder, key)
    try:
        body = json.loads(marker.read_bytes())
    except FileNotFoundError:
        return False
    except (OSError, ValueError) as exc:
        log.warning("unreadable accept marker %s: %s", marker, exc)
        return False
    matches = (
        isinstance(body, dict)
        and body.get("relpath") == key.relpath
        and body.get("size") == key.size
        and body.get("mtime_ns") == key.mtime_ns
    )
    try:
        marker.unlink()
    except FileNotFoundError:
        return False  # another instance consumed it first
    if not matches:
        log.info("ignored a stale accept marker for %s (the file changed since)", key.relpath)
    return matches


def accept(entry: QuarantineEntry, config: Config, *, by: str = "cli") -> list[Path]:
    """Write the stored rejected matte's results as final outputs; returns the result paths."""
    import numpy as np
    from PIL import Image

    from bshmd.decode.image import decode_photo
    from bshmd.outputs.colour import to_srgb
    from bshmd.outputs.render import output_paths, render_outputs, write_outputs

    folder = next((f for f in config.folders if f.quarantine == entry.folder.quarantine), entry.folder)
    matte_file = entry.sidecar("matte")
    if matte_file is None or not matte_file.is_file():
        raise InputRejected("no_matte", f"{entry.path}: no stored matte (reason {entry.reason}); requeue it instead")
    if not entry.path.exists():
        raise InputRejected("input_missing", f"{entry.path}: the quarantined input is gone")
    outputs_cfg = config.outputs_for(folder)
    photo = decode_photo(entry.path, max_pixels=config.limits.max_pixels,
                         max_file_bytes=config.limits.max_file_bytes, keep_16bit=outputs_cfg.bit_depth == "keep")
    rgb = photo.rgb
    with Image.open(matte_file) as image:
        alpha = np.asarray(image.convert("L"), dtype=np.uint8)
    if alpha.shape != rgb.shape[:2]:
        raise InputRejected("matte_mismatch", f"{matte_file}: matte {alpha.shape} does not fit the image {rgb.shape[:2]}")
    paths = output_paths(folder.output, entry.relpath, outputs_cfg)
    blobs = render_outputs(to_srgb(rgb, photo.meta.icc), alpha, outputs_cfg, photo=photo)
    write_outputs(paths, blobs, output_root=folder.output,
                  file_mode=outputs_cfg.file_mode, group=outputs_cfg.group)
    action = config.on_success_for(folder)
    moved: Path | None
    if action == "move":
        moved = safe_move(entry.path, folder.done_dir.joinpath(*entry.relpath.parts), root=folder.done_dir)
    elif action == "delete":
        entry.path.unlink()
        moved = None
    else:
        moved = _return_as_done(entry, folder, config)
    _record_action(entry, "accepted", by, outputs=[str(p) for p in paths.values()],
                   input=str(moved) if moved else None)
    _retire(entry)
    log.info("accepted %s: wrote %s (by %s)", entry.path, ", ".join(str(p) for p in paths.values()), by)
    return list(paths.values())


def _return_as_done(entry: QuarantineEntry, folder: FolderConfig, config: Config) -> Path:
    """on_success: keep — the input goes back to its place, marked done so it is not processed again.

    The done record is made (in the job ledger) for the key the file will have after the
    move, before the move, so a running daemon cannot pick the file up in between.
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
        moved = safe_move(entry.path, predicted, root=folder.input)
        if moved != predicted:  # the name was taken meanwhile: mark the name it got instead
            ledger.record_done(folder_id, FileKey.of(folder.input, moved), Outcome(ACCEPTED, "review"))
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
    taken = _sidecar_taken(target.parent)
    if entry.path.exists():
        xmp = sidecar_of(entry.path)
        moved = safe_move(entry.path, target, root=root, taken=taken)
        move_with_sidecar(entry.path, moved, xmp, root=root)
    else:
        with open_parent(target, root) as (dir_fd, name):
            moved = target.with_name(free_name(dir_fd, name, taken))
    for key, suffix in (("matte", MATTE_SUFFIX), ("preview", PREVIEW_SUFFIX)):
        sidecar = entry.sidecar(key)
        if sidecar is not None and sidecar.exists():
            placed = safe_move(sidecar, moved.with_name(moved.name + suffix), root=root)
            entry.record[key] = placed.name
    _record_action(entry, "rejected", by, to=str(moved))
    entry.record["folder"] = str(root)
    atomic_write(moved.with_name(moved.name + REASON_SUFFIX), _encode(entry.record), root=root)
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
        log.info("purged %s (%s, quarantined %s)", entry.path, entry.reason, entry.record.get("time"))
    for folder in folders:
        history = folder.quarantine / HISTORY_DIR
        for dirpath, _dirs, filenames in os.walk(history):
            for filename in filenames:
                path = Path(dirpath) / filename
                with contextlib.suppress(OSError):
                    if dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc) <= cutoff:
                        path.unlink()
    return purged
