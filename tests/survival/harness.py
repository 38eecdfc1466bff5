"""Shared by tests/survival and scripts/kill_loop.py, scripts/soak.py: inputs, the real daemon
as a child process, and the audit of what it left behind.

Nothing here imports bshmd: the daemon is observed only from outside (its files, its log,
its HTTP endpoints, /proc), as an operator would.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.config import config_data
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
TMP_MARK = ".bshmd-tmp"
CUTOUT = ".cutout.png"
REASON = ".reason.json"
SIDECARS = (REASON, ".matte.png", ".preview.png")
BROKEN_KINDS = ("empty", "garbage", "truncated_png", "truncated_jpeg", "header_only", "text_as_jpg")


# --- inputs ----------------------------------------------------------------------------------


def image_bytes(rng: random.Random, side_range: tuple[int, int] = (64, 160), fmt: str = "PNG") -> bytes:
    """A saturated coloured shape on a flat grey backdrop: the stand-in mattes it cleanly."""
    from PIL import Image, ImageDraw

    width, height = rng.randint(*side_range), rng.randint(*side_range)
    image = Image.new("RGB", (width, height), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    colour = rng.choice([(230, 30, 30), (30, 200, 40), (30, 60, 230), (240, 200, 20), (200, 30, 200)])
    box = (width // 4, height // 5, width - width // 4, height - 1)
    if rng.random() < 0.5:
        draw.ellipse(box, fill=colour)
    else:
        draw.rectangle(box, fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def broken_bytes(rng: random.Random, kind: str) -> bytes:
    """Input that must end in quarantine, of the given kind (see BROKEN_KINDS)."""
    if kind == "empty":
        return b""
    if kind == "garbage":
        return rng.randbytes(rng.randint(50, 4000))
    if kind == "truncated_png":
        data = image_bytes(rng)
        return data[: len(data) // 3]
    if kind == "truncated_jpeg":
        data = image_bytes(rng, fmt="JPEG")
        return data[: len(data) // 3]
    if kind == "header_only":
        return b"\x89PNG\r\n\x1a\n" + b"\x00" * 8
    if kind == "text_as_jpg":
        return b"this is not a photograph\n" * 20
    raise ValueError(kind)


@dataclass
class Inputs:
    """What was dropped: relpath → 'ok' (expect a result) or 'broken' (expect quarantine)."""

    root: Path
    expected: dict[str, str] = field(default_factory=dict)
    subfolders: tuple[str, ...] = ("", "shoot-a", "shoot-b/day 2")

    def plan(self, count: int, seed: int, *, broken_every: int = 10, start: int = 0,
             side_range: tuple[int, int] = (64, 160)) -> list[tuple[str, bytes]]:
        """``count`` (relpath, bytes) pairs; every ``broken_every``-th one is broken (0: none)."""
        rng = random.Random(seed)
        items = []
        for number in range(start, start + count):
            sub = self.subfolders[number % len(self.subfolders)]
            broken = broken_every > 0 and number % broken_every == broken_every - 1
            if broken:
                kind = BROKEN_KINDS[(number // broken_every) % len(BROKEN_KINDS)]
                ext = "png" if "png" in kind or kind == "header_only" else "jpg"
                data = broken_bytes(rng, kind)
            else:
                ext = "jpg" if number % 3 == 0 else "png"
                data = image_bytes(rng, side_range, "JPEG" if ext == "jpg" else "PNG")
            relpath = f"{sub}/img-{number:05d}.{ext}".lstrip("/")
            items.append((relpath, data))
            self.expected[relpath] = "broken" if broken else "ok"
        return items

    def drop(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Write the files in place (the daemon's settle step has to wait for each)."""
        for relpath, data in items:
            path = self.root / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


def prepare_output_tree(output: Path, subfolders: Iterable[str]) -> None:
    """Create the mirrored folders up front, so an inotify watch sees every result arrive."""
    for sub in subfolders:
        (output / sub).mkdir(parents=True, exist_ok=True)


# --- configuration and the daemon process ----------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(path: Path, *, model_dir: Path, input: Path, output: Path, quarantine: Path,
                 **overrides: Any) -> Path:
    defaults: dict[str, Any] = {
        "model": {"path": str(model_dir), "intra_op_threads": 1, "inter_op_threads": 1},
        "instance_id": "survival-1",
        "settle_seconds": 0.3,
        "truncated_grace_seconds": 1.0,  # cut-off inputs wait a little, then go to quarantine
        "poll_seconds": 0.3,
        "rescan_seconds": 10,
        "gate": {"enabled": False},
        "shutdown_timeout": 20,
        "logging": {"level": "INFO", "journald": "off"},
        "http": {"enabled": True, "host": "127.0.0.1", "port": free_port()},
        "state_dir": str(path.parent / "state"),  # the SQLite job ledger, beside the config
    }
    data = config_data(path.parent, [{"input": str(input), "output": str(output), "quarantine": str(quarantine)}],
                       defaults=defaults, **overrides)
    path.write_text(yaml.safe_dump(data))
    return path


class Daemon:
    """``python -m bshmd run -c CONFIG``; every start appends to the same log file."""

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log = log
        self.extra_env = dict(env or {})
        self.port = yaml.safe_load(config.read_text())["http"]["port"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.killed_pids: list[int] = []
        self.starts = 0
        self._log_offset = 0  # where the current run's log begins

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM")}
        env.update({"PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
                    "PYTHONPATH": str(REPO)})
        env.update(self.extra_env)
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as handle:
            handle.write(f"--- start {self.starts + 1} ---\n".encode())
            handle.flush()
            self.proc = subprocess.Popen([sys.executable, "-m", "bshmd", "run", "-c", str(self.config)],
                                         cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT)
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def text(self, *, this_run: bool = False) -> str:
        data = self.log.read_bytes()
        return data[self._log_offset:].decode(errors="replace") if this_run else data.decode(errors="replace")

    def wait_ready(self, timeout: float = 90) -> None:
        wait_until(lambda: self._ready_or_dead(), timeout, what="the daemon to report ready")
        if not self.alive():
            raise AssertionError(f"the daemon exited with {self.proc.returncode}:\n{self.text(this_run=True)[-4000:]}")

    def _ready_or_dead(self) -> bool:
        return not self.alive() or "ready: " in self.text(this_run=True)

    def get(self, route: str, timeout: float = 5) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{route}", timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def status(self) -> dict[str, Any]:
        return json.loads(self.get("/status")[1])

    def metric(self, name: str) -> float | None:
        """One unlabelled sample from /metrics (None when absent)."""
        text = self.get("/metrics")[1].decode()
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.killed_pids.append(self.proc.pid)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(f"the daemon did not stop within {timeout} s of SIGTERM") from None
        return self.proc.returncode

    def ensure_dead(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class NotifyListener:
    """Stands where systemd's NOTIFY_SOCKET would be and keeps every datagram (READY=1, STATUS=…)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[str] = []

    def statuses(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(65536).decode(errors="replace"))
            except BlockingIOError:
                break
        return [line[len("STATUS="):] for message in self.messages for line in message.splitlines()
                if line.startswith("STATUS=")]

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def tmpfs(path: Path, size: str):  # noqa: ANN201 - a context manager yielding None
    """Mount a tmpfs of ``size`` on ``path``; raises OSError when mounting is not allowed here."""
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise OSError(f"cannot mount a tmpfs on {path}: {result.stderr.strip() or result.returncode}")
    try:
        yield
    finally:
        unmount(path)


def unmount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def noise_png(rng: random.Random, side: int) -> bytes:
    """A photo-sized PNG whose results do not compress: a coloured square on noise."""
    from PIL import Image

    image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    image.paste((230, 30, 30), (side // 4, side // 4, 3 * side // 4, side - 1))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


# --- /proc sampling --------------------------------------------------------------------------


def proc_sample(pid: int) -> dict[str, int]:
    """RSS (KiB), threads and open file descriptors of a live process."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "Threads"):
            fields[name] = int(value.split()[0])
    return {"rss_kb": fields.get("VmRSS", 0), "threads": fields.get("Threads", 0),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


# --- counting what the daemon did ------------------------------------------------------------

_LINE = re.compile(r" bshmd\.pipeline: (processed|recovered) (.+?) → ")


def log_outcomes(log_text: str, input_root: Path) -> dict[str, Counter[str]]:
    """relpath → {'processed': n, 'recovered': n} from the pipeline's per-file INFO lines."""
    prefix = str(input_root).rstrip("/") + "/"
    counts: dict[str, Counter[str]] = {}
    for match in _LINE.finditer(log_text):
        path = match.group(2)
        if path.startswith(prefix):
            counts.setdefault(path[len(prefix):], Counter())[match.group(1)] += 1
    return counts


def ledger_records(state_dir: Path, output: Path) -> dict[str, dict[str, Any]]:
    """relpath → the job ledger's row for every file of the folder whose output is ``output``,
    read straight from the SQLite file in ``state_dir`` (see bshmd.ledger.store), read-only."""
    try:
        folder = json.loads((output / ".bshmd" / "ledger.json").read_bytes())["folder"]
    except (OSError, ValueError, KeyError):
        return {}
    database = state_dir / "ledger.db"
    if not database.exists():
        return {}
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)) as conn:
        rows = conn.execute("SELECT relpath, state, outcome, reason, holder, pid, epoch FROM jobs WHERE folder = ?",
                            (folder,)).fetchall()
    names = ("state", "outcome", "reason", "holder", "pid", "epoch")
    return {os.fsdecode(row[0]): dict(zip(names, row[1:], strict=True)) for row in rows}


def ledger_record(state_dir: Path, output: Path, relpath: str) -> dict[str, Any] | None:
    return ledger_records(state_dir, output).get(relpath)


class CommitCounter:
    """Counts renames onto final result names under ``output`` with inotify (watchdog).

    Each time bshmd commits a result it renames a temporary file onto the final name: one
    IN_MOVED_TO event. Two for one input means its results were produced twice. The folders
    must exist before ``start`` (see prepare_output_tree); each gets its own non-recursive
    watch, so the daemon's busy state folder (.bshmd) is not watched at all.
    """

    def __init__(self, output: Path, subfolders: Iterable[str], suffix: str = CUTOUT) -> None:
        self.output = output
        self.subfolders = tuple(subfolders)
        self.suffix = suffix
        self.commits: Counter[str] = Counter()
        self._observer: Any = None

    def start(self) -> None:
        from watchdog.events import FileMovedEvent, FileSystemEventHandler
        from watchdog.observers.inotify import InotifyObserver

        counter = self

        class Handler(FileSystemEventHandler):
            def on_moved(self, event: Any) -> None:
                if isinstance(event, FileMovedEvent):
                    counter._note(os.fsdecode(event.dest_path))

        self._observer = InotifyObserver()
        handler = Handler()
        for sub in self.subfolders:
            self._observer.schedule(handler, str(self.output / sub), recursive=False)
        self._observer.start()

    def _note(self, dest: str) -> None:
        rel = os.path.relpath(dest, self.output)
        if rel.endswith(self.suffix) and TMP_MARK not in rel:
            self.commits[rel[: -len(self.suffix)]] += 1

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(10)
            self._observer = None


# --- the audit of the end state --------------------------------------------------------------


@dataclass
class Audit:
    results: dict[str, int]  # relpath → number of final cut-outs (0 or 1: names are unique)
    quarantined: dict[str, int]  # relpath → quarantine entries (reason files naming it)
    quarantine_inputs_missing: list[str]  # entries whose input file is not beside the reason
    temporaries: list[str]  # leftover temporary files (under temporary names)
    undecodable: list[str]  # final results that do not decode
    unexpected: list[str]  # final files in the output tree that belong to no input

    def problems(self, expected: dict[str, str]) -> list[str]:
        found = []
        for relpath, kind in sorted(expected.items()):
            r, q = self.results.get(relpath, 0), self.quarantined.get(relpath, 0)
            if r + q != 1:
                found.append(f"{relpath}: {r} result(s) and {q} quarantine entrie(s); expected exactly one")
            elif kind == "broken" and r:
                found.append(f"{relpath}: broken input produced a result")
        found += [f"quarantine entry without its input: {p}" for p in self.quarantine_inputs_missing]
        found += [f"does not decode: {p}" for p in self.undecodable]
        found += [f"unexpected file in the output tree: {p}" for p in self.unexpected]
        return found


def decodes(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            image.load()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not a complete image"
        return False


def audit(output: Path, quarantine: Path, *, suffix: str = CUTOUT) -> Audit:
    results: Counter[str] = Counter()
    temporaries, undecodable, unexpected = [], [], []
    for dirpath, dirnames, filenames in os.walk(output):
        if Path(dirpath) == output and ".bshmd" in dirnames:
            dirnames.remove(".bshmd")
        for name in filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(output))
            if TMP_MARK in name:
                temporaries.append(rel)
            elif rel.endswith(suffix):
                results[rel[: -len(suffix)]] += 1
                if not decodes(path):
                    undecodable.append(rel)
            else:
                unexpected.append(rel)
    quarantined: Counter[str] = Counter()
    missing = []
    for dirpath, dirnames, filenames in os.walk(quarantine):
        if Path(dirpath) == quarantine and ".history" in dirnames:
            dirnames.remove(".history")
        for name in filenames:
            path = Path(dirpath) / name
            if TMP_MARK in name:
                temporaries.append(str(path.relative_to(quarantine.parent)))
            if not name.endswith(REASON):
                continue
            record = json.loads(path.read_bytes())
            quarantined[record["relpath"]] += 1
            if not path.with_name(name[: -len(REASON)]).exists():
                missing.append(str(path.relative_to(quarantine)))
    return Audit(dict(results), dict(quarantined), missing, temporaries, undecodable, unexpected)


def settled(output: Path, quarantine: Path, expected: dict[str, str]) -> bool:
    """Every expected input has its result or its quarantine entry (cheap enough to poll)."""
    return all((output / (relpath + CUTOUT)).exists() or (quarantine / (relpath + REASON)).exists()
               for relpath in expected)


def finished(output: Path, quarantine: Path, expected: dict[str, str], state_dir: Path) -> bool:
    """Every input is finished for good: a done row for results (a result alone may be one a
    killed run wrote, still to be recovered), a quarantine entry for broken ones."""
    records = ledger_records(state_dir, output)
    for relpath, kind in expected.items():
        if kind == "ok":
            if (records.get(relpath) or {}).get("state") != "done":
                return False
        elif not (quarantine / (relpath + REASON)).exists():
            return False
    return True


@contextlib.contextmanager
def running(daemon: Daemon):  # noqa: ANN201 - a context manager
    """Start ``daemon`` and make sure it is gone afterwards, whatever happens."""
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.ensure_dead()


# --- the kill loop ---------------------------------------------------------------------------


@dataclass
class KillLoopReport:
    files: int
    kills: int
    starts: int
    results: int
    quarantined: int
    recovered: int  # inputs whose results a killed run had written; the next run only completed them
    log_lines_lost: int  # inputs whose only trace of success was a done record of a killed run
    temporaries: int  # leftover temporary files from writes cut short by SIGKILL
    exit_status: int
    seconds: float
    problems: list[str]

    def summary(self) -> str:
        return (f"{self.files} files, {self.kills} SIGKILLs, {self.starts} starts in {self.seconds:.0f} s: "
                f"{self.results} results, {self.quarantined} quarantined, {self.recovered} recovered after a kill, "
                f"{self.log_lines_lost} log lines lost to a kill, {self.temporaries} leftover temporaries, "
                f"exit status {self.exit_status}, {len(self.problems)} problem(s)")


def kill_loop(workdir: Path, model_dir: Path, *, files: int, kills: int, seed: int,
              say: Callable[[str], None] = lambda _: None, finish_timeout: float = 300) -> KillLoopReport:
    """Drop ``files`` inputs in ``kills + 1`` portions; after each portion SIGKILL the daemon at a
    seeded random moment (during the model load now and then, mostly while it works) and
    start it again with the same instance_id. Then let it finish, stop it with SIGTERM and
    audit every input: one result or one quarantine entry, produced once."""
    started = time.monotonic()
    rng = random.Random(seed)
    input, output, quarantine = (workdir / name for name in ("in", "out", "quarantine"))
    for folder in (input, output, quarantine):
        folder.mkdir(parents=True, exist_ok=True)
    inputs = Inputs(input)
    items = inputs.plan(files, seed, broken_every=10)
    prepare_output_tree(output, inputs.subfolders)
    config = write_config(workdir / "bshmd.yaml", model_dir=model_dir, input=input, output=output,
                          quarantine=quarantine, batch={"max_size": 4, "max_wait_ms": 100})
    portions = [items[i::kills + 1] for i in range(kills + 1)]
    counter = CommitCounter(output, inputs.subfolders)
    counter.start()
    daemon = Daemon(config, workdir / "daemon.log")
    exit_status = -1
    try:
        daemon.start()
        for number in range(kills):
            if rng.random() < 0.15:
                inputs.drop(portions[number])
                time.sleep(rng.uniform(0.2, 3.0))  # from the spawn: often inside the model load
            else:
                daemon.wait_ready()
                inputs.drop(portions[number])
                # Kill while results are being written: a seeded moment after the first one.
                with contextlib.suppress(AssertionError):
                    wait_until(lambda: " bshmd.pipeline: " in daemon.text(this_run=True) or not daemon.alive(),
                               10, interval=0.02)
                time.sleep(rng.uniform(0.0, 0.4))  # real time on purpose: a random moment to kill at
            if not daemon.alive():
                raise AssertionError(f"the daemon died by itself:\n{daemon.text(this_run=True)[-4000:]}")
            daemon.kill()
            say(f"kill {number + 1}/{kills}: pid {daemon.killed_pids[-1]}, "
                f"{sum(1 for _ in output.rglob('*' + CUTOUT))} results so far")
            daemon.start()
        inputs.drop(portions[kills])
        daemon.wait_ready()
        state_dir = workdir / "state"
        wait_until(lambda: finished(output, quarantine, inputs.expected, state_dir) or not daemon.alive(),
                   finish_timeout,
                   interval=0.5, what="every input to be finished")
        wait_until(lambda: not daemon.alive() or daemon.status()["counts"]["queued"] == 0, 60,
                   what="the daemon to become idle")
        exit_status = daemon.stop()
    finally:
        daemon.ensure_dead()
        counter.stop()
    return _judge_kill_loop(inputs, output, quarantine, daemon, counter, kills, exit_status,
                            time.monotonic() - started)


def _judge_kill_loop(inputs: Inputs, output: Path, quarantine: Path, daemon: Daemon, counter: CommitCounter,
                     kills: int, exit_status: int, seconds: float) -> KillLoopReport:
    found = audit(output, quarantine)
    problems = found.problems(inputs.expected)
    lines = log_outcomes(daemon.text(), inputs.root)
    records = ledger_records(Path(yaml.safe_load(daemon.config.read_text())["state_dir"]), output)
    recovered = lost_lines = 0
    for relpath, kind in sorted(inputs.expected.items()):
        if kind != "ok" or not found.results.get(relpath):
            continue
        commits = counter.commits.get(relpath, 0)
        if commits != 1:
            problems.append(f"{relpath}: its result was committed {commits} times")
        seen = lines.get(relpath, Counter())
        if seen["processed"] > 1:
            problems.append(f"{relpath}: logged as processed {seen['processed']} times")
        recovered += seen["recovered"] > 0
        record = records.get(relpath) or {}
        if record.get("state") != "done" or record.get("outcome") not in ("processed", "recovered"):
            problems.append(f"{relpath}: ledger row is {record.get('state')}/{record.get('outcome')}, "
                            "expected done/processed or done/recovered")
        if seen["processed"] + seen["recovered"] == 0:
            # SIGKILL between completing the claim and writing the log line: the done record
            # must then come from a run that was killed.
            if record.get("state") == "done" and record.get("pid") in daemon.killed_pids:
                lost_lines += 1
            else:
                problems.append(f"{relpath}: has a result but no log line, and its done record is not "
                                "from a killed run")
    if exit_status != 0:
        problems.append(f"the daemon exited with {exit_status} after SIGTERM")
    tracebacks = daemon.text().count("Traceback")
    if tracebacks:
        problems.append(f"{tracebacks} traceback(s) in the daemon's log")
    return KillLoopReport(
        files=len(inputs.expected), kills=kills, starts=daemon.starts,
        results=sum(1 for r, k in inputs.expected.items() if found.results.get(r)),
        quarantined=sum(1 for r in inputs.expected if found.quarantined.get(r)),
        recovered=recovered, log_lines_lost=lost_lines, temporaries=len(found.temporaries),
        exit_status=exit_status, seconds=seconds, problems=problems,
    )
