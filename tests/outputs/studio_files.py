"""Photos as a studio sends them (profile, EXIF, XMP, IPTC, dpi, GPS), written and read back by exiftool."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ICC_DIR = Path("/usr/share/color/icc")
ADOBE_RGB = ICC_DIR / "compatibleWithAdobeRGB1998.icc"
SRGB = ICC_DIR / "sRGB.icc"

# What the studio's photo says about itself; every result that can hold a field must keep it.
STUDIO_TAGS = ["-Artist=Ann Photographer", "-Copyright=(c) 2026 Studio North", "-XMP-dc:Creator=Ann Photographer",
               "-IPTC:Keywords=portrait", "-IPTC:Keywords=studio", "-XResolution=300", "-YResolution=300",
               "-ResolutionUnit=inches", "-GPSLatitude=48.137", "-GPSLatitudeRef=N", "-GPSLongitude=11.575",
               "-GPSLongitudeRef=E", "-ExifIFD:ColorSpace#=65535"]  # a camera set to Adobe RGB: "uncalibrated"


def need_tools() -> None:
    if shutil.which("exiftool") is None:
        pytest.skip("exiftool is missing: scripts/setup --dev installs libimage-exiftool-perl")
    for profile in (ADOBE_RGB, SRGB):
        if not profile.is_file():
            pytest.skip(f"{profile} is missing: scripts/setup --dev installs icc-profiles-free")


def exiftool_write(path: Path, *args: str) -> None:
    subprocess.run(["exiftool", "-q", "-q", "-overwrite_original", *args, str(path)], check=True)


def tag_studio_photo(path: Path, profile: Path = ADOBE_RGB) -> None:
    exiftool_write(path, f"-ICC_Profile<={profile}", *STUDIO_TAGS)


def exiftool_read(path: Path) -> dict[str, Any]:
    """exiftool's view of ``path``: group-qualified tag names (``IFD0:Artist``) → values."""
    out = subprocess.run(["exiftool", "-j", "-G1", "-a", "-n", "-struct", str(path)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)[0]


def exiftool_icc(path: Path) -> bytes:
    """The embedded ICC profile's bytes as exiftool extracts them (b"" when there is none)."""
    return subprocess.run(["exiftool", "-b", "-ICC_Profile", str(path)], check=True, capture_output=True).stdout


def field(tags: dict[str, Any], name: str) -> list[Any]:
    """Every value of tag ``name`` (any group), flattened: keywords come as lists."""
    values: list[Any] = []
    for key, value in tags.items():
        if key.split(":")[-1] == name:
            values.extend(value if isinstance(value, list) else [value])
    return values
