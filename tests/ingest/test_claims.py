from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from bshmd.ingest.claims import ClaimLost, ClaimStore, StateUnavailable, claim_name, lock_path
from bshmd.records import FileKey
from tests.ingest.helpers import wait_until

KEY = FileKey("shoot/a.jpg", 1234, 1_700_000_000_000_000_000)


def claim_file(state: Path, relpath: str) -> Path:
    name = claim_name(relpath)
    return state / "claims" / name[:2] / f"{name}.json"


@pytest.fixture
def state(hot) -> Path:
    return hot["out"] / ".bshmd"


def test_claim_complete_and_done_survives_a_new_store(state):
    store = ClaimStore(state, "a", 60)
    claim = store.try_claim(KEY)
    assert claim is not None and claim.key == KEY
    record = json.loads(claim_file(state, KEY.relpath).read_text())
    assert record["state"] == "claimed" and record["instance"] == "a" and record["lease_expires"] > time.time()
    assert store.try_claim(KEY) is None  # already ours
    assert ClaimStore(state, "b", 60).try_claim(KEY) is None  # live lease elsewhere
    claim.complete("processed")
    record = json.loads(claim_file(state, KEY.relpath).read_text())
    assert record["state"] == "done" and record["outcome"] == "processed"
    later = ClaimStore(state, "c", 60)
    assert later.is_done(KEY) and later.try_claim(KEY) is None
    assert not later.is_done(FileKey(KEY.relpath, KEY.size + 1, KEY.mtime_ns))
    assert [p.name for p in claim_file(state, KEY.relpath).parent.iterdir()] == [claim_file(state, KEY.relpath).name]


def test_release_lets_another_instance_claim_at_once(state):
    a, b = ClaimStore(state, "a", 60), ClaimStore(state, "b", 60)
    released = []
    a.on_released = released.append
    claim = a.try_claim(KEY)
    claim.release()
    assert released == [KEY]
    assert b.try_claim(KEY) is not None


def test_renew_extends_the_lease(state):
    store = ClaimStore(state, "a", 2)
    store.try_claim(KEY)
    before = json.loads(claim_file(state, KEY.relpath).read_text())["lease_expires"]
    time.sleep(0.05)
    store.renew()
    after = json.loads(claim_file(state, KEY.relpath).read_text())["lease_expires"]
    assert after > before


def test_expired_lease_is_taken_over_and_the_old_holder_cannot_complete(state):
    dead = ClaimStore(state, "dead", 0.2)
    old_claim = dead.try_claim(KEY)
    alive = ClaimStore(state, "alive", 60)
    assert alive.try_claim(KEY) is None
    time.sleep(0.3)  # let the lease run out (the holder is not renewing)
    claim = alive.try_claim(KEY)
    assert claim is not None and claim.taken_from == "dead"
    with pytest.raises(ClaimLost):
        old_claim.complete("processed")
    dead.renew()  # notices the loss and forgets the claim
    assert dead.held() == []
    claim.complete("processed")
    assert ClaimStore(state, "x", 60).is_done(KEY)


def test_a_restart_of_the_same_instance_takes_its_old_claims_at_once(state):
    ClaimStore(state, "node-1", 60).try_claim(KEY)  # the earlier run, killed
    restarted = ClaimStore(state, "node-1", 60)
    claim = restarted.try_claim(KEY)
    assert claim is not None and claim.taken_from == "node-1"


def test_a_claim_for_older_content_is_replaced(state):
    old = ClaimStore(state, "a", 60)
    old.try_claim(KEY).complete("processed")
    new_key = FileKey(KEY.relpath, KEY.size + 10, KEY.mtime_ns + 5)
    claim = ClaimStore(state, "b", 60).try_claim(new_key)
    assert claim is not None
    assert json.loads(claim_file(state, KEY.relpath).read_text())["size"] == new_key.size


@pytest.mark.parametrize("round_", range(5))
def test_takeover_race_has_exactly_one_winner(state, round_):
    ClaimStore(state, "dead", 0.05).try_claim(KEY)
    time.sleep(0.1)
    stores = [ClaimStore(state, f"racer-{n}", 60) for n in range(4)]
    barrier = threading.Barrier(len(stores))
    results: list = [None] * len(stores)

    def race(index: int) -> None:
        barrier.wait()
        results[index] = stores[index].try_claim(KEY)

    threads = [threading.Thread(target=race, args=(n,), name=f"bshmd-test-race-{n}") for n in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [claim for claim in results if claim is not None]
    assert len(winners) == 1
    record = json.loads(claim_file(state, KEY.relpath).read_text())
    assert record["instance"] == winners[0].store.instance_id
    winners[0].complete("processed")
    leftovers = [p.name for p in claim_file(state, KEY.relpath).parent.iterdir()]
    assert leftovers == [claim_file(state, KEY.relpath).name]  # no tombstones or temp files left


def test_many_keys_claimed_concurrently_by_two_stores_never_overlap(state):
    keys = [FileKey(f"f{n}.jpg", n, n) for n in range(200)]
    stores = [ClaimStore(state, "a", 60), ClaimStore(state, "b", 60)]
    won: list[list[FileKey]] = [[], []]

    def grab(index: int) -> None:
        for key in keys:
            if stores[index].try_claim(key) is not None:
                won[index].append(key)

    threads = [threading.Thread(target=grab, args=(n,), name=f"bshmd-test-grab-{n}") for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not set(won[0]) & set(won[1])
    assert set(won[0]) | set(won[1]) == set(keys)


def test_done_results_are_cached_without_reading_the_share(state):
    store = ClaimStore(state, "a", 60)
    store.try_claim(KEY).complete("processed")
    claim_file(state, KEY.relpath).unlink()  # reading it now would say 'not done'
    assert store.is_done(KEY)


def test_missing_output_folder_means_state_unavailable_and_nothing_created(tmp_path):
    store = ClaimStore(tmp_path / "unmounted" / ".bshmd", "a", 60)
    with pytest.raises(StateUnavailable):
        store.try_claim(KEY)
    assert not (tmp_path / "unmounted").exists()


def test_undecodable_and_unicode_relpaths_round_trip(state):
    store = ClaimStore(state, "a", 60)
    keys = [FileKey("caf\udce9.jpg", 1, 1), FileKey("cafe\u0301.jpg", 1, 1), FileKey("caf\u00e9.jpg", 1, 1)]
    for key in keys:
        store.try_claim(key).complete("processed")
    fresh = ClaimStore(state, "b", 60)
    assert all(fresh.is_done(key) for key in keys)
    assert len({claim_file(state, key.relpath) for key in keys}) == 3  # NFC and NFD are different files


def write_lock(claim: Path, generation: int, expires: float) -> Path:
    """The lock a writer that died between locking and writing leaves behind."""
    lock = lock_path(claim, generation)
    lock.write_text(json.dumps({"instance": "crashed", "token": "gone", "host": "h", "pid": 1, "expires": expires}))
    return lock


def test_a_lock_left_by_a_writer_that_died_blocks_the_claim_only_until_it_expires(state):
    ClaimStore(state, "dead", 0.0).try_claim(KEY)  # expired at once
    path = claim_file(state, KEY.relpath)
    before = path.read_bytes()
    generation = json.loads(before)["generation"]
    lock = write_lock(path, generation + 1, expires=time.time() + 0.5)
    taker = ClaimStore(state, "taker", 60)
    assert taker.try_claim(KEY) is None  # a writer seems to be at work: back off
    assert path.read_bytes() == before
    claims: list = []
    assert wait_until(lambda: claims.append(taker.try_claim(KEY)) or claims[-1] is not None, timeout=10)
    record = json.loads(path.read_text())
    assert record["instance"] == "taker" and record["generation"] == generation + 2  # skipped the dead lock
    assert claims[-1].taken_from == "dead"
    assert not lock.exists()  # cleaned up by the writer that skipped it
    claims[-1].complete("processed")
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_damaged_or_old_locks_are_skipped_by_their_age(state):
    ClaimStore(state, "dead", 0.0).try_claim(KEY)
    path = claim_file(state, KEY.relpath)
    generation = json.loads(path.read_text())["generation"]
    write_lock(path, generation + 1, expires=time.time() - 1)  # long dead
    damaged = lock_path(path, generation + 2)
    damaged.write_bytes(b"\x00garbage")
    os.utime(damaged, (time.time() - 3600, time.time() - 3600))
    claim = ClaimStore(state, "taker", 60).try_claim(KEY)
    assert claim is not None
    assert json.loads(path.read_text())["generation"] == generation + 3
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_taken_over_holder_gets_claim_lost_and_cannot_touch_the_new_claim(state):
    slow = ClaimStore(state, "slow", 0.2)
    old_claim = slow.try_claim(KEY)
    old_claim.verify()  # still ours
    other = ClaimStore(state, "other", 60)
    taken: list = []
    assert wait_until(lambda: taken.append(other.try_claim(KEY)) or taken[-1] is not None, timeout=10)
    path = claim_file(state, KEY.relpath)
    theirs = path.read_bytes()
    with pytest.raises(ClaimLost):
        old_claim.verify()
    with pytest.raises(ClaimLost):
        old_claim.complete("processed")
    assert path.read_bytes() == theirs
    slow.renew()  # finds another token: forgets the claim, writes nothing
    assert slow.held() == [] and path.read_bytes() == theirs
    old_claim.release()  # already lost: nothing to give back
    assert path.read_bytes() == theirs
    taken[-1].verify()
    taken[-1].complete("processed")
    assert ClaimStore(state, "x", 60).is_done(KEY)


def test_release_leaves_a_released_record_anyone_may_take_at_once(state):
    a, b = ClaimStore(state, "a", 60), ClaimStore(state, "b", 60)
    claim = a.try_claim(KEY)
    claim.release()
    path = claim_file(state, KEY.relpath)
    record = json.loads(path.read_text())
    assert record["state"] == "released" and record["instance"] == "a"
    with pytest.raises(ClaimLost):
        claim.verify()
    assert not b.is_done(KEY)
    again = b.try_claim(KEY)
    assert again is not None and again.taken_from is None  # nothing to recover from a release
    assert json.loads(path.read_text())["generation"] == record["generation"] + 1


def test_renewing_never_overwrites_a_claim_taken_over_meanwhile(state):
    holder = ClaimStore(state, "holder", 60)
    claim = holder.try_claim(KEY)
    path = claim_file(state, KEY.relpath)
    generation = json.loads(path.read_text())["generation"]
    lock = write_lock(path, generation + 1, expires=time.time() + 60)  # a taker at work
    holder.renew()  # cannot get the lock: leaves the record alone, keeps the claim
    assert json.loads(path.read_text())["generation"] == generation
    assert holder.held() == [claim]
    lock.unlink()  # the taker backed off
    holder.renew()
    assert json.loads(path.read_text())["generation"] == generation + 1
    claim.verify()


def test_a_claim_from_before_generations_is_taken_over(state):
    path = claim_file(state, KEY.relpath)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"v": 1, "relpath": KEY.relpath, "size": KEY.size, "mtime_ns": KEY.mtime_ns,
                                "state": "claimed", "instance": "old", "token": "t", "lease_expires": 1.0}))
    claim = ClaimStore(state, "new", 60).try_claim(KEY)
    assert claim is not None and claim.taken_from == "old"
    assert json.loads(path.read_text())["generation"] == 1
