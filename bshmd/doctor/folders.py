"""The folders: each exists (or will be created), the service user may read or write it, how
the daemon will watch it, how long its mount caches attributes, and room left on its disk."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from bshmd.config import Config, FolderConfig
from bshmd.doctor.check import Check, Host
from bshmd.fs.mounts import Mount, existing_ancestor, is_network_fs, mode_for, mount_for, network_mount
from bshmd.fs.paths import mode_and_owner
from bshmd.fs.space import is_disk_full

# Below this share of the disk free, the doctor warns before the daemon's own threshold bites.
FREE_WARN_SHARE = 0.05


@dataclass(frozen=True)
class ServiceUser:
    """The account the daemon runs as; permissions are judged for it, not for whoever asks."""

    name: str
    uid: int
    gids: frozenset[int]
    is_current: bool

    @classmethod
    def named(cls, name: str | None) -> ServiceUser:
        if name is None:
            entry = pwd.getpwuid(os.geteuid())
            return cls(entry.pw_name, entry.pw_uid, frozenset(os.getgroups()) | {os.getegid()}, True)
        entry = pwd.getpwnam(name)
        gids = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if name in g.gr_mem}
        return cls(name, entry.pw_uid, frozenset(gids), entry.pw_uid == os.geteuid())

    def may(self, path: Path, want: str) -> bool:
        """Whether this user may ``want`` ("r", "w": each with "x") the folder ``path``."""
        if self.is_current:
            mode = (os.R_OK if "r" in want else 0) | (os.W_OK if "w" in want else 0) | os.X_OK
            return os.access(path, mode)
        if "w" in want and os.statvfs(path).f_flag & os.ST_RDONLY:
            return False
        st = path.stat()
        if self.uid == 0:
            return True
        shift = 6 if st.st_uid == self.uid else 3 if st.st_gid in self.gids else 0
        bits = {"r": stat.S_IROTH, "w": stat.S_IWOTH}
        needed = stat.S_IXOTH | sum(bits[c] for c in want)
        return (st.st_mode >> shift) & needed == needed


def folder_checks(config: Config, folder: FolderConfig, user: ServiceUser, host: Host) -> list[Check]:
    mounts = host.mounts()
    roles = [("input", folder.input, "r"), ("output", folder.output, "w"), ("quarantine", folder.quarantine, "w")]
    checks = []
    for role, path, want in roles:
        name = f"{role} {path}"
        if not path.exists() and config.create_folders:
            checks.append(Check("OK", name, "does not exist yet: `bshmd run` creates it (create_folders: true)"))
            continue
        if not path.is_dir():
            what = "is not a folder" if path.exists() else "does not exist"
            checks.append(Check("FAIL", name, what,
                                f"mkdir -p {path} && chown {user.name} {path}"
                                + (" (or mount the share there)" if role == "input" else "")))
            continue
        mount = mount_for(existing_ancestor(path), mounts)
        fs_type = mount.fs_type if mount else "unknown"
        if want == "w" and os.statvfs(path).f_flag & os.ST_RDONLY:
            checks.append(Check("FAIL", name, f"is on a read-only mount ({fs_type} at {mount.mount_point if mount else '?'})",
                                "remount it read-write, or point this folder at writable storage"))
            continue
        if not user.may(path, want):
            verb = "read" if want == "r" else "write"
            checks.append(Check("FAIL", name, f"{user.name} cannot {verb} it ({mode_and_owner(path)})",
                                f"chown {user.name} {path} or grant access (chmod u+{want}x, or a group/ACL)"))
            continue
        watch = _watch_mode(folder, path, mounts) if role == "input" else None
        detail = f"{'readable' if want == 'r' else 'writable'} by {user.name}, {fs_type}"
        if watch:
            detail += f", {watch}"
        checks.append(Check("OK", name, detail))
        if role == "input" and mount is not None and is_network_fs(mount.fs_type):
            checks.append(attribute_cache_check(config, folder, mount))
    return checks



def _watch_mode(folder: FolderConfig, path: Path, mounts: list[Mount]) -> str:
    """How the daemon will watch the input: the ingestor's own rule (bshmd.fs.mounts.mode_for)."""
    mode = mode_for(existing_ancestor(path), folder.watch, mounts)
    if folder.watch != "auto":
        return f"watched by {mode} (watch: {folder.watch})"
    if mode == "poll":
        return "polled (changes from other hosts raise no inotify events)"
    return "watched by inotify events"


def attribute_cache_check(config: Config, folder: FolderConfig, mount: Mount) -> Check:
    """A client may show a file's old size and mtime for its attribute-cache time, so the daemon
    settles files over that time plus settle_seconds (bshmd.ingest.attrcache): say how long,
    and warn where the cache makes every file wait longer than settling itself would."""
    from bshmd.fs.mounts import attribute_cache
    from bshmd.ingest.attrcache import SettleWindow

    if folder.attribute_cache_seconds is not None:
        cached, source = folder.attribute_cache_seconds, "folders[].attribute_cache_seconds"
    else:
        cached, source = attribute_cache(mount)
    window = SettleWindow(config.settle_seconds, cached, source)
    name = f"attribute cache {folder.input}"
    found = f"{mount.fs_type} caches attributes up to {cached:g} s"
    if cached > config.settle_seconds:
        return Check("WARN", name, f"{found}, longer than settle_seconds ({config.settle_seconds:g} s): "
                                   f"{window.describe()}",
                     "mount with actimeo=1 (or lower) so that files settle sooner, or state the real "
                     "time in folders[].attribute_cache_seconds")
    return Check("OK", name, f"{found}: {window.describe()}")


def space_checks(config: Config) -> list[Check]:
    checks, seen = [], set()
    for folder in config.folders:
        for path in (folder.output, folder.quarantine):
            if not path.is_dir() or path in seen:
                continue
            seen.add(path)
            usage = shutil.disk_usage(path)
            share = usage.free / usage.total if usage.total else 0.0
            name = f"free space {path}"
            detail = f"{usage.free / 2**30:.1f} GiB free ({share:.0%})"
            if is_disk_full(usage.free):  # the daemon's own threshold: /readyz says "disk full"
                checks.append(Check("FAIL", name, detail, "free space on that disk, or point the folder elsewhere"))
            elif share < FREE_WARN_SHARE:
                checks.append(Check("WARN", name, detail, "free space on that disk soon"))
            else:
                checks.append(Check("OK", name, detail))
    return checks


def local_state_checks(config: Config, mounts: list[Mount], environ: dict[str, str]) -> list[Check]:
    """State that only this host uses belongs on a local disk: on a share it is slow, and locks lie.
    The SQLite ledger is judged by the ledger's own rule, which the daemon refuses to start on."""
    from bshmd.ledger import ledger_url, state_dir
    from bshmd.ledger.local import state_dir_problem

    checks = [local_path_check("model.cache_dir", config.model.cache_dir, mounts)]
    folder = state_dir(config, environ)
    name = f"state_dir {folder}"
    problem = state_dir_problem(config, mounts, environ)
    if problem:
        checks.append(Check("FAIL", name, problem, "point state_dir at a local disk (e.g. /var/lib/bshmd), "
                                                   "or share one PostgreSQL ledger (ledger.url)"))
    elif ledger_url(config, environ):
        checks.append(Check("OK", name, "holds no ledger: the ledger is PostgreSQL (ledger.url)"))
    else:
        checks.append(local_path_check("state_dir", folder, mounts))
    return checks


def local_path_check(key: str, path: Path, mounts: list[Mount]) -> Check:
    mount = mount_for(existing_ancestor(path), mounts)
    name = f"{key} {path}"
    if network_mount(path, mounts) is not None:
        return Check("WARN", name, f"is on a network mount ({mount.fs_type} at {mount.mount_point})",
                     f"point {key} at a local disk (e.g. under /var/lib/bshmd)")
    return Check("OK", name, f"local ({mount.fs_type if mount else 'unknown'})")
