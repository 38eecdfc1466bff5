"""What becomes of an input once its results are written: ``on_success`` keep, move or delete.

One primitive for the pipeline's finish step and for accepting a quarantined photo. Every
move or delete first checks that the file is still the one whose results were written (its
settled size and mtime, bshmd.fs.move): a new version being written under the same name
raises SourceChanged and stays. The photo's own XMP sidecar (found by the caller, before the
move, with bshmd.decode.sidecar.sidecar_of) follows it to the done folder.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from bshmd.fs.atomic import safe_move
from bshmd.fs.move import Expected, remove_unchanged
from bshmd.fs.sidecars import move_with_sidecar

ON_SUCCESS = ("keep", "move", "delete")


def leave_input(source: Path, action: str, *, relpath: PurePosixPath, done_dir: Path,
                expect: Expected | None, sidecar: Path | None = None) -> Path | None:
    """Apply ``action`` to ``source``; returns where it went with "move", else None.

    "keep" leaves it where it is. "move" puts it at ``done_dir/relpath`` (a free numbered name
    if that is taken), its sidecar beside it. "delete" removes it. FileNotFoundError,
    SourceChanged and other OSErrors reach the caller, who decides what they mean.
    """
    if action == "move":
        # Created on demand, but only beside an existing parent: a missing share must not
        # turn into a folder on the local disk.
        done_dir.mkdir(exist_ok=True)
        moved = safe_move(source, done_dir.joinpath(*PurePosixPath(relpath).parts), root=done_dir, expect=expect)
        move_with_sidecar(source, moved, sidecar, root=done_dir)
        return moved
    if action == "delete":
        remove_unchanged(source, expect)
        return None
    if action != "keep":
        raise ValueError(f"unknown on_success action {action!r}")
    return None
