"""`bshmd ledger` through the real command line, a real Ingestor and real files; the
PostgreSQL password never shows in any output."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bshmd.cli import main
from bshmd.config import load_config
from bshmd.errors import LedgerUnavailable
from bshmd.ingest import Ingestor
from bshmd.ledger import open_ledger
from tests.ingest.helpers import CopyConsumer
from tests.support.config import QUICK_INGEST, config_data, make_config
from tests.support.pg import PASSWORD
from tests.support.waiting import wait_until


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def _config_file(hot: dict[str, Path], tmp_path: Path, name: str = "bshmd.yaml", **extra) -> Path:
    return _write(tmp_path / name, config_data(hot, settle_seconds=0.2, poll_seconds=0.2, rescan_seconds=1, **extra))


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_status_list_reprocess_and_forget_with_a_running_ingestor(hot, tmp_path):
    config_file = _config_file(hot, tmp_path)
    for name in ("a.jpg", "sub/b.jpg", "sub/c.jpg"):
        (hot["in"] / name).parent.mkdir(exist_ok=True)
        (hot["in"] / name).write_bytes(name.encode() * 50)
    consumer = CopyConsumer()
    ingestor = Ingestor(load_config(config_file), consumer.on_ready, instance_id="cli-test")
    ingestor.start()
    try:
        assert wait_until(lambda: len(consumer.counts) == 3, timeout=30)
        assert wait_until(lambda: "3 done" in run("ledger", "status", "-c", str(config_file)), timeout=10)
        status = json.loads(run("ledger", "status", "-c", str(config_file), "--json"))
        assert status["backend"] == "sqlite" and status["folders"][0]["done"] == 3
        listing = run("ledger", "list", "-c", str(config_file), "--state", "done")
        assert [line.split()[-1] for line in listing.splitlines()] == [
            str(hot["in"] / n) for n in ("a.jpg", "sub/b.jpg", "sub/c.jpg")]
        assert run("ledger", "list", "-c", str(config_file), "--state", "claimed") == ""

        # Reprocess one folder: the running ingestor offers its files again at its next rescan.
        assert "marked 2 file(s)" in run("ledger", "reprocess", "-c", str(config_file), str(hot["in"] / "sub"))
        assert wait_until(lambda: consumer.counts["sub/b.jpg"] == 2 and consumer.counts["sub/c.jpg"] == 2,
                          timeout=30), consumer.counts
        # Forget one file: it counts as never seen, and is processed again too.
        assert "forgot 1 file(s)" in run("ledger", "forget", "-c", str(config_file), str(hot["in"] / "a.jpg"))
        assert wait_until(lambda: consumer.counts["a.jpg"] == 2, timeout=30), consumer.counts
        assert wait_until(lambda: "3 done" in run("ledger", "status", "-c", str(config_file)), timeout=10)
        assert consumer.counts == {"a.jpg": 2, "sub/b.jpg": 2, "sub/c.jpg": 2}
    finally:
        ingestor.close()
        consumer.close()


def test_a_path_outside_every_input_is_a_usage_error(hot, tmp_path):
    config_file = _config_file(hot, tmp_path)
    result = CliRunner().invoke(main, ["ledger", "forget", "-c", str(config_file), str(tmp_path / "elsewhere.jpg")])
    assert result.exit_code == 2 and "not inside any input folder" in result.output


def test_the_password_comes_from_a_file_and_is_never_printed(hot, tmp_path, pg_cluster, pg_url, monkeypatch, caplog):
    secret_file = tmp_path / "ledger-password"
    secret_file.write_text(PASSWORD + "\n")
    config_file = _config_file(hot, tmp_path, ledger={"url": pg_cluster.password_url(),
                                                      "password_file": str(secret_file)})
    caplog.set_level(logging.DEBUG)
    shown = run("check-config", "-c", str(config_file))
    assert PASSWORD not in shown
    status = run("ledger", "status", "-c", str(config_file))
    assert status.startswith("ledger: postgresql ") and PASSWORD not in status

    # The whole URL with its password in $BSHMD_LEDGER_URL: used, and shown as ***.
    monkeypatch.setenv("BSHMD_LEDGER_URL", pg_cluster.password_url(with_password=True))
    plain = _config_file(hot, tmp_path, "plain.yaml")
    status = run("ledger", "status", "-c", str(plain), "--json")
    assert PASSWORD not in status and json.loads(status)["database"].startswith("postgresql://bshmd_pw:***@")

    # A wrong password: a clear error that names the database, still without any password.
    monkeypatch.delenv("BSHMD_LEDGER_URL")
    secret_file.write_text("wrong-password")
    config = load_config(config_file).model_copy(update={"ledger": load_config(config_file).ledger.model_copy(
        update={"retry_seconds": 0.5})})
    with pytest.raises(LedgerUnavailable) as raised:
        open_ledger(config)
    assert "bshmd_pw" in str(raised.value) and PASSWORD not in str(raised.value)
    assert "wrong-password" not in str(raised.value)
    assert not [r for r in caplog.records if PASSWORD in r.getMessage() or "wrong-password" in r.getMessage()]


def test_systemd_credentials_directory_supplies_the_password(tmp_path, pg_cluster, pg_url, hot, monkeypatch):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "ledger-password").write_text(PASSWORD)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    config = make_config(hot, defaults=QUICK_INGEST, ledger={"url": pg_cluster.password_url()})
    ledger = open_ledger(config)
    try:
        assert ledger.dialect == "postgresql" and ledger.now() > 0
    finally:
        ledger.close()
