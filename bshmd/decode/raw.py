"""Camera RAW files, developed through LibRaw (``rawpy``, whose wheels ship it).

Developed as the camera would show them: the camera's white balance, sRGB primaries and
gamma, 8 bits per channel, the camera's orientation applied, at the full size LibRaw
develops the sensor to (no half-size shortcut). The pixel limit is checked from the file's
header, before anything is demosaiced.

The files are recognised by their extension: many RAW formats start like a TIFF (DNG, CR2,
NEF, ARW, PEF, SRW), others like nothing an image library knows (CR3, RAF, ORF, RW2).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from bshmd.decode.names import RAW_EXTENSIONS, extension_of
from bshmd.decode.record import Decoded
from bshmd.errors import InputRejected


def is_raw(path: Path | str) -> bool:
    return extension_of(os.path.basename(os.fspath(path))) in RAW_EXTENSIONS


def decode_raw(data: bytes, name: str, *, max_pixels: int, measured: dict[str, Any] | None = None) -> Decoded:
    """Develop the RAW file ``data``; refusals are InputRejected like every other decoder's."""
    import numpy as np
    import rawpy

    measured = measured if measured is not None else {"bytes": len(data)}
    measured["format"] = "RAW"
    try:
        raw = rawpy.imread(io.BytesIO(data))
    except rawpy.LibRawFileUnsupportedError as exc:
        raise InputRejected("unsupported", f"{name}: LibRaw cannot read it (not a RAW file, or a camera "
                                           "it does not know)", measured) from exc
    except rawpy.LibRawIOError as exc:
        raise InputRejected("truncated", f"{name}: the RAW data ends too early", measured) from exc
    except rawpy.LibRawError as exc:
        raise InputRejected("corrupt", f"{name}: cannot read the RAW header: {_text(exc)}", measured) from exc
    with raw:
        sizes = raw.sizes
        width, height = (sizes.height, sizes.width) if sizes.flip in (5, 6) else (sizes.width, sizes.height)
        measured.update(width=width, height=height, mode="RAW")
        if sizes.flip:
            measured["orientation_flip"] = sizes.flip
        pixels = width * height
        if pixels < 1:
            raise InputRejected("corrupt", f"{name}: the RAW header gives an empty size", measured)
        if pixels > max_pixels:
            raise InputRejected(
                "too_many_pixels",
                f"{name}: {width}×{height} = {pixels} pixels is more than limits.max_pixels ({max_pixels}); "
                "refused before developing",
                {**measured, "pixels": pixels, "max_pixels": max_pixels},
            )
        try:
            rgb = raw.postprocess(use_camera_wb=True, output_color=rawpy.ColorSpace.sRGB, output_bps=8)
        except rawpy.LibRawIOError as exc:
            raise InputRejected("truncated", f"{name}: the RAW data ends too early", measured) from exc
        except (rawpy.LibRawUnsufficientMemoryError, MemoryError) as exc:
            raise InputRejected("out_of_memory", f"{name}: not enough memory to develop the RAW file",
                                measured) from exc
        except rawpy.LibRawError as exc:
            raise InputRejected("corrupt", f"{name}: cannot develop the RAW data: {_text(exc)}", measured) from exc
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InputRejected("unsupported", f"{name}: developed to an unexpected shape {rgb.shape}", measured)
    return Decoded(np.ascontiguousarray(rgb))  # developed to sRGB: no profile to carry


def _text(exc: BaseException) -> str:
    message = exc.args[0] if exc.args else exc
    return message.decode(errors="replace") if isinstance(message, bytes) else str(message)
