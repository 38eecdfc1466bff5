"""``bshmd doctor``'s runtime check: is the configured runtime there, with its providers and export?

Returns plain (status, name, detail, fix) rows so the doctor can wrap them in its own records.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bshmd.errors import BshmdError

if TYPE_CHECKING:
    from bshmd.config import ModelConfig

Row = tuple[str, str, str, str]


def runtime_checks(model_cfg: ModelConfig) -> list[Row]:
    runtime, precision = model_cfg.runtime, model_cfg.precision
    if runtime == "tensorflow":
        return [("OK", "runtime", f"tensorflow, precision {precision}, device {model_cfg.device}", "")]
    rows: list[Row] = []
    try:
        if runtime == "onnxruntime":
            from bshmd.engine.ort import import_ort

            available = import_ort().get_available_providers()
            missing = [name for name in model_cfg.providers if name not in available]
            rows.append(("OK", "runtime", f"onnxruntime, precision {precision}, providers offered: "
                         f"{', '.join(available)}", ""))
            if missing:
                rows.append(("FAIL" if model_cfg.strict else "WARN", "providers",
                             f"{', '.join(missing)} asked for but not offered "
                             f"({'refuses to start' if model_cfg.strict else 'the next one is used'})",
                             "install onnxruntime-gpu with CUDA and TensorRT, or change model.providers"))
        else:
            from bshmd.engine.ov import import_ov

            devices = import_ov().Core().available_devices
            rows.append(("OK", "runtime", f"openvino, precision {precision}, devices: {', '.join(devices)}", ""))
    except BshmdError as exc:
        return [("FAIL", "runtime", str(exc), f"install the extra for {runtime}")]
    rows.append(_export_row(model_cfg))
    return rows


def _export_row(model_cfg: ModelConfig) -> Row:
    from bshmd.engine.export import find_export
    from bshmd.engine.loader import GRAPH_FILE
    from bshmd.engine.source import cached_model_dir

    try:
        folder = Path(model_cfg.path) if model_cfg.path is not None else cached_model_dir(model_cfg)
        found = find_export(model_cfg, folder / GRAPH_FILE, model_cfg.runtime, model_cfg.precision)
    except BshmdError as exc:
        return ("FAIL", "export", str(exc), "run the command named above")
    return ("OK", "export", f"{found.folder} (largest matte difference from TensorFlow: "
            f"{found.manifest.get('max_matte_difference', '?')})", "")
