"""``bshmd status``: ask the running daemon for ``/status`` and print a summary."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from bshmd.config import Config
from bshmd.errors import EXIT_FAILURE, EXIT_OK

TIMEOUT_SECONDS = 5.0


def status_url(config: Config) -> str:
    host = config.http.host
    # A daemon listening on every address is reachable on loopback.
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{config.http.port}/status"


def fetch_status(config: Config, timeout: float = TIMEOUT_SECONDS) -> dict[str, Any]:
    request = urllib.request.Request(status_url(config), headers={"Accept": "application/json"})
    if config.http.token:
        request.add_header("Authorization", f"Bearer {config.http.token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - our own URL
        return json.loads(response.read().decode("utf-8"))


def status_command(config: Config) -> int:
    from rich.console import Console

    err = Console(stderr=True)
    if not config.http.enabled:
        err.print("bshmd: error: http.enabled is false in this configuration: the daemon has no status endpoint",
                  soft_wrap=True)
        return EXIT_FAILURE
    url = status_url(config)
    try:
        status = fetch_status(config)
    except urllib.error.HTTPError as exc:
        err.print(f"bshmd: error: {url} answered {exc.code} {exc.reason}", markup=False, soft_wrap=True)
        return EXIT_FAILURE
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        err.print(f"bshmd: error: bshmd is not running (no answer from {url}: {reason})", markup=False, soft_wrap=True)
        return EXIT_FAILURE
    print_status(status)
    return EXIT_OK


def print_status(status: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    ready = "[green]ready[/]" if status.get("ready") else "[red]not ready[/]"
    console.print(f"[bold]bshmd {status.get('version', '?')}[/] instance [bold]{status.get('instance')}[/]: "
                  f"{status.get('phase')}, {ready}, up {_duration(status.get('uptime_seconds'))}")
    for reason in status.get("not_ready_because") or []:
        console.print(f"  not ready: {reason}", markup=False, soft_wrap=True)
    model = status.get("model") or {}
    if model.get("load_seconds") is not None:
        console.print(f"model loaded in {model['load_seconds']:.1f} s")
    counts = status.get("counts") or {}
    console.print("queued {queued}, in flight {in_flight}, processed {processed}, quarantined {quarantined}"
                  .format(**{k: counts.get(k, 0) for k in ("queued", "in_flight", "processed", "quarantined")}))
    if status.get("pending_settle") is not None:
        console.print(f"waiting to settle: {status['pending_settle']}")
    folders = status.get("folders") or {}
    if folders:
        table = Table("input folder", "available", "mode", "watching")
        table.columns[0].overflow = "fold"  # a long NAS path is wrapped, never cut
        for path, state in folders.items():
            table.add_row(path, _yes(state.get("available")), str(state.get("mode", "")), _yes(state.get("watching")))
        console.print(table)
    for condition in status.get("conditions") or []:
        console.print(f"[yellow]condition:[/] {condition}")


def _yes(value: Any) -> str:
    return "yes" if value else "[red]no[/]"


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "?"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}d {hours:02d}:{minutes:02d}:{secs:02d}" if days else f"{hours:02d}:{minutes:02d}:{secs:02d}"
