"""The real daemon in a subprocess: sd_notify protocol, watchdog, signals, reload, refusal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from daemonproc import DaemonProcess, folder, write_config
from PIL import Image

from bshmd.testing.standin import write_standin_graph
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

WATCHDOG_USEC = 2_000_000
HALF = WATCHDOG_USEC / 2 / 1e6
# The stand-in with extra convolutions costs like a real network: about 2.5 s for a
# 1000 px image and 6 s for 1600 px on one CPU thread, nothing for the 64 px warm-up.
SLOW_CONVS = 100
# Slower still: a 1600 px image takes minutes (2.7 on a loaded machine), far past the short
# shutdown_timeout below.
STUCK_CONVS = 600


@pytest.fixture(scope="module")
def fast_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("standin-fast")
    write_standin_graph(path)
    return path


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("standin-slow")
    write_standin_graph(path, extra_convs=SLOW_CONVS)
    return path


@pytest.fixture(scope="module")
def stuck_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("standin-stuck")
    write_standin_graph(path, extra_convs=STUCK_CONVS)
    return path


def drop_portrait(folder_in: str | Path, name: str, side: int) -> Path:
    """A person-shaped subject on a plain backdrop, moved into the folder in one rename."""
    image = Image.new("RGB", (side, side), (200, 200, 205))
    subject = Image.new("RGB", (side // 2, side * 3 // 4), (90, 60, 40))
    image.paste(subject, (side // 4, side // 4))
    target = Path(folder_in) / name
    staging = target.parent.parent / f".staging-{name}"
    image.save(staging)
    os.replace(staging, target)
    return target


def outputs_in(out: str | Path) -> list[Path]:
    return sorted(p for p in Path(out).rglob("*") if p.is_file() and ".bshmd" not in p.parts)


def assert_outputs_whole(out: str | Path) -> None:
    for path in outputs_in(out):
        assert not path.name.startswith(".") and ".tmp" not in path.name, f"temporary file left: {path}"
        with Image.open(path) as image:
            image.load()  # decodes every byte: a partial file fails here


def test_notify_protocol_watchdog_and_wedge(tmp_path: Path, slow_model: Path, notify_socket) -> None:
    hot = folder(tmp_path, "a")
    config = write_config(tmp_path / "bshmd.yaml", slow_model, [hot], batch={"max_size": 1})
    daemon = DaemonProcess(config, tmp_path / "daemon.log", env={
        "NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": str(WATCHDOG_USEC)})
    try:
        ready_at, _ = notify_socket.wait_for(lambda m: m.startswith("READY=1"), timeout=90)
        # Warm-up is logged before READY=1 is sent: it must be in the log already.
        log_at_ready = daemon.text()
        assert "model warm-up inference took" in log_at_ready and "model ready in" in log_at_ready
        texts = notify_socket.texts()
        first_ready = next(i for i, t in enumerate(texts) if t.startswith("READY=1"))
        assert any(t.startswith("EXTEND_TIMEOUT_USEC=") for t in texts[:first_ready]), texts
        assert not any(t == "WATCHDOG=1" for t in texts[:first_ready])

        # Idle and healthy: a ping every half interval, never faster, never late.
        wait_until(lambda: (notify_socket.drain(0.2), _pings(notify_socket, after=ready_at))[1][5:],
                   timeout=30, what="six watchdog pings")
        pings = _pings(notify_socket, after=ready_at)
        gaps = [b - a for a, b in zip(pings, pings[1:], strict=False)]
        assert min(gaps) >= HALF - 0.05, gaps
        assert max(gaps) < 2 * HALF, gaps

        # An inference longer than the watchdog interval: the pings stop while it runs.
        drop_portrait(hot["input"], "big.png", 1600)
        daemon.wait_log("watchdog: withholding the ping: inference running", timeout=60)
        # The file's own line ("processed <path> → <result>"): the ready line counts
        # "processed 0" too, and matching that would look at the pings mid-wedge.
        daemon.wait_log("big.png → ", timeout=60)
        notify_socket.drain(0.2)
        pings = _pings(notify_socket, after=ready_at)
        longest = max(b - a for a, b in zip(pings, pings[1:], strict=False))
        assert longest > 2 * HALF, f"pings did not stop during the wedge: {pings}"

        # Healthy again: pings resume; SIGTERM sends STOPPING=1 and exits 0.
        last = pings[-1]
        notify_socket.wait_for(lambda m: m == "WATCHDOG=1" and notify_socket.messages[-1][0] > last, timeout=10)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0, daemon.text()
        notify_socket.drain(0.2)
        assert any(t.startswith("STOPPING=1") for t in notify_socket.texts())
        assert_outputs_whole(hot["output"])
    finally:
        daemon.kill()


def _pings(sock, after: float) -> list[float]:
    return [t for t, m in sock.messages if m == "WATCHDOG=1" and t > after]


def test_sigterm_finishes_the_batch_and_releases_the_rest(tmp_path: Path, slow_model: Path) -> None:
    hot = folder(tmp_path, "a")
    config = write_config(tmp_path / "bshmd.yaml", slow_model, [hot], batch={"max_size": 1},
                          pipeline={"decode_workers": 1, "write_workers": 1, "queue_size": 1},
                          logging={"level": "DEBUG", "journald": "off"})
    # The pipeline takes at most queue_size + batch.max_size = 2 files: the rest wait for room.
    names = [f"p{i}.png" for i in range(5)]
    daemon = DaemonProcess(config, tmp_path / "first.log")
    try:
        daemon.wait_log("ready: ", timeout=90)
        for name in names:
            drop_portrait(hot["input"], name, 1000)
        wait_until(lambda: (status := daemon.status())["inference_running_seconds"] is not None
                   and status["stages"].get("batch", 0) >= 1, timeout=30,
                   what=f"an inference in flight and a decoded file waiting; log:\n{daemon.log}")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(20 + 5) == 0, daemon.text()  # shutdown_timeout is 20 s
        first = daemon.text()
        assert "stopped after" in first and "released" in first
        done_first = outputs_in(hot["output"])
        assert 1 <= len(done_first) < len(names), first
        # The batch in flight finished; the decoded file behind it was released, not inferred.
        before, after = first.split("intake stopped", 1)
        assert "inference of a batch" not in after, first
        assert "released without inference" in after, first
        assert len(done_first) == before.count("inference of a batch"), first
        assert_outputs_whole(hot["output"])
    finally:
        daemon.kill()

    # The released files are claimed again and processed by the next run.
    again = DaemonProcess(config, tmp_path / "second.log")
    try:
        wait_until(lambda: len(outputs_in(hot["output"])) == len(names), timeout=90,
                   what="every input processed after the restart")
        again.signal(signal.SIGTERM)
        assert again.wait(25) == 0, again.text()
        assert_outputs_whole(hot["output"])
        assert len(outputs_in(hot["output"])) == len(names)  # nothing processed twice
        assert {p.name.split(".")[0] for p in outputs_in(hot["output"])} == {n.split(".")[0] for n in names}
        assert not outputs_in(hot["quarantine"])
    finally:
        again.kill()


def lines_after(text: str, marker: str) -> list[str]:
    return text[text.index(marker):].splitlines()


def test_sigterm_starts_no_batch_and_leaves_an_overlong_one_within_shutdown_timeout(
        tmp_path: Path, stuck_model: Path, fast_model: Path) -> None:
    hot = folder(tmp_path, "a")
    shutdown_timeout = 3
    config = write_config(tmp_path / "bshmd.yaml", stuck_model, [hot], batch={"max_size": 1},
                          pipeline={"decode_workers": 2, "write_workers": 1, "queue_size": 4},
                          shutdown_timeout=shutdown_timeout, logging={"level": "DEBUG", "journald": "off"})
    names = [f"p{i}.png" for i in range(4)]
    daemon = DaemonProcess(config, tmp_path / "first.log")
    try:
        daemon.wait_log("ready: ", timeout=90)
        for name in names:
            drop_portrait(hot["input"], name, 1600)
        # One batch in the engine, for far longer than shutdown_timeout, the others behind it.
        wait_until(lambda: (status := daemon.status())["inference_running_seconds"] is not None
                   and sum(status["stages"].values()) == len(names), timeout=60,
                   what=f"an inference in flight and every file in the pipeline; log:\n{daemon.log}")
        sent = time.monotonic()
        daemon.signal(signal.SIGTERM)
        # The engine's call is left behind: the exit does not wait for it. The bound is
        # generous for a loaded machine and still far below the call's own minutes.
        assert daemon.wait(shutdown_timeout + 20) == 0, daemon.text()
        print(f"exited {time.monotonic() - sent:.1f} s after SIGTERM (shutdown_timeout {shutdown_timeout} s)")
        text = daemon.text()
        after = lines_after(text, "intake stopped")
        assert not [line for line in after if "inference of a batch" in line], text  # no batch started
        assert f"shutdown_timeout ({shutdown_timeout} s) ran out" in text
        released = [line for line in after if "unprocessed (shutdown)" in line]
        for name in names:  # every claim, the abandoned batch's too, was given back
            assert any(name in line for line in released), text
        assert outputs_in(hot["output"]) == []  # nothing half-written either
        assert_outputs_whole(hot["output"])
        assert sorted(p.name for p in Path(hot["input"]).iterdir()) == names
    finally:
        daemon.kill()

    # Nothing was lost: a restart (with a faster model) processes every input.
    write_config(config, fast_model, [hot], http={"enabled": True, "host": "127.0.0.1", "port": daemon.port})
    again = DaemonProcess(config, tmp_path / "second.log")
    try:
        wait_until(lambda: len(outputs_in(hot["output"])) == len(names), timeout=90,
                   what="every input processed after the restart")
        again.signal(signal.SIGTERM)
        assert again.wait(25) == 0, again.text()
        assert_outputs_whole(hot["output"])
    finally:
        again.kill()


def test_sighup_adds_a_folder_and_survives_a_broken_file(tmp_path: Path, fast_model: Path) -> None:
    first, second = folder(tmp_path, "a"), folder(tmp_path, "b")
    config = write_config(tmp_path / "bshmd.yaml", fast_model, [first])
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        daemon.wait_log("ready: ", timeout=90)
        good = config.read_text()

        config.write_text("folders: [oops\n")
        daemon.signal(signal.SIGHUP)
        daemon.wait_log("reload: keeping the running configuration", timeout=20)
        assert "reload: " in daemon.text() and "not valid YAML" in daemon.text()

        config.write_text(good)
        write_config(config, fast_model, [first, second], http={"enabled": True, "host": "127.0.0.1",
                                                               "port": daemon.port})
        daemon.signal(signal.SIGHUP)
        daemon.wait_log(f"added {second['input']}", timeout=20)
        wait_until(lambda: len(daemon.status()["folders"]) == 2 and
                   all(f["watching"] for f in daemon.status()["folders"].values()),
                   timeout=20, what="both folders watched")
        drop_portrait(second["input"], "new.png", 200)
        drop_portrait(first["input"], "old.png", 200)
        wait_until(lambda: outputs_in(second["output"]) and outputs_in(first["output"]), timeout=30,
                   what="results in both output folders")
        assert "needs a restart" not in daemon.text()

        # `bshmd status` and the review page are served by the running daemon.
        status = subprocess.run([sys.executable, "-m", "bshmd", "status", "-c", str(config)],
                                capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "300"})
        assert status.returncode == 0, status.stderr
        assert "ready" in status.stdout and second["input"] in status.stdout
        assert "processed 2" in status.stdout or "processed 1" in status.stdout
        with urllib.request.urlopen(f"http://127.0.0.1:{daemon.port}/review/", timeout=10) as page:
            assert page.status == 200
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(25) == 0, daemon.text()
    finally:
        daemon.kill()


def test_status_command_says_when_no_daemon_runs(tmp_path: Path, fast_model: Path) -> None:
    config = write_config(tmp_path / "bshmd.yaml", fast_model, [folder(tmp_path, "a")])
    status = subprocess.run([sys.executable, "-m", "bshmd", "status", "-c", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 1
    assert "bshmd is not running" in status.stderr


def test_second_sigterm_exits_at_once_without_partial_outputs(tmp_path: Path, slow_model: Path) -> None:
    hot = folder(tmp_path, "a")
    config = write_config(tmp_path / "bshmd.yaml", slow_model, [hot], batch={"max_size": 1},
                          shutdown_timeout=120)
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        daemon.wait_log("ready: ", timeout=90)
        drop_portrait(hot["input"], "big.png", 1600)
        drop_portrait(hot["input"], "small.png", 300)
        wait_until(lambda: daemon.status()["inference_running_seconds"] is not None, timeout=30,
                   what="an inference in flight")
        daemon.signal(signal.SIGTERM)
        daemon.wait_log("shutting down on request", timeout=10)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(15) == 130, daemon.text()
        assert "received a second SIGTERM" in daemon.text()
        assert_outputs_whole(hot["output"])
        assert sorted(p.name for p in Path(hot["input"]).iterdir()) == ["big.png", "small.png"]
    finally:
        daemon.kill()

    # Nothing was lost: claims released, a restart processes both.
    again = DaemonProcess(config, tmp_path / "again.log")
    try:
        wait_until(lambda: len(outputs_in(hot["output"])) == 2, timeout=90, what="both inputs processed")
        again.signal(signal.SIGTERM)
        assert again.wait(30) == 0
        assert_outputs_whole(hot["output"])
    finally:
        again.kill()


def test_model_change_on_reload_needs_a_restart(tmp_path: Path, fast_model: Path, slow_model: Path) -> None:
    hot = folder(tmp_path, "a")
    config = write_config(tmp_path / "bshmd.yaml", fast_model, [hot])
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        daemon.wait_log("ready: ", timeout=90)
        write_config(config, slow_model, [hot], http={"enabled": True, "host": "127.0.0.1", "port": daemon.port})
        daemon.signal(signal.SIGHUP)
        daemon.wait_log("reload: 'model' changed; it needs a restart", timeout=20)
        daemon.wait_log("reload: configuration from", timeout=20)
        daemon.signal(signal.SIGINT)
        assert daemon.wait(25) == 0
    finally:
        daemon.kill()


def test_notify_socket_without_systemd_python_is_refused(tmp_path: Path, fast_model: Path, notify_socket) -> None:
    hot = folder(tmp_path, "a")
    config = write_config(tmp_path / "bshmd.yaml", fast_model, [hot])
    blocked = [sys.executable, "-c",
               "import sys; sys.modules['systemd'] = None; from bshmd.cli import main; main()"]
    daemon = DaemonProcess(config, tmp_path / "daemon.log", argv=blocked,
                           env={"NOTIFY_SOCKET": str(notify_socket.path)})
    try:
        assert daemon.wait(60) == 5
        text = daemon.text()
        assert "bshmd: error: NOTIFY_SOCKET is set" in text and "systemd-python" in text
        assert notify_socket.drain(0.1) == []
    finally:
        daemon.kill()


def test_listening_beyond_loopback_without_token_is_refused(tmp_path: Path, fast_model: Path) -> None:
    hot = folder(tmp_path, "a")
    config = write_config(tmp_path / "bshmd.yaml", fast_model, [hot],
                          http={"enabled": True, "host": "0.0.0.0", "port": 0})
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        assert daemon.wait(60) == 2
        assert "http.token" in daemon.text()
    finally:
        daemon.kill()
