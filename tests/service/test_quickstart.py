"""The quick start: ``make run`` with etc/quickstart.yaml, offline, with a model placed by hand,
and as an ordinary account from a clone of its own that it alone writes to."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from asuser import Account, as_account
from daemonproc import REPO, DaemonProcess, free_port
from PIL import Image

from bshmd import __version__
from bshmd.config import load_config
from bshmd.errors import EXIT_MODEL, EXIT_USAGE
from bshmd.ledger.statedir import SYSTEM_STATE_DIR
from bshmd.testing.images import synthetic_portrait
from bshmd.testing.standin import write_standin_graph
from tests.support.testdata import PORTRAIT
from tests.support.waiting import wait_until

QUICKSTART = REPO / "etc" / "quickstart.yaml"


def checkout_copy(tmp_path: Path) -> Path:
    """A folder laid out like the checkout's root, with the quick start's configuration in etc/."""
    (tmp_path / "etc").mkdir()
    return Path(shutil.copy(QUICKSTART, tmp_path / "etc" / "quickstart.yaml"))


def test_make_run_without_config_uses_the_quickstart() -> None:
    dry = subprocess.run(["make", "-n", "run"], cwd=REPO, capture_output=True, text=True, timeout=30,
                         env={k: v for k, v in os.environ.items() if k != "CONFIG"})
    assert dry.returncode == 0, dry.stderr
    assert "bin/bshmd run -c etc/quickstart.yaml" in dry.stdout


def test_every_path_the_quickstart_writes_is_under_hot_in_the_clone() -> None:
    config = load_config(QUICKSTART)
    hot = REPO / "hot"
    paths = {"state_dir": config.state_dir, "model.cache_dir": config.model.cache_dir}
    for folder in config.folders:
        paths.update({"input": folder.input, "output": folder.output, "quarantine": folder.quarantine,
                      "rejected": folder.rejected_dir, "review caches": folder.state_dir})
    outside = {key: path for key, path in paths.items() if path is None or hot not in path.parents}
    assert not outside, f"written outside ./hot: {outside}"
    assert config.on_success == "keep"  # no done folder beside the input either


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) + ("/" if p.is_dir() else "") for p in root.rglob("*"))


@pytest.mark.slow
def test_offline_first_start_creates_hot_folders_and_says_where_to_put_the_model(tmp_path: Path) -> None:
    config = checkout_copy(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "MODELSCOPE_DOMAIN", "MODELSCOPE_CACHE",
                                                            "MODELSCOPE_CREDENTIALS_PATH", "XDG_CACHE_HOME")}
    env["HOME"] = str(home)  # ModelScope's lookup in the cache keeps its own files with the model, not here
    # A network namespace of its own: no interface but a loopback that is down, so nothing is reachable.
    result = subprocess.run(["unshare", "--net", sys.executable, "-m", "bshmd", "run", "-c", str(config)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == EXIT_MODEL, result.stderr
    hot = tmp_path / "hot"
    for name in ("in", "out", "quarantine"):
        assert (hot / name).is_dir()
        assert f"bshmd: created {hot / name}\n" in result.stdout
    assert f"drop photos into {hot / 'in'}" in result.stdout
    assert "review page: http://127.0.0.1:9464/review/" in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("bshmd: error:")]
    assert "cannot be reached" in error  # no download attempts and retries first
    assert "place the model by hand" in error and "tf_graph.pb" in error and "set model.path" in error
    assert not list((hot / "model-cache").rglob("tf_graph.pb"))
    assert listing(home) == []


@pytest.mark.slow
def test_with_a_model_placed_by_hand_a_photo_dropped_into_hot_in_is_cut_out(tmp_path: Path) -> None:
    config = checkout_copy(tmp_path)
    # As the file's comment says: tf_graph.pb in ./hot/model, named by model.path. The stand-in
    # graph (a test fixture with BSHM's tensors) takes the real model's place, and its softer
    # mattes the gate's; a free port keeps parallel runs apart.
    write_standin_graph(tmp_path / "hot" / "model")
    settings = yaml.safe_load(config.read_text())
    settings["model"]["path"] = "../hot/model"
    settings.update(http={"port": free_port()}, gate={"enabled": False})
    config.write_text(yaml.safe_dump(settings))

    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        daemon.wait_log("ready:", timeout=120)
        photo = tmp_path / "hot" / "in" / "portrait.png"
        Image.fromarray(synthetic_portrait(160, 120)).save(tmp_path / "portrait.png")
        shutil.move(tmp_path / "portrait.png", photo)
        cutout = tmp_path / "hot" / "out" / "portrait.png.cutout.png"
        wait_until(cutout.is_file, 60, "the cut-out in ./hot/out")
        with Image.open(cutout) as image:
            assert (image.mode, image.size) == ("RGBA", (160, 120))
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
    finally:
        daemon.kill()
    assert f"review page: http://127.0.0.1:{settings['http']['port']}/review/" in daemon.text()


# --- as an ordinary account ------------------------------------------------------------------


def clone_for(account: Account, root: Path) -> Path:
    """What a fresh clone holds that the daemon needs (the package and etc/quickstart.yaml) in
    ``root``, owned by ``account``; the checkout itself may sit where that account cannot go."""
    shutil.copytree(REPO / "bshmd", root / "bshmd", ignore=shutil.ignore_patterns("__pycache__"))
    checkout_copy(root)
    return root


def give(account: Account, *roots: Path) -> None:
    for root in roots:
        for path in [root, *root.rglob("*")]:
            os.chown(path, account.uid, account.gid)


def login_env(account: Account, home: Path, clone: Path) -> dict[str, str]:
    """A login's environment, not this test's: no $BSHMD_STATE_DIR (the suite's), no XDG_* and no
    systemd variables; the clone first on the import path, as ``make run``'s venv would have it."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "USER": account.name,
           "LOGNAME": account.name, "PYTHONPATH": str(clone), "PYTHONUNBUFFERED": "1",
           "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "HOME": str(home)}
    return env


@pytest.fixture
def account() -> Account:
    """nobody when the suite runs as root (here and in CI), else the account running it."""
    return Account.named() if os.geteuid() == 0 else Account.current()


@pytest.fixture
def stage() -> Iterator[Path]:
    """Root's folder for the namespace's mount handles, in /tmp (pytest's own folder is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="bshmd-reach-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_an_ordinary_account_runs_the_quick_start_and_writes_only_into_its_clone(
        tmp_path: Path, account: Account, stage: Path) -> None:
    clone, home = clone_for(account, tmp_path / "clone"), tmp_path / "home"
    home.mkdir()  # empty: whatever appears in it was written outside the clone
    config = clone / "etc" / "quickstart.yaml"
    # The model placed by hand as the file's comment says (tf_graph.pb in ./hot/model, named by
    # model.path); the stand-in graph with BSHM's tensors takes the real model's place.
    write_standin_graph(clone / "hot" / "model")
    settings = yaml.safe_load(config.read_text())
    settings["model"]["path"] = "../hot/model"
    settings.update(http={"port": free_port()}, gate={"enabled": False})
    config.write_text(yaml.safe_dump(settings))
    give(account, clone, home)
    system_state_before = SYSTEM_STATE_DIR.exists()

    # The account's own interpreter start proves the way in: the clone's package, not the checkout's.
    probe = subprocess.run(as_account([sys.executable, "-c", "import bshmd, os; print(bshmd.__file__, os.geteuid())"],
                                      account, cwd=clone, env=login_env(account, home, clone),
                                      reach=[clone, home], stage=stage),
                           capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [str(clone / "bshmd" / "__init__.py"), str(account.uid)]

    argv = as_account([sys.executable, "-m", "bshmd"], account, cwd=clone, env=login_env(account, home, clone),
                      reach=[clone, home], stage=stage)
    daemon = DaemonProcess(config, tmp_path / "daemon.log", argv=argv)
    try:
        daemon.wait_log("ready:", timeout=180)
        status = Path(f"/proc/{daemon.proc.pid}/status").read_text()
        assert f"Uid:\t{account.uid}\t{account.uid}\t" in status  # the daemon itself, not a wrapper
        photo = clone / "portrait.png"
        shutil.copy(PORTRAIT, photo)
        give(account, photo)
        photo.rename(clone / "hot" / "in" / PORTRAIT.name)  # dropped in whole, as a Finder copy ends
        cutout = clone / "hot" / "out" / f"{PORTRAIT.name}.cutout.png"
        wait_until(cutout.is_file, 120, "the cut-out in ./hot/out")
        with Image.open(cutout) as image, Image.open(PORTRAIT) as original:
            assert (image.mode, image.size) == ("RGBA", original.size)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
    finally:
        daemon.kill()
    log = daemon.text()
    assert f"bshmd {__version__} starting" in log
    assert f"job ledger: sqlite {clone / 'hot' / 'state' / 'ledger.db'}" in log

    # Nothing outside the clone: an empty home, no /var/lib/bshmd, and in the clone only ./hot
    # (and the interpreter's bytecode cache beside the package it imported).
    assert listing(home) == [], listing(home)
    assert SYSTEM_STATE_DIR.exists() == system_state_before
    written = [p for p in listing(clone) if not p.startswith(("bshmd/", "etc/"))]
    print(f"\nwritten by the daemon running as {account.name} in {clone}:", *written, sep="\n  ")
    assert {p.split("/")[0] for p in written} == {"hot"}
    assert {"hot/state/ledger.db", f"hot/out/{PORTRAIT.name}.cutout.png", "hot/quarantine/"} <= set(written)
    new = [p for p in (clone / "hot").rglob("*") if p.parts[len(clone.parts) + 1] != "model"
           and p.name != PORTRAIT.name]
    assert {p.stat().st_uid for p in new} == {account.uid}, "written by another account than the daemon's"


@pytest.mark.slow
def test_an_account_without_a_usable_state_folder_stops_with_one_sentence(
        tmp_path: Path, account: Account, stage: Path) -> None:
    # A home that does not exist (nobody's is /nonexistent): the default ~/.local/state/bshmd
    # cannot be made, and without state_dir the start must say so rather than fail later.
    home = Path("/nonexistent")
    assert not home.exists()
    clone = clone_for(account, tmp_path / "clone")
    config = clone / "etc" / "quickstart.yaml"
    settings = yaml.safe_load(config.read_text())
    del settings["state_dir"]
    settings.update(http={"port": free_port()})
    config.write_text(yaml.safe_dump(settings))
    give(account, clone)
    folder = home / ".local" / "state" / "bshmd"
    sentence = (f"user {account.name} (uid {account.uid}) cannot create the state folder {folder} "
                f"(/: mode 0755, owner root): set state_dir in the configuration to a folder {account.name} can write")

    def as_them(*args: str) -> subprocess.CompletedProcess[str]:
        argv = as_account([sys.executable, "-m", "bshmd", *args, "-c", str(config)], account, cwd=clone,
                          env=login_env(account, home, clone), reach=[clone], stage=stage)
        return subprocess.run(argv, capture_output=True, text=True, timeout=180)

    run = as_them("run")
    assert run.returncode == EXIT_USAGE, run.stderr
    assert [line for line in run.stderr.splitlines() if line.startswith("bshmd: error:")] == [f"bshmd: error: {sentence}"]
    print(f"\n{account.name} without a usable state folder:\n{run.stdout}{run.stderr}")
    assert "model" not in run.stderr.split("bshmd: error:")[0]  # stopped before the model was looked for
    doctor = as_them("doctor")
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    assert re.search(rf"^FAIL  state folder {re.escape(str(folder))} +{re.escape(sentence)}  → fix: set state_dir",
                     doctor.stdout, flags=re.MULTILINE), doctor.stdout


@pytest.mark.slow
def test_an_account_beside_roots_system_folder_gets_its_own(tmp_path: Path, account: Account, stage: Path) -> None:
    # What a quick start run as root used to leave behind: /var/lib/bshmd, 0750, with a ledger.
    home = tmp_path / "home"
    home.mkdir()
    clone = clone_for(account, tmp_path / "clone")
    give(account, clone, home)
    system = home / "var-lib-bshmd"  # on a way open to the account, itself closed to it
    system.mkdir(mode=0o750)
    (system / "ledger.db").write_bytes(b"")
    code = f"from pathlib import Path; from bshmd.ledger.statedir import default_state_dir as d; print(d(system_dir=Path({str(system)!r})))"
    argv = as_account([sys.executable, "-c", code], account, cwd=clone, env=login_env(account, home, clone),
                      reach=[clone, home], stage=stage)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{home / '.local' / 'state' / 'bshmd'}\n"
