"""The colour, metadata and bit-depth settings: defaults, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bshmd.config import load_config
from bshmd.errors import ConfigError


def _load(tmp_path: Path, outputs: str) -> object:
    path = tmp_path / "bshmd.yaml"
    path.write_text(f"folders:\n  - {{input: in, output: out, quarantine: q}}\noutputs: {outputs}\n")
    return load_config(path)


def test_defaults_keep_the_profile_and_metadata_at_8_bits(tmp_path: Path) -> None:
    outputs = _load(tmp_path, "{}").outputs
    assert (outputs.color, outputs.metadata, outputs.bit_depth, outputs.tiff_compression) == ("keep", "keep", 8,
                                                                                              "deflate")


def test_the_new_formats_and_settings_are_accepted(tmp_path: Path) -> None:
    outputs = _load(tmp_path, "{formats: [tiff, psd, avif], color: srgb, metadata: strip, bit_depth: keep, "
                              "avif_quality: 60, tiff_compression: none}").outputs
    assert outputs.formats == ("tiff", "psd", "avif") and outputs.bit_depth == "keep"


@pytest.mark.parametrize(("setting", "key"), [
    ("{bit_depth: 16}", "outputs.bit_depth"),
    ("{color: adobe}", "outputs.color"),
    ("{metadata: some}", "outputs.metadata"),
    ("{formats: [heic]}", "outputs.formats"),
    ("{avif_quality: 0}", "outputs.avif_quality"),
    ("{tiff_compression: lzw}", "outputs.tiff_compression"),
])
def test_a_bad_value_names_its_key(tmp_path: Path, setting: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, setting)
    assert key in str(caught.value)
