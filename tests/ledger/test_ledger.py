"""The ledger's claim protocol on both backends: claim, renew, finish, fencing, takeover."""

from __future__ import annotations

import pytest

from bshmd.errors import ClaimLost
from bshmd.ledger import claims as claims_module
from bshmd.ledger.claims import Claims, FolderClaims
from bshmd.ledger.keys import FileKey
from bshmd.ledger.outcome import Outcome
from bshmd.ledger.schema import LATEST, migrate
from bshmd.ledger.store import Taken, Verdict
from tests.support.clock import DrivenClock
from tests.support.ledger import retry_due, wait_claim_ran_out, wait_lease_ran_out
from tests.support.waiting import wait_until

KEY = FileKey("shoot/a.jpg", 100, 1_700_000_000_000_000_000)
FOLDER = "f" * 32


def test_migrations_run_once_and_keep_one_ledger_id(ledger_factory, backend_factory):
    first = ledger_factory("a")
    second = ledger_factory("b")
    assert first.ledger_id == second.ledger_id
    assert migrate(backend_factory()) == first.ledger_id
    versions = first.backend.transaction(lambda tx: tx.query("SELECT version FROM schema_migrations"))
    assert sorted(v for (v,) in versions) == list(range(1, LATEST + 1))


def test_one_winner_then_done_is_permanent_until_the_file_changes(ledger_factory):
    a, b = ledger_factory("a"), ledger_factory("b")
    [won] = a.claim(FOLDER, [KEY], 60)
    assert isinstance(won, Taken) and won.epoch == 1 and won.taken_from is None
    [lost] = b.claim(FOLDER, [KEY], 60)
    assert isinstance(lost, Verdict) and lost.why == "held"
    assert a.holds(FOLDER, KEY, 1) and not b.holds(FOLDER, KEY, 1)
    assert a.finish(FOLDER, KEY, 1, Outcome("processed"))
    assert a.finish(FOLDER, KEY, 1, Outcome("processed"))  # a retried commit: still fine
    assert [r.why for r in b.claim(FOLDER, [KEY], 60)] == ["done"]
    assert b.done_among(FOLDER, [KEY]) == {KEY}
    changed = FileKey(KEY.relpath, KEY.size + 1, KEY.mtime_ns)
    [again] = b.claim(FOLDER, [changed], 60)
    assert isinstance(again, Taken) and again.epoch == 2 and again.reason == "stale key"


def test_an_expired_lease_is_taken_over_and_the_old_holder_is_fenced_out(ledger_factory):
    a, b = ledger_factory("a"), ledger_factory("b")
    [won] = a.claim(FOLDER, [KEY], 0.2)
    wait_claim_ran_out(a, FOLDER, KEY.relpath)
    [taken] = b.claim(FOLDER, [KEY], 60)
    assert isinstance(taken, Taken) and taken.taken_from == "a" and taken.epoch == won.epoch + 1
    # a stalled, then woke up: nothing it writes lands over b's claim.
    assert not a.holds(FOLDER, KEY, won.epoch)
    assert not a.finish(FOLDER, KEY, won.epoch, Outcome("processed"))
    assert not a.finish(FOLDER, KEY, won.epoch, Outcome("released", "shutdown"))
    assert (FOLDER, KEY.relpath, won.epoch) not in a.renew(60)
    assert b.job(FOLDER, KEY.relpath).holder == "b"
    assert b.finish(FOLDER, KEY, taken.epoch, Outcome("quarantined", "truncated"))
    row = b.job(FOLDER, KEY.relpath)
    assert (row.state, row.outcome, row.reason) == ("done", "quarantined", "truncated")


def test_a_restart_of_the_same_instance_takes_its_claims_back_at_once(ledger_factory):
    old = ledger_factory("gpu0")
    old.claim(FOLDER, [KEY], 3600)
    [taken] = ledger_factory("gpu0").claim(FOLDER, [KEY], 60)
    assert isinstance(taken, Taken) and taken.reason == "earlier run of this instance"


def test_release_with_retry_after_keeps_everyone_off_until_it_is_due(ledger_factory):
    a, b = ledger_factory("a"), ledger_factory("b")
    [won] = a.claim(FOLDER, [KEY], 60)
    assert a.finish(FOLDER, KEY, won.epoch, Outcome("released", "disk_full", retry_after=0.5))
    [waiting] = b.claim(FOLDER, [KEY], 60)
    assert isinstance(waiting, Verdict) and waiting.why == "waiting" and 0 < waiting.due_in <= 0.5
    wait_until(lambda: retry_due(b, FOLDER, KEY.relpath), 30, "the release's retry_after to pass")
    [taken] = b.claim(FOLDER, [KEY], 60)
    assert isinstance(taken, Taken) and taken.reason == "released"


def test_batch_claims_and_renewal_in_one_statement(ledger_factory):
    a, b = ledger_factory("a"), ledger_factory("b")
    keys = [FileKey(f"batch/{n:04d}.jpg", n, n) for n in range(450)]
    results = a.claim(FOLDER, keys, 60)
    assert all(isinstance(r, Taken) for r in results) and len(results) == 450
    assert all(isinstance(r, Verdict) and r.why == "held" for r in b.claim(FOLDER, keys[:10], 60))
    held = a.renew(60)
    assert len(held) == 450
    assert a.counts()[FOLDER]["claimed"] == 450


def test_named_leases_have_one_holder(ledger_factory):
    a, b = ledger_factory("a"), ledger_factory("b")
    assert a.take_lease("scan:x", 0.3) and not b.take_lease("scan:x", 0.3)
    assert a.take_lease("scan:x", 0.3)  # renewing
    assert a.lease_holder("scan:x")[0] == "a"
    wait_lease_ran_out(b, "scan:x")
    assert b.take_lease("scan:x", 30) and not a.take_lease("scan:x", 30)
    b.drop_lease("scan:x")
    assert a.take_lease("scan:x", 30)


def test_undecodable_names_round_trip(ledger_factory):
    a = ledger_factory("a")
    odd = FileKey("caf\udce9/\udcff.jpg", 1, 2)  # Latin-1 bytes, as os.fsdecode gives them
    [won] = a.claim(FOLDER, [odd], 60)
    assert isinstance(won, Taken)
    assert a.job(FOLDER, odd.relpath).relpath == odd.relpath


def test_folder_claims_verify_complete_and_notice_a_takeover(ledger_factory, hot):
    ours = Claims(ledger_factory("a"), 0.3)
    ended = []
    ours.on_finished = ended.append
    mine = FolderClaims(ours, hot["in"], hot["out"])
    rival = FolderClaims(Claims(ledger_factory("b"), 60), hot["in"], hot["out"])
    assert mine.check_output() and mine.folder_id == rival.folder_id
    claim = mine.try_claim(KEY)
    claim.verify()
    assert rival.try_claim(KEY) is None
    wait_claim_ran_out(rival.ledger, mine.folder_id, KEY.relpath)  # not renewed: expired
    stolen = rival.try_claim(KEY)
    assert stolen is not None and stolen.taken_from == "a"
    with pytest.raises(ClaimLost):
        claim.verify()
    ours.renew()  # notices the loss
    assert ended == [claim] and claim.outcome is None and not ours.held()
    stolen.complete(Outcome("processed"))
    assert mine.is_done(KEY) and rival.is_done(KEY)


def test_the_fence_refuses_a_rename_once_the_lease_granted_by_verify_may_be_over(ledger_factory, hot, monkeypatch):
    clock = DrivenClock()  # the fence reads the host's monotonic clock: driven here
    monkeypatch.setattr(claims_module, "time", clock)
    claims = Claims(ledger_factory("a"), 0.4)
    folder = FolderClaims(claims, hot["in"], hot["out"])
    claim = folder.try_claim(KEY)
    claim.verify()
    claim.fence()  # at once: fine
    clock.advance(0.4)  # as if frozen past the lease (CLOCK_MONOTONIC counts through SIGSTOP)
    with pytest.raises(ClaimLost, match="stalled"):
        claim.fence()
    claim.verify()  # still ours (nobody took it): a new lease, a new fence
    claim.fence()
    stolen = FolderClaims(Claims(ledger_factory("b"), 60), hot["in"], hot["out"])
    wait_claim_ran_out(stolen.ledger, folder.folder_id, KEY.relpath)
    assert stolen.try_claim(KEY) is not None
    with pytest.raises(ClaimLost):
        claim.verify()


def test_the_sqlite_ledger_stays_off_network_mounts(tmp_path):
    """The one rule the daemon refuses to start on and the doctor reports (bshmd.ledger.local)."""
    from bshmd.config import parse_config
    from bshmd.fs.mounts import parse_mountinfo
    from bshmd.ledger.local import state_dir_problem

    share = tmp_path / "share"
    share.mkdir()  # where the share is mounted, per the table below (as the kernel names it: resolved)
    mounts = parse_mountinfo(f"1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"
                             f"2 1 0:50 / {share.resolve()} rw - nfs4 nas:/state rw,vers=4.2\n")
    folders = [{"input": str(tmp_path / "in"), "output": str(tmp_path / "out"), "quarantine": str(tmp_path / "q")}]

    def problem(**extra):
        config = parse_config({"folders": folders, **extra}, base_dir=tmp_path)
        return state_dir_problem(config, mounts, environ={})

    assert problem(state_dir=str(tmp_path / "local")) is None
    found = problem(state_dir=str(share / "bshmd"))  # not created yet: judged by its nearest parent
    assert found.startswith(f"state_dir = '{share / 'bshmd'}': is on a nfs4 filesystem ({share.resolve()})")
    assert problem(state_dir=str(share / "bshmd"), ledger={"url": "postgresql://db/bshmd"}) is None
