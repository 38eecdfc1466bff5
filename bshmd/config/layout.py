"""What only makes sense across keys: where the folders lie relative to each other.

An output, quarantine, done or rejected folder inside its input would make the daemon eat its
own results; two inputs inside each other would process a file twice. Paths are compared as
written (``bshmd.fs.paths.is_within`` with ``follow_links=False``): loading the configuration,
at start and on SIGHUP, must not touch the folders, since a stat on a share whose server is
down can hang, and the daemon is built to start and reload while a share is away.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from bshmd.fs.paths import is_within

if TYPE_CHECKING:
    from bshmd.config.sections import FolderConfig


def check_folder_layout(folders: tuple[FolderConfig, ...]) -> Iterable[str]:
    """One line per problem, naming the key (``folders.N.output``) and what is expected."""
    outputs: dict[Path, int] = {}
    for index, folder in enumerate(folders):
        key = f"folders.{index}"
        for name in ("output", "quarantine", "done", "rejected"):
            path = getattr(folder, name)
            if path is not None and is_within(path, folder.input, follow_links=False):
                yield (
                    f"{key}.{name} = '{path}': is inside its input folder '{folder.input}'; "
                    "expected a folder outside it (the daemon would process its own results)"
                )
        if folder.quarantine == folder.output:
            yield f"{key}.quarantine = '{folder.quarantine}': is the output folder; expected a separate folder"
        roots = (folder.output, folder.quarantine)
        if any(folder.input != root and is_within(folder.input, root, follow_links=False) for root in roots):
            yield f"{key}.input = '{folder.input}': lies inside its output or quarantine folder; expected it outside"
        if folder.output in outputs:
            yield (
                f"{key}.output = '{folder.output}': already the output of folders.{outputs[folder.output]}; "
                "expected each folders entry to have its own output"
            )
        outputs.setdefault(folder.output, index)
        for other_index, other in enumerate(folders[:index]):
            if (is_within(folder.input, other.input, follow_links=False)
                    or is_within(other.input, folder.input, follow_links=False)):
                yield (
                    f"{key}.input = '{folder.input}': overlaps folders.{other_index}.input '{other.input}'; "
                    "expected input folders that do not contain each other"
                )
