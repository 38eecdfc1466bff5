from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bshmd.config import INSTANCE_ENV, Config, config_path_from, dump_effective, load_config
from bshmd.errors import EXIT_USAGE, ConfigError
from bshmd.fs.paths import is_within

GOOD = """
model:
  path: model
folders:
  - input: in
    output: out
    quarantine: quarantine
settle_seconds: 2.0
"""


def write(tmp_path: Path, text: str, name: str = "bshmd.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_minimal_config_resolves_relative_paths_against_its_folder(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert isinstance(config, Config)
    assert config.model.path == tmp_path / "model"
    folder = config.folders[0]
    assert (folder.input, folder.output, folder.quarantine) == (tmp_path / "in", tmp_path / "out", tmp_path / "quarantine")
    assert config.settle_seconds == 2.0
    assert config.extensions == ("jpg", "jpeg", "png", "tif", "tiff", "webp", "bmp", "heic", "heif",
                                 "dng", "cr2", "cr3", "nef", "arw", "raf", "orf", "rw2", "pef", "srw")
    assert (config.truncated_grace_seconds, config.raw_pairs) == (120.0, "jpeg")
    assert (folder.ignore, folder.attribute_cache_seconds, folder.raw_pairs) == ((), None, None)


def test_example_config_is_valid() -> None:
    config = load_config(Path(__file__).resolve().parent.parent / "etc" / "bshmd.yaml")
    assert config.folders[0].input == Path("/srv/hot/in")
    assert config.outputs.file_mode == 0o644


def test_folder_profile_overrides_only_what_it_names(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD + """
outputs: {formats: [cutout], jpeg_quality: 80}
gate: {min_foreground: 0.05}
"""))
    folder = config.folders[0].model_copy()
    assert config.outputs_for(folder).jpeg_quality == 80
    text = GOOD.replace("    quarantine: quarantine\n",
                        "    quarantine: quarantine\n    outputs: {formats: [composite], background: '#00FF00'}\n"
                        "    gate: {max_uncertain: 0.5}\n    on_success: move\n")
    config = load_config(write(tmp_path, text))
    folder = config.folders[0]
    outputs = config.outputs_for(folder)
    assert outputs.formats == ("composite",)
    assert outputs.background == "#00ff00"
    assert outputs.png_compression == 2  # inherited default
    assert config.gate_for(folder).max_uncertain == 0.5
    assert config.gate_for(folder).min_foreground == config.gate.min_foreground
    assert config.on_success_for(folder) == "move"


def test_file_mode_accepts_octal_string_and_rejects_nonsense(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD + "outputs: {file_mode: '0664'}\n"))
    assert config.outputs.file_mode == 0o664
    with pytest.raises(ConfigError, match=r"outputs\.file_mode"):
        load_config(write(tmp_path, GOOD + "outputs: {file_mode: 'rw-r--r--'}\n"))


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BSHMD_CONFIG", str(tmp_path / "x.yaml"))
    assert config_path_from(None) == tmp_path / "x.yaml"
    assert config_path_from(tmp_path / "y.yaml") == tmp_path / "y.yaml"
    monkeypatch.delenv("BSHMD_CONFIG")
    with pytest.raises(ConfigError, match="BSHMD_CONFIG"):
        config_path_from(None)


# Each malformed configuration, and the key path its one-line message must name.
MALFORMED = {
    "missing_folders": ("model: {path: m}\n", "folders: missing"),
    "missing_output": ("folders:\n  - {input: in, quarantine: q}\n", "folders.0.output: missing"),
    "unknown_top_key": (GOOD + "setle_seconds: 3\n", "setle_seconds: unknown key"),
    "unknown_nested_key": (GOOD + "model: {pathh: x}\n", "model.pathh: unknown key"),
    "wrong_type_duration": (GOOD.replace("2.0", "soon"), "settle_seconds = 'soon'"),
    "negative_duration": (GOOD.replace("2.0", "-1"), "settle_seconds = -1"),
    "zero_duration": (GOOD + "rescan_seconds: 0\n", "rescan_seconds = 0"),
    "zero_batch_wait": (GOOD + "batch: {max_wait_ms: 0}\n", "batch.max_wait_ms = 0"),
    "output_equals_input": (GOOD.replace("output: out", "output: in"), "folders.0.output = "),
    "output_inside_input": (GOOD.replace("output: out", "output: in/results"), "folders.0.output = "),
    "quarantine_inside_input": (GOOD.replace("quarantine: quarantine", "quarantine: in/q"), "folders.0.quarantine = "),
    "shared_output": (GOOD.replace("settle_seconds", "  - {input: in2, output: out, quarantine: q2}\nsettle_seconds"),
                      "folders.1.output = "),
    "overlapping_inputs": (GOOD.replace("settle_seconds", "  - {input: in/sub, output: o2, quarantine: q2}\nsettle_seconds"),
                           "folders.1.input = "),
    "input_inside_output": (GOOD.replace("input: in", "input: out/in"), "folders.0.input = "),
    "folders_not_a_list": ("folders: in\n", "folders = 'in'"),
    "bad_format": (GOOD + "outputs: {formats: [gif]}\n", "outputs.formats.0 = 'gif'"),
    "bad_colour": (GOOD + "outputs: {background: white}\n", "outputs.background = 'white'"),
    "bad_watch_mode": (GOOD.replace("quarantine: quarantine", "quarantine: quarantine\n    watch: inotify"), "folders.0.watch = 'inotify'"),
    "fraction_over_one": (GOOD + "gate: {min_foreground: 2}\n", "gate.min_foreground = 2"),
    "top_level_list": ("- a\n- b\n", "expected a mapping"),
    "bad_yaml": ("folders: [\n", "not valid YAML"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_config_gives_one_line_naming_the_key(tmp_path: Path, case: str) -> None:
    text, expected = MALFORMED[case]
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert expected in message
    assert len(message.splitlines()) == 1, message
    assert str(path) in message


def test_unreadable_config_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")
    if os.geteuid() != 0:  # root reads everything; the missing file above covers it
        path = write(tmp_path, GOOD)
        path.chmod(0)
        with pytest.raises(ConfigError, match="cannot read"):
            load_config(path)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bshmd", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60)


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_check_config_exits_2_with_one_line(tmp_path: Path, case: str) -> None:
    from click.testing import CliRunner

    from bshmd.cli import main

    text, expected = MALFORMED[case]
    result = CliRunner().invoke(main, ["check-config", "-c", str(write(tmp_path, text))])
    assert result.exit_code == EXIT_USAGE
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_check_config_in_a_real_process_exits_2(tmp_path: Path) -> None:
    text, expected = MALFORMED["output_inside_input"]
    result = run_cli("check-config", "-c", str(write(tmp_path, text)))
    assert result.returncode == EXIT_USAGE
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_check_config_prints_effective_configuration(tmp_path: Path) -> None:
    result = run_cli("check-config", env={"BSHMD_CONFIG": str(write(tmp_path, GOOD))})
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    assert f"input: {tmp_path / 'in'}" in result.stdout
    assert "max_side: 2000" in result.stdout  # defaults are filled in


def test_missing_config_option_is_usage_error() -> None:
    env = {k: v for k, v in os.environ.items() if k != "BSHMD_CONFIG"}
    result = subprocess.run([sys.executable, "-m", "bshmd", "check-config"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == EXIT_USAGE
    assert "BSHMD_CONFIG" in result.stderr


def test_the_lease_is_the_ledgers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = load_config(write(tmp_path, GOOD + "ledger:\n  lease_seconds: 12\n"))
    assert config.ledger.lease_seconds == 12.0
    assert load_config(write(tmp_path, GOOD)).ledger.lease_seconds == 60.0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not hasattr(config, "claims")  # readers of the old section fail loudly


def test_the_old_lease_key_still_loads_with_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, GOOD + "ledger:\n  retry_seconds: 5\nclaims:\n  lease_seconds: 7\n")
    with caplog.at_level(logging.WARNING, logger="bshmd.config"):
        config = load_config(path)
    assert (config.ledger.lease_seconds, config.ledger.retry_seconds) == (7.0, 5.0)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "claims.lease_seconds" in warnings[0].getMessage()
    assert "ledger.lease_seconds" in warnings[0].getMessage()
    # Without a ledger section too; the effective configuration shows only the new key.
    config = load_config(write(tmp_path, GOOD + "claims: {lease_seconds: 9}\n"))
    assert config.ledger.lease_seconds == 9.0
    assert "claims" not in dump_effective(config) and "lease_seconds: 9.0" in dump_effective(config)


def test_the_old_lease_key_is_named_when_its_value_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD + "claims: {lease_seconds: -1}\n"))
    assert "claims.lease_seconds = -1" in str(caught.value)
    with pytest.raises(ConfigError, match=r"claims: unknown key"):
        load_config(write(tmp_path, GOOD + "claims: {lease_seconds: 5, other: 1}\n"))


def test_both_lease_keys_are_a_config_error_naming_both(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "claims: {lease_seconds: 30}\nledger: {lease_seconds: 40}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "claims.lease_seconds" in message and "ledger.lease_seconds" in message
    assert len(message.splitlines()) == 1


def test_the_instance_id_is_the_files_then_the_environments_then_host_pid(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INSTANCE_ENV, raising=False)
    plain = load_config(write(tmp_path, GOOD))
    assert plain.effective_instance_id == f"{socket.gethostname()}-{os.getpid()}"
    monkeypatch.setenv(INSTANCE_ENV, "gpu1")
    assert plain.effective_instance_id == "gpu1"
    assert load_config(write(tmp_path, GOOD + "instance_id: studio-a\n")).effective_instance_id == "studio-a"
    monkeypatch.setenv(INSTANCE_ENV, "no spaces/here")
    with pytest.raises(ConfigError, match=r"\$BSHMD_INSTANCE_ID = 'no spaces/here'"):
        plain.effective_instance_id  # noqa: B018 - the property is what is tested


def test_paths_within_compare_whole_components(tmp_path: Path) -> None:
    assert is_within(tmp_path / "in" / "a", tmp_path / "in")
    assert is_within(tmp_path / "in", tmp_path / "in")
    assert not is_within(tmp_path / "in2", tmp_path / "in")
    assert is_within("/anything", "/")
    (tmp_path / "link").symlink_to("/etc")
    assert not is_within(tmp_path / "link" / "passwd", tmp_path)
    assert is_within(tmp_path / "link" / "passwd", tmp_path, follow_links=False)
