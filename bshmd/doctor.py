"""``bshmd doctor``: what is wrong with this set-up, checked before anyone reads a log.

Each check returns ``Check`` records (OK, WARN or FAIL, what was found, how to fix it). The
checks only look: they open nothing for writing, create nothing and bind a port only for the
instant it takes to see whether it is free. Everything a check reads from the host (the mount
table, the inotify limit, the service user) can be pointed elsewhere, so each broken set-up
can be tested for real.
"""

from __future__ import annotations

import ctypes
import grp
import hashlib
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bshmd.config import Config, FolderConfig, load_config
from bshmd.errors import BshmdError
from bshmd.fs.mounts import MOUNTINFO, Mount, existing_ancestor, is_network_fs, mount_for, parse_mountinfo
from bshmd.ledger import ledger_url, state_dir
from bshmd.ledger.statedir import state_dir_check

Status = Literal["OK", "WARN", "FAIL"]
INOTIFY_WATCHES = Path("/proc/sys/fs/inotify/max_user_watches")
# Free space below which results and quarantine entries soon cannot be written.
FREE_FAIL_BYTES = 1 << 30
FREE_WARN_SHARE = 0.05
# A wall clock before this is certainly wrong (no RTC, no NTP yet): leases and mtimes would lie.
EARLIEST_SANE_CLOCK = time.mktime((2025, 1, 1, 0, 0, 0, 0, 0, -1))


@dataclass(frozen=True)
class Check:
    status: Status
    name: str
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Host:
    """What the checks read from this machine; tests point it at prepared values."""

    mountinfo: Path = MOUNTINFO
    inotify_watches: Path = INOTIFY_WATCHES
    user: str | None = None  # the service user; None: whoever runs the doctor
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def mounts(self) -> list[Mount]:
        return parse_mountinfo(self._mountinfo_text())

    def _mountinfo_text(self) -> str:
        try:
            return self.mountinfo.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError:
            return ""


def run_checks(config_file: Path, host: Host | None = None, *, tensorflow: bool = True) -> list[Check]:
    """Every check for the configuration in ``config_file``; a bad file is the only one then."""
    host = host or Host()
    try:
        config = load_config(config_file)
    except BshmdError as exc:
        return [Check("FAIL", "config", str(exc), "correct the key named above, then run `bshmd check-config`")]
    checks = [Check("OK", "config", f"{config.source} is valid")]
    mounts = host.mounts()
    try:
        account = ServiceUser.named(host.user)
    except KeyError:
        checks.append(Check("FAIL", "service user", f"{host.user} does not exist on this host",
                            "create it (useradd --system bshmd) or name the account the service runs as"))
        account = ServiceUser.named(None)
    checks += model_checks(config)
    if tensorflow:
        checks += tensorflow_checks(config)
    for folder in config.folders:
        checks += folder_checks(config, folder, account, host)
    checks += space_checks(config)
    checks += local_state_checks(config, mounts)
    checks.append(Check(*state_dir_check(None if ledger_url(config, host.environ) else state_dir(config, host.environ))))
    checks += inotify_checks(config, mounts, host.inotify_watches)
    checks.append(systemd_check(config, host.environ))
    checks.append(http_check(config))
    checks.append(clock_check())
    return checks


def render(checks: Iterable[Check]) -> str:
    """One line per check: status, what was checked, what was found and, if any, the fix."""
    rows = list(checks)
    width = max((len(c.name) for c in rows), default=0)
    lines = []
    for c in rows:
        line = f"{c.status:<4}  {c.name:<{width}}  {c.detail}"
        if c.fix:
            line += f"  → fix: {c.fix}"
        lines.append(line)
    failed = sum(c.status == "FAIL" for c in rows)
    warned = sum(c.status == "WARN" for c in rows)
    lines.append(f"{len(rows)} checks: {failed} failed, {warned} warnings")
    return "\n".join(lines) + "\n"


# --- the model ----------------------------------------------------------------------------


def model_checks(config: Config) -> list[Check]:
    from bshmd.engine.loader import GRAPH_FILE
    from bshmd.engine.source import cached_model_dir

    model = config.model
    if model.path is not None:
        graph = model.path / GRAPH_FILE
        where = "model.path"
    else:
        try:
            graph = cached_model_dir(model) / GRAPH_FILE
        except BshmdError:
            return [Check("FAIL", "model", f"{model.id} is not in the cache {model.cache_dir}",
                          f"run `bshmd model fetch -c FILE` on a host with network access, or place "
                          f"{GRAPH_FILE} in a folder and set model.path to it")]
        where = "model.cache_dir"
    if not graph.is_file():
        return [Check("FAIL", "model", f"{graph} ({where}) is missing",
                      f"place BSHM's {GRAPH_FILE} there, or unset model.path and run `bshmd model fetch`")]
    try:
        digest = _sha256(graph)
    except OSError as exc:
        return [Check("FAIL", "model", f"{graph} cannot be read ({exc.strerror})",
                      "make it readable by the service user (chmod a+r)")]
    size = f"{graph.stat().st_size / 1e6:.1f} MB"
    if model.sha256 is None:
        return [Check("OK", "model", f"{graph} ({size}, sha256 {digest}; not pinned: set model.sha256 to pin it)")]
    if digest != model.sha256.lower():
        return [Check("FAIL", "model", f"{graph} has sha256 {digest}, model.sha256 expects {model.sha256.lower()}",
                      "replace the file (`bshmd model fetch`) or correct model.sha256")]
    return [Check("OK", "model", f"{graph} ({size}, sha256 matches model.sha256)")]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- TensorFlow and the GPU -----------------------------------------------------------------


def tensorflow_checks(config: Config) -> list[Check]:
    try:
        from bshmd.engine.tf import import_tf

        tf = import_tf()
    except Exception as exc:  # an import can fail in many ways; each is the same finding
        return [Check("FAIL", "tensorflow", f"cannot be imported ({type(exc).__name__}: {exc})",
                      "reinstall: .venv/bin/pip install 'tensorflow>=2.15,<3'")]
    checks = [Check("OK", "tensorflow", f"{tf.__version__} imports")]
    gpus = tf.config.list_physical_devices("GPU")
    wants_gpu = config.model.device.startswith("gpu")
    if gpus:
        names = []
        for index, gpu in enumerate(gpus):
            details = tf.config.experimental.get_device_details(gpu)
            names.append(f"GPU:{index} {details.get('device_name', '?')}{_gpu_memory(index)}")
        checks.append(Check("OK", "devices", "; ".join(names)))
        return checks
    missing = _missing_cuda_libraries(tf)
    if config.model.device == "cpu":
        checks.append(Check("OK", "devices", "CPU only, as model.device: cpu asks"))
    else:
        status: Status = "FAIL" if wants_gpu else "WARN"
        detail = "no GPU visible: inference runs on the CPU" if not wants_gpu else (
            f"model.device is {config.model.device} but TensorFlow sees no GPU")
        why = f" ({missing})" if missing else ""
        checks.append(Check(status, "devices", detail + why,
                            "install the NVIDIA driver and `.venv/bin/pip install 'tensorflow[and-cuda]>=2.15,<3'`, "
                            "or set model.device: cpu"))
    return checks


def _gpu_memory(index: int) -> str:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ""
    try:
        out = subprocess.run([smi, f"--id={index}", "--query-gpu=memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f", {out}" if out else ""


def _missing_cuda_libraries(tf: object) -> str:
    """Why TensorFlow sees no GPU, as far as the build and the dynamic loader tell."""
    build = getattr(getattr(tf, "sysconfig", None), "get_build_info", dict)()
    if not build.get("is_cuda_build"):
        return "this TensorFlow build has no CUDA support"
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no NVIDIA driver: libcuda.so.1 not found"
    return "the NVIDIA driver is there: CUDA runtime or cuDNN libraries missing?"


# --- folders ----------------------------------------------------------------------------------


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
            checks.append(Check("FAIL", name, f"{user.name} cannot {verb} it ({_owner(path)})",
                                f"chown {user.name} {path} or grant access (chmod u+{want}x, or a group/ACL)"))
            continue
        watch = _watch_mode(folder, mount) if role == "input" else None
        detail = f"{'readable' if want == 'r' else 'writable'} by {user.name}, {fs_type}"
        if watch:
            detail += f", {watch}"
        checks.append(Check("OK", name, detail))
        if role == "input" and mount is not None and is_network_fs(mount.fs_type):
            checks.append(attribute_cache_check(config, folder, mount))
    return checks


def _owner(path: Path) -> str:
    st = path.stat()
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    return f"mode {stat.S_IMODE(st.st_mode):04o}, owner {owner}"


def _watch_mode(folder: FolderConfig, mount: Mount | None) -> str:
    if folder.watch != "auto":
        return f"watched by {folder.watch} (watch: {folder.watch})"
    if mount is None or is_network_fs(mount.fs_type):
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
            if usage.free < FREE_FAIL_BYTES:
                checks.append(Check("FAIL", name, detail, "free space on that disk, or point the folder elsewhere"))
            elif share < FREE_WARN_SHARE:
                checks.append(Check("WARN", name, detail, "free space on that disk soon"))
            else:
                checks.append(Check("OK", name, detail))
    return checks


def local_state_checks(config: Config, mounts: list[Mount]) -> list[Check]:
    """State that only this host uses belongs on a local disk: on a share it is slow, and locks lie."""
    paths = [("model.cache_dir", config.model.cache_dir)]
    # A local state folder (a database, for instance) is checked the same way once configured.
    state_dir = getattr(config, "state_dir", None)
    if isinstance(state_dir, Path):
        paths.append(("state_dir", state_dir))
    return [local_path_check(key, path, mounts) for key, path in paths]


def local_path_check(key: str, path: Path, mounts: list[Mount]) -> Check:
    mount = mount_for(existing_ancestor(path), mounts)
    name = f"{key} {path}"
    if mount is not None and is_network_fs(mount.fs_type):
        return Check("WARN", name, f"is on a network mount ({mount.fs_type} at {mount.mount_point})",
                     f"point {key} at a local disk (e.g. under /var/lib/bshmd)")
    return Check("OK", name, f"local ({mount.fs_type if mount else 'unknown'})")


def inotify_checks(config: Config, mounts: list[Mount], limit_file: Path) -> list[Check]:
    evented = [f.input for f in config.folders
               if f.input.is_dir() and (f.watch == "events" or (f.watch == "auto" and not _polled(f.input, mounts)))]
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


def _polled(path: Path, mounts: list[Mount]) -> bool:
    mount = mount_for(existing_ancestor(path), mounts)
    return mount is None or is_network_fs(mount.fs_type)


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


def exit_status(checks: list[Check]) -> int:
    return 1 if any(c.status == "FAIL" for c in checks) else 0
