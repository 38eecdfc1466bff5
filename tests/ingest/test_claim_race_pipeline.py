"""Fencing: a pipeline whose claim was taken over before writing writes nothing.

Real claims in a real (SQLite) job ledger, a real Pipeline on the stand-in graph (the test
fixture with the model's contract, not the model).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bshmd.config import Config
from bshmd.decode.image import decode_image
from bshmd.ledger.keys import FileKey
from bshmd.pipeline.job import Job
from bshmd.pipeline.pipeline import Pipeline
from tests.ingest.helpers import folder_claims
from tests.support import config as support_config


def make_config(hot: dict[str, Path]) -> Config:
    return support_config.make_config(hot, batch={"max_size": 2, "max_wait_ms": 20},
                                      pipeline={"decode_workers": 1, "write_workers": 1, "queue_size": 4},
                                      gate={"enabled": False})


def portrait(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    image = np.full((96, 72, 3), 220, np.uint8)
    image[20:90, 20:52] = (90, 60, 50)
    image = np.clip(image + rng.normal(0, 2, image.shape), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(path)
    return path


def written_results(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.is_file() and ".bshmd" not in p.parts]


@pytest.mark.slow
def test_a_job_whose_claim_was_taken_over_before_writing_is_released_and_writes_nothing(hot, engine):
    config = make_config(hot)
    folder = config.folders[0]
    lost_input = portrait(hot["in"] / "lost.png", 1)
    kept_input = portrait(hot["in"] / "kept.png", 2)
    lost_key, kept_key = FileKey.of(hot["in"], lost_input), FileKey.of(hot["in"], kept_input)
    ours = folder_claims(hot, "node-1")
    lost_claim, kept_claim = ours.try_claim(lost_key), ours.try_claim(kept_key)
    rival = folder_claims(hot, "node-1")  # a restart of node-1 while this run hangs
    rival_claims: list[Any] = []

    def decode_then_lose_claim(path: Path, **limits: Any) -> Any:
        rgb = decode_image(path, **limits)
        if path == lost_input:
            rival_claims.append(rival.try_claim(lost_key))  # taken over while we work on it
        return rgb

    outcomes: dict[Path, str] = {}
    pipeline = Pipeline(config, engine, instance_id="node-1", decoder=decode_then_lose_claim,
                        on_done=lambda job, outcome: outcomes.__setitem__(job.path, str(outcome)))
    pipeline.start()
    try:
        for path, key, claim in ((lost_input, lost_key, lost_claim), (kept_input, kept_key, kept_claim)):
            assert pipeline.submit(Job(folder=folder, path=path, key=key, claim=claim), timeout=30)
        assert pipeline.wait_idle(60)
    finally:
        assert pipeline.stop(timeout=30)
    assert rival_claims and rival_claims[0] is not None
    assert outcomes == {lost_input: "released:claim_lost", kept_input: "processed"}
    # Only the input whose claim was still ours has results; nothing went to quarantine.
    assert {p.name.split(".")[0] for p in written_results(hot["out"])} == {"kept"}
    assert not any(p.is_file() for p in hot["quarantine"].rglob("*"))
    assert lost_input.exists()
    # The new holder's claim is untouched: neither completed nor released by the old one.
    row = rival.ledger.job(rival.folder_id, lost_key.relpath)
    assert row.state == "claimed" and row.epoch == rival_claims[0].epoch == lost_claim.epoch + 1
    rival_claims[0].verify()
    assert pipeline.health().released == 1 and pipeline.health().processed == 1
    assert rival.ledger.job(rival.folder_id, kept_key.relpath).state == "done"
    rival_claims[0].release()
