"""Reason codes and measured values, in words a photographer understands."""

from __future__ import annotations

from typing import Any

# code → (short title, sentence). The sentence says what happened and what usually helps.
REASONS: dict[str, tuple[str, str]] = {
    "no_subject": ("No person found",
                   "The cut-out would be almost empty: no person was found, or the person is very small in the frame."),
    "subject_too_large": ("Subject fills the frame",
                          "Almost the whole picture was taken as the subject, so person and background "
                          "could not be told apart."),
    "uncertain_matte": ("Unclear outline",
                        "Much of the mask is neither clearly person nor clearly background: "
                        "the outline of the subject is unsure."),
    "too_small": ("Picture too small", "The picture has too few pixels to cut out a person."),
    "truncated": ("Incomplete file",
                  "The file ends too early; the copy was probably interrupted. Copy the photo again."),
    "corrupt": ("Damaged file", "The file is damaged and cannot be opened as a picture."),
    "empty": ("Empty file", "The file has no content (0 bytes). Copy the photo again."),
    "file_too_large": ("File too large", "The file is larger than the configured size limit."),
    "too_many_pixels": ("Too many pixels",
                        "The picture has more pixels than the configured limit and was not opened."),
    "not_an_image": ("Not a picture", "This file is not a picture bshmd can open."),
    "unsupported": ("Unsupported format", "The picture is in a format or colour mode bshmd cannot convert."),
    "unsupported_pixels": ("Unsupported format", "The picture's pixels are not plain 8-bit colour."),
    "unreadable": ("Could not be read", "The file could not be read (permissions, or it vanished while read)."),
    "decode_timeout": ("Took too long to open", "Opening the picture took longer than the configured time limit."),
    "write_timeout": ("Results not saved in time", "Saving the results took longer than the configured time limit."),
    "out_of_memory": ("Too big to process", "There was not enough memory to process this picture, "
                                            "even at a reduced size."),
    "internal_error": ("Unexpected error",
                       "Something went wrong inside bshmd while processing this picture; requeueing may work."),
    "input_missing": ("File missing", "The photo disappeared before it could be kept here."),
    "unsafe_output_path": ("Output folder is a link", "A folder on the way to the results is a symbolic link; "
                                                      "bshmd does not write through links. Fix the output "
                                                      "folder, then requeue."),
    "output_too_large": ("Result too large", "The composite stays larger than the configured file-size limit "
                                             "(outputs.jpeg_max_bytes) even at low JPEG quality."),
}


def reason_title(code: str) -> str:
    known = REASONS.get(code)
    return known[0] if known else code.replace("_", " ").capitalize() or "Unknown reason"


def reason_sentence(code: str, message: str) -> str:
    """The plain sentence for a code; an unknown code falls back to the recorded message."""
    known = REASONS.get(code)
    if known:
        return known[1]
    return message or f"Refused ({code})."


def _percent(value: float) -> str:
    return f"{value * 100:.1f} %" if value < 0.1 else f"{value * 100:.0f} %"


def _size(value: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def measured_summary(measured: Any) -> list[tuple[str, str]]:
    """A few (label, value) pairs worth a glance, with the limit that was crossed beside its value."""
    if not isinstance(measured, dict):
        return []

    def number(key: str) -> float | None:
        value = measured.get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    pairs: list[tuple[str, str]] = []
    foreground = number("foreground")
    if foreground is not None:
        text = _percent(foreground)
        if number("min_foreground") is not None:
            text += f" (needs ≥ {_percent(number('min_foreground') or 0)})"
        elif number("max_foreground") is not None:
            text += f" (limit {_percent(number('max_foreground') or 0)})"
        pairs.append(("subject", text))
    uncertain = number("uncertain")
    if uncertain is not None:
        text = _percent(uncertain)
        if number("max_uncertain") is not None:
            text += f" (limit {_percent(number('max_uncertain') or 0)})"
        pairs.append(("unsure", text))
    width, height = number("width"), number("height")
    if width is not None and height is not None:
        text = f"{width:.0f}×{height:.0f}"
        if number("min_input_side") is not None:
            text += f" (needs ≥ {number('min_input_side'):.0f})"
        pairs.append(("size", text))
    pixels = number("pixels")
    if pixels is not None:
        text = f"{pixels / 1e6:.1f} MP"
        if number("max_pixels") is not None:
            text += f" (limit {(number('max_pixels') or 0) / 1e6:.1f} MP)"
        pairs.append(("pixels", text))
    size = number("bytes")
    if size is not None:
        text = _size(size)
        if number("max_file_bytes") is not None:
            text += f" (limit {_size(number('max_file_bytes') or 0)})"
        pairs.append(("file", text))
    return pairs
