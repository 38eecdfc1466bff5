from __future__ import annotations

import subprocess
import sys

from bshmd import __version__


def test_version() -> None:
    result = subprocess.run([sys.executable, "-m", "bshmd", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_help_does_not_import_heavy_libraries() -> None:
    # `bshmd --help` must be instant: heavy imports belong inside the commands that need them.
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from bshmd.cli import main\n"
        "r = CliRunner().invoke(main, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'hot folders' in r.output\n"
        "heavy = [m for m in ('tensorflow', 'cv2', 'numpy', 'modelscope', 'watchdog') if m in sys.modules]\n"
        "print(','.join(heavy) or 'none')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "none"


def test_every_subcommand_has_help() -> None:
    from click.testing import CliRunner

    from bshmd.cli import main

    runner = CliRunner()
    for args in (["run"], ["process"], ["check-config"], ["model", "fetch"], ["quarantine", "list"],
                 ["quarantine", "requeue"], ["quarantine", "purge"], ["status"], ["review"]):
        result = runner.invoke(main, [*args, "--help"])
        assert result.exit_code == 0, (args, result.output)
        assert "Usage:" in result.output
