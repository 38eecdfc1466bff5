"""Shell completion through click's own mechanism (README, Shell completion)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def complete(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # The console script's name is what click derives the variable from: run it as `bshmd`.
    code = "import sys; from bshmd.cli import main; sys.exit(main(prog_name='bshmd'))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


@pytest.mark.parametrize(("shell", "marker"), [("bash", "complete -o nosort -F"), ("zsh", "#compdef bshmd"),
                                               ("fish", "complete --no-files --command bshmd")])
def test_each_shell_gets_a_completion_script(shell: str, marker: str) -> None:
    result = complete({"_BSHMD_COMPLETE": f"{shell}_source"})
    assert result.returncode == 0, result.stderr
    assert marker in result.stdout


def test_bash_completes_commands_and_options() -> None:
    commands = complete({"_BSHMD_COMPLETE": "bash_complete", "COMP_WORDS": "bshmd do", "COMP_CWORD": "1"})
    assert commands.stdout.split() == ["plain,doctor"]
    options = complete({"_BSHMD_COMPLETE": "bash_complete", "COMP_WORDS": "bshmd doctor --", "COMP_CWORD": "2"})
    assert {"plain,--config", "plain,--user", "plain,--help"} <= set(options.stdout.split())
