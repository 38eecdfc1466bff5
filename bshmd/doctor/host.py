"""This machine: inotify watches for the folders watched by events, systemd-python under
systemd, the HTTP port free (or served by a running bshmd), and a clock NTP keeps right."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from bshmd.config import INSTANCE_ENV, Config, instance_id
from bshmd.doctor.check import Check
from bshmd.errors import ConfigError
from bshmd.fs.mounts import Mount, existing_ancestor, mode_for

# A wall clock before this is certainly wrong (no RTC, no NTP yet): leases and mtimes would lie.
EARLIEST_SANE_CLOCK = time.mktime((2025, 1, 1, 0, 0, 0, 0, 0, -1))


def inotify_checks(config: Config, mounts: list[Mount], limit_file: Path) -> list[Check]:
    # Which folders take watches: the ingestor's own rule (bshmd.fs.mounts.mode_for).
    evented = [f.input for f in config.folders
               if f.input.is_dir() and mode_for(existing_ancestor(f.input), f.watch, mounts) == "events"]
    if not evented:
        return [Check("OK", "inotify watches", "no folder is watched by events (all polled)")]
    try:
        limit = int(limit_file.read_text().strip())
    except (OSError, ValueError) as exc:
        return [Check("WARN", "inotify watches", f"cannot read {limit_file} ({exc})", "")]
    needed = sum(_count_folders(root, limit + 1) for root in evented)
    detail = f"{needed} folders to watch, fs.inotify.max_user_watches is {limit}"
    fix = (f"sysctl -w fs.inotify.max_user_watches={max(524288, needed * 4)} and keep it in "
           "/etc/sysctl.d/90-bshmd.conf")
    if needed > limit:
        return [Check("FAIL", "inotify watches", detail, fix)]
    if needed * 2 > limit:
        return [Check("WARN", "inotify watches", detail + " (other programs need watches too)", fix)]
    return [Check("OK", "inotify watches", detail)]


def _count_folders(root: Path, stop: int) -> int:
    count = 0
    for _, dirs, _ in os.walk(root):
        count += 1
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if count >= stop:
            break
    return count


def systemd_check(config: Config, environ: dict[str, str]) -> Check:
    under = "NOTIFY_SOCKET" in environ or "INVOCATION_ID" in environ or config.logging.journald == "on"
    try:
        import systemd.daemon  # noqa: F401
        present = True
    except ImportError:
        present = False
    if present:
        return Check("OK", "systemd-python", "installed (notify, watchdog, journal)")
    if under:
        return Check("FAIL", "systemd-python", "missing, but bshmd runs under systemd (or logging.journald: on)",
                     "apt install libsystemd-dev pkg-config && .venv/bin/pip install systemd-python")
    return Check("OK", "systemd-python", "not installed; not needed outside systemd")


def http_check(config: Config) -> Check:
    http = config.http
    if not http.enabled:
        return Check("OK", "http", "disabled (http.enabled: false)")
    where = f"{http.host}:{http.port}"
    if http.port == 0:
        return Check("OK", "http", f"{http.host}: any free port (http.port: 0)")
    family = socket.AF_INET6 if ":" in http.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the daemon's server binds
        try:
            probe.bind((http.host, http.port))
        except OSError as exc:
            if _is_bshmd(http.host, http.port):
                return Check("OK", "http", f"{where} is served by a running bshmd")
            return Check("FAIL", "http", f"{where} cannot be bound ({exc.strerror})",
                         "stop what uses the port (ss -ltnp), or set http.port to a free one")
    return Check("OK", "http", f"{where} is free")


def _is_bshmd(host: str, port: int) -> bool:
    address = f"[{host}]" if ":" in host else host
    try:
        with urllib.request.urlopen(f"http://{address}:{port}/healthz", timeout=2) as reply:
            body = json.loads(reply.read(4096))
    except urllib.error.HTTPError as exc:  # 503: a bshmd whose main loop is stuck still answers
        try:
            body = json.loads(exc.read(4096))
        except ValueError:
            return False
    except (OSError, ValueError):
        return False
    return isinstance(body, dict) and "alive" in body


def clock_check(now: float | None = None) -> Check:
    now = time.time() if now is None else now
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now))
    if now < EARLIEST_SANE_CLOCK:
        return Check("FAIL", "clock", f"reads {stamp}, which is certainly wrong",
                     "set the clock and run NTP (timedatectl set-ntp true)")
    synced = _ntp_synchronised()
    if synced is False:
        return Check("WARN", "clock", f"{stamp}, not synchronised by NTP: hosts sharing a folder disagree on leases",
                     "timedatectl set-ntp true (or run chrony)")
    if synced is None:
        return Check("OK", "clock", f"{stamp} (NTP state unknown here; hosts sharing a folder need NTP)")
    return Check("OK", "clock", f"{stamp}, synchronised by NTP")


def _ntp_synchronised() -> bool | None:
    tool = shutil.which("timedatectl")
    if tool is None:
        return None
    try:
        out = subprocess.run([tool, "show", "-p", "NTPSynchronized", "--value"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    value = out.stdout.strip()
    return {"yes": True, "no": False}.get(value) if out.returncode == 0 else None


def instance_check(config: Config, environ: dict[str, str]) -> Check:
    """The id the daemon and every command will use (bshmd.config.instance), and where it comes from."""
    try:
        found = instance_id(config.instance_id, environ)
    except ConfigError as exc:
        return Check("FAIL", "instance id", str(exc), f"correct ${INSTANCE_ENV} or set instance_id in the file")
    if config.instance_id:
        return Check("OK", "instance id", f"{found} (instance_id)")
    if environ.get(INSTANCE_ENV):
        return Check("OK", "instance id", f"{found} (${INSTANCE_ENV})")
    return Check("OK", "instance id", f"{found} (host-pid: set instance_id or ${INSTANCE_ENV} where "
                                      "several instances share folders and should keep their claims over a restart)")
