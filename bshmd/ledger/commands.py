"""``bshmd ledger status | list | forget | reprocess``: the operator's view of the job ledger.

Paths are input files or folders as this host sees them (absolute, or relative to the
working directory); a folder stands for every file the ledger has below it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from bshmd.errors import ConfigError

STATES = ("ready", "claimed", "done", "released")


def _config_option(fn: Any) -> Any:
    return click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
                        default=None, help="Configuration file (default: $BSHMD_CONFIG).")(fn)


def _open(config_file: Path | None) -> tuple[Any, Any]:
    from bshmd.config import config_path_from, load_config
    from bshmd.ledger import open_ledger

    config = load_config(config_path_from(config_file))
    return config, open_ledger(config, "bshmd-cli")


def _folder_ids(config: Any, ledger: Any) -> dict[str, Any]:
    """folder id → its FolderConfig, for the folders of this configuration with a share marker."""
    from bshmd.ledger.share import read_marker

    found = {}
    for folder in config.folders:
        marker = read_marker(folder.output)
        if marker is not None and marker.ledger == ledger.ledger_id:
            found[marker.folder] = folder
    return found


def _targets(config: Any, ledger: Any, paths: tuple[Path, ...]) -> Iterator[tuple[str, Any, str | None, bool]]:
    """(folder id, folder, relpath or None for the whole folder, is a folder) for each PATH."""
    ids = {folder.input: fid for fid, folder in _folder_ids(config, ledger).items()}
    for raw in paths:
        path = Path(os.path.abspath(raw))
        folder = next((f for f in config.folders if path == f.input or f.input in path.parents), None)
        if folder is None:
            raise ConfigError(f"{raw}: not inside any input folder of the configuration")
        if folder.input not in ids:
            raise ConfigError(f"{folder.output}: no share marker of this ledger yet (the daemon has not run there)")
        if path == folder.input:
            yield ids[folder.input], folder, None, True
        else:
            relpath = str(path.relative_to(folder.input))
            yield ids[folder.input], folder, relpath, path.is_dir() or raw.as_posix().endswith("/")


def _when(value: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value)) if value else "-"


@click.group("ledger")
def ledger() -> None:
    """The job ledger: which files are done, claimed or waiting, on every instance."""


@ledger.command("status")
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(config_file: Path | None, as_json: bool) -> None:
    """Where the ledger is and how many files each folder has in each state."""
    from bshmd.ledger import describe_ledger
    from bshmd.ledger.schema import schema_version

    config, led = _open(config_file)
    try:
        ids = _folder_ids(config, led)
        counts = led.counts()
        version = led.backend.transaction(schema_version)
        folders = []
        for fid, folder in ids.items():
            scanner = led.lease_holder(f"scan:{fid}")
            folders.append({"input": str(folder.input), "output": str(folder.output), "id": fid,
                            **counts.get(fid, {"ready": 0, "claimed": 0, "done": 0, "released": 0, "expired": 0}),
                            "scanner": {"instance": scanner[0], "host": scanner[1]} if scanner else None})
        doc = {"backend": led.dialect, "database": describe_ledger(config), "id": led.ledger_id,
               "schema": version, "folders": folders}
    finally:
        led.close()
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(f"ledger: {doc['backend']} {doc['database']} (id {doc['id']}, schema {doc['schema']})")
    for f in folders:
        scanner = f["scanner"]
        click.echo(f"{f['input']}: {f['done']} done, {f.get('ready', 0)} ready, {f['claimed']} claimed "
                   f"({f['expired']} expired), {f['released']} released; scanner: "
                   f"{scanner['instance'] + ' on ' + scanner['host'] if scanner else 'none'}")
    missing = [str(f.input) for f in config.folders if f.input not in {g.input for g in ids.values()}]
    for path in missing:
        click.echo(f"{path}: not in this ledger yet")


@ledger.command("list")
@_config_option
@click.option("--state", type=click.Choice(STATES), help="Only files in this state.")
@click.option("--limit", type=int, default=None, help="At most this many rows.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
def list_(config_file: Path | None, state: str | None, limit: int | None, as_json: bool) -> None:
    """One line per file: state, outcome or holder, and its path."""
    config, led = _open(config_file)
    try:
        ids = _folder_ids(config, led)
        for fid, folder in ids.items():
            for row in led.jobs(fid, state, limit):
                shown = os.fsencode(folder.input / row.relpath).decode("utf-8", "backslashreplace")
                if as_json:
                    click.echo(json.dumps({"path": shown, "state": row.state, "outcome": row.outcome,
                                           "reason": row.reason, "holder": row.holder, "host": row.host,
                                           "epoch": row.epoch, "attempts": row.attempts,
                                           "updated_at": row.updated_at, "completed_at": row.completed_at}))
                    continue
                detail = (f"{row.outcome}{':' + row.reason if row.reason else ''}" if row.state == "done"
                          else f"{row.holder} on {row.host}" if row.state == "claimed"
                          else row.reason or "")
                click.echo(f"{row.state:<9} {detail:<28} {_when(row.updated_at)}  {shown}")
    finally:
        led.close()


def _rows_under(led: Any, fid: str, relpath: str) -> list[str]:
    prefix = relpath.rstrip("/") + "/"
    return [row.relpath for row in led.jobs(fid) if row.relpath.startswith(prefix)]


def _apply(config_file: Path | None, paths: tuple[Path, ...], op: str) -> int:
    """Run the ledger's ``op`` (forget or reprocess) on the rows of PATHS: a whole folder, the
    files under a sub-folder, or one file. Returns how many rows it changed."""
    config, led = _open(config_file)
    try:
        total = 0
        for fid, _folder, relpath, is_dir in _targets(config, led, paths):
            change = getattr(led, op)
            if relpath is None:
                total += change(fid)
            else:
                total += change(fid, _rows_under(led, fid, relpath) if is_dir else [relpath])
        return total
    finally:
        led.close()


@ledger.command("forget")
@_config_option
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def forget(config_file: Path | None, paths: tuple[Path, ...]) -> None:
    """Delete the rows of PATHS: the files count as never seen and are processed again when
    an instance next looks at them (restart it, or wait for its next full rescan)."""
    click.echo(f"forgot {_apply(config_file, paths, 'forget')} file(s)")


@ledger.command("reprocess")
@_config_option
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def reprocess(config_file: Path | None, paths: tuple[Path, ...]) -> None:
    """Mark the done files of PATHS to be processed again; running instances pick them up at
    their next full rescan (``rescan_seconds``)."""
    click.echo(f"marked {_apply(config_file, paths, 'reprocess')} file(s) to be processed again")
