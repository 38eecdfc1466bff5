"""The version is written once and every place that shows it agrees: the package metadata, the
command line, the changelog's latest release and the image tags."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bshmd import __version__

REPO = Path(__file__).resolve().parent.parent


def test_the_version_is_the_release_this_tree_is() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    assert __version__ == "0.3.0"


def test_the_package_metadata_reads_the_one_version() -> None:
    # Read as text: tomllib only comes with Python 3.11, and bshmd runs on 3.10 too.
    text = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^dynamic = \["version"\]$', text, flags=re.MULTILINE)
    assert not re.search(r'^version = "', text, flags=re.MULTILINE)  # no second, literal version
    assert 'version = { attr = "bshmd.__version__" }' in text


def test_bshmd_version_prints_it() -> None:
    result = subprocess.run([sys.executable, "-m", "bshmd", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"bshmd, version {__version__}\n"


def test_the_changelog_names_it_as_the_latest_release() -> None:
    text = (REPO / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", text, flags=re.MULTILINE)
    assert headings[0] == ("Unreleased", "")
    assert headings[1][0] == __version__ and headings[1][1]
    releases = [tuple(int(n) for n in version.split(".")) for version, _ in headings[1:]]
    assert releases == sorted(releases, reverse=True) and len(set(releases)) == len(releases)
    for heading in re.findall(r"^### (.+)$", text, flags=re.MULTILINE):
        assert heading in ("Added", "Changed", "Deprecated", "Removed", "Fixed", "Security")


def test_the_image_tags_name_it() -> None:
    assert f"docker build -t bshmd:{__version__} ." in (REPO / "Dockerfile").read_text()
    assert f"image: bshmd:{__version__}\n" in (REPO / "docker-compose.yml").read_text()
