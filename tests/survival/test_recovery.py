"""A claim retaken after a crash between writing the results and completing the claim.

The results carry the input's mtime (stamped before their atomic rename), so the next holder
completes the claim without doing the work again; results of another version of the input
(another mtime) are redone.
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from PIL import Image

from bshmd.config import parse_config
from bshmd.ledger.keys import FileKey
from bshmd.outputs.render import output_paths, write_outputs
from bshmd.pipeline.job import Job
from bshmd.pipeline.pipeline import Pipeline
from tests.ingest.helpers import folder_claims
from tests.survival.harness import image_bytes


@pytest.fixture(scope="module")
def engine(standin_model: Path) -> Iterator[Any]:
    from bshmd.engine import MattingEngine

    matting = MattingEngine(standin_model / "tf_graph.pb")
    yield matting
    matting.close()


def _setup(tmp_path: Path):  # noqa: ANN202 - (config, folder, input path, key)
    hot = {name: tmp_path / name for name in ("in", "out", "q")}
    for path in hot.values():
        path.mkdir()
    config = parse_config({"folders": [{"input": str(hot["in"]), "output": str(hot["out"]),
                                        "quarantine": str(hot["q"])}],
                           "gate": {"enabled": False}}, base_dir=tmp_path)
    source = hot["in"] / "a.png"
    source.write_bytes(image_bytes(random.Random(1)))
    st = source.stat()
    return config, config.folders[0], source, FileKey("a.png", st.st_size, st.st_mtime_ns)


def _claims(folder: Any, instance: str = "station-1") -> Any:
    return folder_claims({"in": folder.input, "out": folder.output}, instance)


def _row(folder: Any, key: FileKey) -> Any:
    claims = _claims(folder, "checker")
    return claims.ledger.job(claims.folder_id, key.relpath)


def _retaken_job(folder: Any, source: Path, key: FileKey) -> Job:
    """Claim as a run that was killed, then again as the next run of the same instance."""
    assert _claims(folder).try_claim(key) is not None  # the killed run's claim stays
    claim = _claims(folder).try_claim(key)
    assert claim is not None and claim.taken_from == "station-1"
    return Job(folder=folder, path=source, key=key, claim=claim, taken_from=claim.taken_from)


def _run(config: Any, engine: Any, job: Job) -> Pipeline:
    pipeline = Pipeline(config, engine, instance_id="station-1")
    pipeline.start()
    try:
        assert pipeline.submit(job, timeout=5)
        assert pipeline.wait_idle(60)
    finally:
        assert pipeline.stop(10)
    return pipeline


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (8, 8), (1, 2, 3, 4)).save(buffer, "PNG")
    return buffer.getvalue()


def test_results_written_before_a_crash_are_not_made_again(tmp_path: Path, engine: Any,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    config, folder, source, key = _setup(tmp_path)
    paths = output_paths(folder.output, key.relpath, config.outputs_for(folder))
    # What the killed run left: its results, stamped, and its claim.
    write_outputs(paths, {"cutout": _png()}, output_root=folder.output, file_mode=0o644, group=None,
                  mtime_ns=key.mtime_ns)
    before = os.stat(paths["cutout"])
    job = _retaken_job(folder, source, key)
    caplog.set_level("INFO", logger="bshmd.pipeline")
    pipeline = _run(config, engine, job)
    after = os.stat(paths["cutout"])
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not written again
    assert pipeline.health().processed == 1
    assert pipeline.metrics.inference_seconds._sum.get() == 0  # nothing was inferred
    assert any(r.getMessage().startswith("recovered ") for r in caplog.records)
    row = _row(folder, key)
    assert row.state == "done" and row.outcome == "recovered"


def test_results_of_another_version_are_made_again(tmp_path: Path, engine: Any) -> None:
    config, folder, source, key = _setup(tmp_path)
    paths = output_paths(folder.output, key.relpath, config.outputs_for(folder))
    write_outputs(paths, {"cutout": _png()}, output_root=folder.output, file_mode=0o644, group=None,
                  mtime_ns=key.mtime_ns - 10**9)  # the previous export of this name
    job = _retaken_job(folder, source, key)
    pipeline = _run(config, engine, job)
    assert pipeline.metrics.inference_seconds._sum.get() > 0
    result = os.stat(paths["cutout"])
    assert result.st_mtime_ns == key.mtime_ns  # the new result carries the input's stamp
    with Image.open(paths["cutout"]) as image, Image.open(source) as original:
        assert image.size == original.size
    assert _row(folder, key).outcome == "processed"


def test_fresh_results_carry_the_input_mtime(tmp_path: Path, engine: Any) -> None:
    config, folder, source, key = _setup(tmp_path)
    claim = _claims(folder).try_claim(key)
    _run(config, engine, Job(folder=folder, path=source, key=key, claim=claim))
    paths = output_paths(folder.output, key.relpath, config.outputs_for(folder))
    assert os.stat(paths["cutout"]).st_mtime_ns == key.mtime_ns


def _quarantined_once(tmp_path: Path) -> tuple[Any, Path, Path]:
    from bshmd.errors import InputRejected
    from bshmd.quarantine.store import quarantine_input

    config, folder, source, key = _setup(tmp_path)
    source.write_bytes(b"not a photograph" * 4)
    where = quarantine_input(folder, source, PurePosixPath("a.png"), InputRejected("not_an_image", "no"),
                             instance_id="station-1")
    return folder, source, where


def _entries(folder: Any) -> list[str]:
    return sorted(p.name for p in folder.quarantine.iterdir())


def test_a_crash_before_the_quarantine_move_leaves_one_entry(tmp_path: Path) -> None:
    from bshmd.errors import InputRejected
    from bshmd.quarantine.store import quarantine_input

    folder, source, where = _quarantined_once(tmp_path)
    os.rename(where, source)  # as if killed after the reason file was written, before the move
    again = quarantine_input(folder, source, PurePosixPath("a.png"), InputRejected("not_an_image", "no"),
                             instance_id="station-1")
    assert again == where and not source.exists()
    assert _entries(folder) == ["a.png", "a.png.reason.json"]


def test_a_crash_between_link_and_unlink_is_finished_by_the_next_attempt(tmp_path: Path) -> None:
    from bshmd.errors import InputRejected
    from bshmd.quarantine.store import quarantine_input

    folder, source, where = _quarantined_once(tmp_path)
    os.link(where, source)  # as if killed after linking the input into place, before unlinking it
    again = quarantine_input(folder, source, PurePosixPath("a.png"), InputRejected("not_an_image", "no"),
                             instance_id="station-1")
    assert again == where and not source.exists()
    assert _entries(folder) == ["a.png", "a.png.reason.json"]


def test_a_new_version_of_a_quarantined_name_gets_its_own_entry(tmp_path: Path) -> None:
    from bshmd.errors import InputRejected
    from bshmd.quarantine.store import quarantine_input

    folder, source, where = _quarantined_once(tmp_path)
    source.write_bytes(b"another bad export" * 4)
    again = quarantine_input(folder, source, PurePosixPath("a.png"), InputRejected("not_an_image", "no"),
                             instance_id="station-1")
    assert again != where and where.exists()
    assert len([n for n in _entries(folder) if n.endswith(".reason.json")]) == 2
