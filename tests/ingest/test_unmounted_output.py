"""An output share that is unmounted leaves its bare mount-point folder behind, on the local
disk. Nothing may be written there: no share marker, no state folder, no results. Real mounts (the
tests run as root); skipped where mounting is not allowed."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bshmd.errors import ClaimLost, LedgerUnavailable
from bshmd.ingest import Ingestor
from bshmd.ledger.keys import FileKey
from tests.ingest.helpers import CopyConsumer, folder_claims
from tests.support.config import QUICK_INGEST, make_config
from tests.support.waiting import wait_until


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], check=False, capture_output=True)


@pytest.fixture
def share(hot, tmp_path) -> Iterator[dict[str, Path]]:
    """A tmpfs standing in for the NAS, bind-mounted at the output folder (so it can be
    detached from and attached to the output folder again with its content)."""
    nas = tmp_path / "nas"
    nas.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", "size=16m", "bshmd-test-nas", str(nas))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): {exc}")
    try:
        _mount("--bind", str(nas), str(hot["out"]))
    except subprocess.CalledProcessError as exc:
        _umount(nas)
        pytest.skip(f"cannot bind-mount here: {exc}")
    try:
        yield {"nas": nas, "out": hot["out"]}
    finally:
        while os.path.ismount(hot["out"]) or _listed(hot["out"]):
            if subprocess.run(["umount", str(hot["out"])], capture_output=True).returncode != 0:
                break
        _umount(nas)


def _listed(path: Path) -> bool:
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        return any(line.split(" ")[4] == real for line in handle)


def test_files_wait_while_the_output_share_is_unmounted_and_nothing_lands_on_the_local_disk(hot, share):
    consumer = CopyConsumer()
    config = make_config(hot, defaults=QUICK_INGEST, settle_seconds=0.2, poll_seconds=0.2)
    ingestor = Ingestor(config, consumer.on_ready, instance_id="nas-user")
    ingestor.start()
    folder = str(hot["in"])
    try:
        (hot["in"] / "first.jpg").write_bytes(b"1" * 100)
        assert wait_until(lambda: consumer.counts["first.jpg"] == 1, timeout=15)
        assert (share["nas"] / "first.jpg").exists() and (share["nas"] / ".bshmd").is_dir()

        _umount(share["out"])
        assert not _listed(share["out"])
        assert os.listdir(share["out"]) == []  # the bare mount-point folder
        assert wait_until(lambda: not ingestor.health()["folders"][folder]["output_available"], timeout=10)
        (hot["in"] / "second.jpg").write_bytes(b"2" * 100)
        # It settles, and the ledger's step refuses it while the share is away: the file waits,
        # nothing is created.
        wait_until(lambda: ingestor.folders.current[folder].state_warned, 15, "the refused attempt to mark it ready")
        assert "second.jpg" not in consumer.counts
        assert os.listdir(share["out"]) == []
        assert ingestor.health()["folders"][folder]["available"]  # the input is fine

        _mount("--bind", str(share["nas"]), str(share["out"]))  # the share comes back
        assert wait_until(lambda: consumer.counts["second.jpg"] == 1, timeout=15)
        assert ingestor.health()["folders"][folder]["output_available"]
        assert (share["nas"] / "second.jpg").read_bytes() == b"2" * 100
        assert all(count == 1 for count in consumer.counts.values())
    finally:
        ingestor.close()
        consumer.close()
    _umount(share["out"])
    assert os.listdir(share["out"]) == []  # nothing was ever written under the share


def test_a_claim_in_flight_is_not_verified_on_the_bare_folder_and_nothing_is_created(hot, share):
    """The pipeline verifies its claim right before writing results: on the bare folder of
    an unmounted share that check fails, so results are never written there."""
    store = folder_claims(hot, "nas-user", 30)
    assert store.check_output()
    key = FileKey("in-flight.jpg", 10, 1)
    claim = store.try_claim(key)
    assert claim is not None
    claim.verify()

    _umount(share["out"])
    assert not store.check_output()
    with pytest.raises(ClaimLost):
        claim.verify()
    with pytest.raises(LedgerUnavailable):
        store.try_claim(FileKey("new.jpg", 10, 1))
    with pytest.raises(LedgerUnavailable):
        store.is_done(FileKey("new.jpg", 10, 1))
    claim.release()
    assert os.listdir(share["out"]) == []

    _mount("--bind", str(share["nas"]), str(share["out"]))
    assert store.check_output()
    assert store.try_claim(FileKey("new.jpg", 10, 1)) is not None


def test_an_output_folder_that_never_was_a_mount_point_is_used_as_it_is(hot):
    store = folder_claims(hot, "local", 30)
    assert store.check_output()
    assert store.try_claim(FileKey("local.jpg", 1, 1)) is not None
    assert (hot["out"] / ".bshmd" / "ledger.json").is_file()
