"""What ``bshmd run`` says before the daemon starts: where to drop photos and where results go.

With ``create_folders: true`` (the quick start) missing folders are made first, so that a new
user can start from an empty checkout; the daemon itself never creates a hot folder.
"""

from __future__ import annotations

from collections.abc import Callable

from bshmd.config import Config


def announce_folders(config: Config, say: Callable[[str], object]) -> None:
    """Create the folders when configured to, then name them, one line each."""
    for folder in config.folders:
        for path in (folder.input, folder.output, folder.quarantine):
            if config.create_folders and not path.is_dir():
                path.mkdir(parents=True, exist_ok=True)
                say(f"bshmd: created {path}")
        say(f"bshmd: drop photos into {folder.input}; cut-outs appear in {folder.output}, "
            f"refused photos in {folder.quarantine}")
