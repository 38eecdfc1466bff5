"""``bshmd model export``: the command converts, compares at several sizes, prints, and the daemon's runtime finds it."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from bshmd.cli import main
from bshmd.config import ModelConfig
from bshmd.engine.export import MANIFEST, find_export


def test_model_export_writes_the_model_and_its_manifest(unet_dir: Path, tmp_path: Path) -> None:
    config_file = tmp_path / "bshmd.yaml"
    (tmp_path / "in").mkdir()
    config_file.write_text(yaml.safe_dump({
        "model": {"path": str(unet_dir), "export_dir": str(tmp_path / "exports"), "runtime": "onnxruntime"},
        "folders": [{"input": str(tmp_path / "in"), "output": str(tmp_path / "out"),
                     "quarantine": str(tmp_path / "q")}],
    }))
    result = CliRunner().invoke(main, ["model", "export", "-c", str(config_file), "--to", "onnx"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    folder = Path(lines[-1])
    assert (folder / "model.onnx").is_file()
    manifest = json.loads((folder / MANIFEST).read_text())
    assert len(manifest["comparison"]) == 5 and manifest["max_matte_difference"] <= 1
    assert "1920x1080: largest matte difference from TensorFlow" in result.output
    model_cfg = ModelConfig(path=unet_dir, export_dir=tmp_path / "exports", runtime="onnxruntime")
    assert find_export(model_cfg, unet_dir / "tf_graph.pb", "onnxruntime", "fp32").folder == folder
