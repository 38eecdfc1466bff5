"""The result files of one input: their names, and writing them stamped and all-or-nothing.

Names keep the input's own name, extension included, and add a suffix per format, so two
inputs ``a.jpg`` and ``a.png`` in one folder never collide::

    <output>/<rel folder>/a.jpg.cutout.png     RGBA PNG: the photo with the matte as alpha
    <output>/<rel folder>/a.jpg.alpha.png      8-bit grey PNG: the matte alone
    <output>/<rel folder>/a.jpg.composite.jpg  the person on outputs.background(_image)
                                               (".composite.png" with composite_format: png)
    <output>/<rel folder>/a.jpg.cutout.webp    RGBA WebP (lossless at webp_quality: 100)
    <output>/<rel folder>/a.jpg.cutout.tif     RGBA TIFF, unassociated alpha (bshmd.outputs.tiff)
    <output>/<rel folder>/a.jpg.psd            the photo as a layer, the matte its mask (bshmd.outputs.psd)
    <output>/<rel folder>/a.jpg.cutout.avif    RGBA AVIF at avif_quality

``write_results`` is the one way a result comes to exist: the pipeline's finish step and
accepting a quarantined photo both call it, so both write the same bytes, stamped with the
input's mtime, atomically, with the output folder's file mode and group.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from bshmd.errors import ClaimLost, InputRejected
from bshmd.fs.atomic import UnsafePathError, atomic_write

if TYPE_CHECKING:
    import numpy as np

    from bshmd.config import OutputsConfig
    from bshmd.decode.record import Decoded

log = logging.getLogger("bshmd.outputs")

# format → suffix appended to the input's file name ("composite" depends on composite_format).
OUTPUT_SUFFIXES: dict[str, str] = {
    "cutout": ".cutout.png",
    "alpha": ".alpha.png",
    "composite": ".composite.jpg",
    "webp": ".cutout.webp",
    "tiff": ".cutout.tif",
    "psd": ".psd",
    "avif": ".cutout.avif",
}
_COMPOSITE_SUFFIX = {"jpeg": ".composite.jpg", "png": ".composite.png"}


def output_suffix(fmt: str, outputs: OutputsConfig) -> str:
    if fmt == "composite":
        return _COMPOSITE_SUFFIX[outputs.composite_format]
    return OUTPUT_SUFFIXES[fmt]


def output_paths(output_root: Path, relpath: PurePosixPath, outputs: OutputsConfig) -> dict[str, Path]:
    """format → final path of that result for the input at ``relpath`` (relative to its input root)."""
    relpath = PurePosixPath(relpath)
    if relpath.is_absolute() or ".." in relpath.parts or not relpath.name:
        raise ValueError(f"{relpath}: expected a relative path inside the input folder")
    folder = Path(output_root).joinpath(*relpath.parent.parts)
    return {fmt: folder / (relpath.name + output_suffix(fmt, outputs)) for fmt in outputs.formats}


def write_results(rgb: np.ndarray, alpha: np.ndarray, outputs: OutputsConfig, *, output_root: Path,
                  relpath: PurePosixPath, mtime_ns: int, photo: Decoded | None = None,
                  notes: list[str] | None = None, proceed: Callable[[], bool] | None = None,
                  before_rename: Callable[[], None] | None = None,
                  on_write_error: Callable[[OSError], None] | None = None) -> dict[str, Path] | None:
    """Render every format of ``outputs`` and write them; returns format → written path.

    ``rgb`` is the photo in sRGB as the network saw it and ``photo`` the decoded input
    (bshmd.outputs.render.render_outputs says what each gives the results). ``mtime_ns``,
    the input's mtime as it was settled, stamps every result (``outputs_written_for``).
    ``proceed``, asked between rendering and writing, may raise (a lost claim) or return
    False (the caller gave up meanwhile): then nothing is written and None is returned.
    ``before_rename`` runs before each result's rename (the claim's fence). A symlinked
    folder on the way raises InputRejected("unsafe_output_path"): nothing is written
    through it. An OSError while writing goes to ``on_write_error`` first, which may raise
    what it means to its caller (the output folder is unwell, say); otherwise it is raised.
    """
    from bshmd.outputs.render import render_outputs

    paths = output_paths(output_root, relpath, outputs)
    blobs = render_outputs(rgb, alpha, outputs, photo=photo, notes=notes)
    try:
        if proceed is not None and not proceed():
            return None
        write_outputs(paths, blobs, output_root=output_root, file_mode=outputs.file_mode, group=outputs.group,
                      mtime_ns=mtime_ns, before_rename=before_rename)
    except UnsafePathError as exc:
        # A symlinked folder in the output tree: not a bug of ours, so no traceback.
        raise InputRejected("unsafe_output_path", str(exc), {"output": str(paths[next(iter(paths))])}) from exc
    except OSError as exc:
        if on_write_error is not None:
            on_write_error(exc)
        raise
    return paths


def write_outputs(paths: dict[str, Path], blobs: dict[str, bytes], *, output_root: Path, file_mode: int,
                  group: str | None, mtime_ns: int | None = None,
                  before_rename: Callable[[], None] | None = None) -> None:
    """Write every result atomically; if one fails, remove those this call already wrote.

    Either all formats of an input appear under their final names or none does (a crash
    between two renames can leave the first ones; the next run rewrites them). ``mtime_ns``
    (the input's mtime) stamps each result, see ``outputs_written_for``. ``before_rename``
    (the claim's fence) runs before each rename; when it raises ClaimLost the results already
    renamed stay: another holder now owns those names and may have written them itself.
    """
    if set(paths) != set(blobs):
        raise ValueError(f"paths {sorted(paths)} and blobs {sorted(blobs)} name different formats")
    written: list[Path] = []
    try:
        for fmt, path in paths.items():
            atomic_write(path, blobs[fmt], root=output_root, mode=file_mode, group=group, mtime_ns=mtime_ns,
                         before_rename=before_rename)
            written.append(path)
    except ClaimLost:
        raise
    except BaseException as exc:
        for path in written:
            try:
                path.unlink()
            except OSError as cleanup_error:
                log.error("could not remove %s after a failed write: %s", path, cleanup_error)
        log.error("writing results failed (%s); removed %d already written", exc, len(written))
        raise


def outputs_written_for(paths: dict[str, Path], mtime_ns: int) -> bool:
    """True when every result exists as a regular file stamped with the input's ``mtime_ns``.

    Results carry their input's mtime (set before their atomic rename), so after a crash
    between writing the results and completing the claim, the next holder can tell "these
    are the results of exactly this version of the input" and complete the claim instead of
    doing the work again. A result from an older version of the input has another mtime.
    """
    for path in paths.values():
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_mtime_ns != mtime_ns:
            return False
    return True
