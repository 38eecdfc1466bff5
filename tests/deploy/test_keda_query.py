"""The KEDA trigger's query, taken from the rendered ScaledObject, run on a PostgreSQL ledger
that bshmd's own code filled: it gives the ready rows `bshmd ledger status` reports, in
batches of the workers' batch.max_size."""

from __future__ import annotations

import json
import math
from pathlib import Path

import psycopg
import pytest
import yaml
from click.testing import CliRunner

from bshmd.cli import main
from bshmd.ledger import open_ledger
from bshmd.ledger.keys import FileKey
from bshmd.ledger.outcome import Outcome
from bshmd.ledger.share import ensure_marker
from tests.deploy.render import OVERLAYS, one
from tests.deploy.test_manifests import _worker_config


def _query(overlay: str) -> str:
    trigger = one(overlay, "ScaledObject", "bshmd")["spec"]["triggers"][0]
    assert trigger["type"] == "postgresql"
    return trigger["metadata"]["query"]


def test_every_overlay_asks_the_same_question() -> None:
    assert len({_query(overlay) for overlay in OVERLAYS}) == 1


@pytest.mark.parametrize("ready", [0, 1, 4, 5, 203])
def test_the_query_counts_what_ledger_status_calls_ready(ready: int, pg_url: str, tmp_path: Path) -> None:
    folders = []
    for name in ("studio", "shop"):
        paths = {part: tmp_path / name / part for part in ("in", "out", "quarantine")}
        for path in paths.values():
            path.mkdir(parents=True)
        folders.append({"input": str(paths["in"]), "output": str(paths["out"]),
                        "quarantine": str(paths["quarantine"])})
    config_file = tmp_path / "bshmd.yaml"
    config_file.write_text(yaml.safe_dump({"folders": folders, "ledger": {"url": pg_url}}))

    from bshmd.config import load_config

    ledger = open_ledger(load_config(config_file), "worker-1")
    try:
        ids = [ensure_marker(ledger, Path(f["input"]), Path(f["output"])).folder for f in folders]
        # Ready rows spread over both folders, and rows in every other state beside them.
        for i in range(ready):
            ledger.mark_ready(ids[i % 2], [FileKey(f"ready/{i}.jpg", 100 + i, 1_000 + i)])
        extra = [FileKey(f"other/{i}.jpg", 10, 20 + i) for i in range(9)]
        ledger.mark_ready(ids[0], extra)
        taken = ledger.claim(ids[0], extra, lease_seconds=60)
        for job in taken[:4]:
            assert ledger.finish(ids[0], job.key, job.epoch, Outcome("processed"))
        assert ledger.finish(ids[0], taken[4].key, taken[4].epoch, Outcome("released", "shutdown"))
        # taken[5:]: still claimed by this worker.
        counts = ledger.counts()
        assert counts[ids[0]]["done"] == 4 and counts[ids[0]]["released"] == 1 and counts[ids[0]]["claimed"] == 4
    finally:
        ledger.close()

    result = CliRunner().invoke(main, ["ledger", "status", "-c", str(config_file), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    reported = sum(folder["ready"] for folder in json.loads(result.output)["folders"])
    assert reported == ready

    batch = _worker_config("gpu").batch.max_size
    with psycopg.connect(pg_url) as conn:
        (value,) = conn.execute(_query("gpu")).fetchone()
    assert isinstance(value, int)
    assert value == math.ceil(reported / batch)
