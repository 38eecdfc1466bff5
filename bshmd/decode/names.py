"""Which file names are pictures: the extension sets the decoders, the ingest filter and the
RAW+JPEG pairing share (all compared in lower case, without the dot)."""

from __future__ import annotations

# Camera RAW, developed by bshmd.decode.raw.
RAW_EXTENSIONS = frozenset({"dng", "cr2", "cr3", "nef", "arw", "raf", "orf", "rw2", "pef", "srw"})
# HEIC/HEIF, opened through pillow-heif (bshmd.decode.heif).
HEIF_EXTENSIONS = frozenset({"heic", "heif", "hif"})
# What a camera writes beside its RAW file for the same shot (the "jpeg" of raw_pairs).
DEVELOPED_EXTENSIONS = frozenset({"jpg", "jpeg", "heic", "heif"})
# Pictures bshmd may be asked to process, or that a person would take for one: a file with
# such an extension that is not processed gets a log line rather than silence.
IMAGE_LOOKING_EXTENSIONS = frozenset({
    "jpg", "jpeg", "jpe", "jfif", "png", "tif", "tiff", "webp", "bmp", "gif", "avif", "jxl", "jp2",
    "j2k", "jpx", "psd", "psb", "xcf", "svg", "ico", "tga", "exr", "hdr", "qoi", "ppm", "pgm", "pbm",
    "pnm", "crw", "nrw", "srf", "sr2", "rwl", "3fr", "iiq", "mos", "mrw", "erf", "kdc", "dcr", "x3f", "raw",
}) | RAW_EXTENSIONS | HEIF_EXTENSIONS


def extension_of(name: str) -> str:
    """'IMG_1.CR2' → 'cr2'; '' when there is none."""
    dot = name.rfind(".")
    return name[dot + 1:].lower() if dot > 0 else ""
