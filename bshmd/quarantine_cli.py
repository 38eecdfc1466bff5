"""``bshmd quarantine list | requeue | purge``: the quarantine tree from the command line.

The printing and the exit status are the command line's; what is listed and what is done
are bshmd.quarantine's (entries, actions), the same the review page uses.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Sequence
from pathlib import Path

from bshmd.config import Config
from bshmd.errors import BshmdError, InputRejected
from bshmd.quarantine import actions
from bshmd.quarantine.entries import QuarantineEntry, find_entry, list_entries

log = logging.getLogger("bshmd.quarantine")

# Measures worth a glance in the table, in this order, with how to print them.
_SUMMARY = (("foreground", "fg {:.1%}"), ("uncertain", "unc {:.1%}"), ("width", "{:.0f}"),
            ("height", "×{:.0f}"), ("bytes", "{:,} B"), ("pixels", "{:,} px"))


class QuarantineActionFailed(BshmdError):
    """Some of the named entries could not be requeued."""


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _summary(measured: dict[str, object]) -> str:
    parts = []
    for key, template in _SUMMARY:
        value = measured.get(key)
        if isinstance(value, (int, float)):
            parts.append(template.format(value))
    return " ".join(parts).replace(" ×", "×")


def list_command(config: Config) -> None:
    from rich.console import Console
    from rich.table import Table

    entries = list_entries(config.folders)
    console = Console()
    if not entries:
        console.print("no quarantined files")
        return
    table = Table(title=f"{len(entries)} quarantined file(s), newest first")
    table.add_column("file", overflow="fold")
    table.add_column("reason")
    table.add_column("when (UTC)")
    table.add_column("measured")
    table.add_column("message", overflow="fold")
    for entry in entries:
        missing = " (missing)" if entry.record.input_missing else ""
        table.add_row(str(entry.path) + missing, entry.reason, entry.time.strftime("%Y-%m-%d %H:%M:%S"),
                      _summary(entry.record.measured), entry.record.message)
    console.print(table)


def requeue_command(config: Config, paths: Sequence[Path], *, all_entries: bool, reason: str | None,
                    accept: bool) -> None:
    import click

    entries: list[QuarantineEntry] = []
    failures = 0
    if all_entries:
        entries = [e for e in list_entries(config.folders) if reason is None or e.reason == reason]
    for path in paths:
        try:
            entry = find_entry(config.folders, Path(path))
        except InputRejected as exc:
            click.echo(f"bshmd: {exc.message}", err=True)
            failures += 1
            continue
        if reason is not None and entry.reason != reason:
            click.echo(f"bshmd: {path}: reason is {entry.reason}, not {reason}; skipped", err=True)
            continue
        if all(e.reason_file != entry.reason_file for e in entries):
            entries.append(entry)
    by = _actor()
    for entry in entries:
        try:
            moved = actions.requeue(entry, accept=accept, by=by)
        except (InputRejected, OSError) as exc:
            click.echo(f"bshmd: cannot requeue {entry.path}: {exc}", err=True)
            failures += 1
            continue
        click.echo(f"requeued {entry.path} → {moved}" + (" (accept once)" if accept else ""))
    if not entries and not failures:
        click.echo("nothing to requeue")
    if failures:
        raise QuarantineActionFailed(f"{failures} file(s) could not be requeued")


def purge_command(config: Config, older_than_days: float) -> None:
    import click

    count = actions.purge(config.folders, older_than_days)
    click.echo(f"purged {count} quarantined file(s) older than {older_than_days:g} day(s)")
