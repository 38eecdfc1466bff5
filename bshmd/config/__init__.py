"""The configuration file: one YAML document validated into typed, frozen objects.

- sections.py: the pydantic models, one per mapping (``Config``, ``FolderConfig``, …);
- values.py: the value types they share (paths resolved against the file, modes, colours);
- layout.py: checks across keys (an output inside its input, overlapping inputs);
- load.py: reading the file, renamed keys, one line per problem naming the key;
- instance.py: this process's instance id; redact.py: passwords kept out of what is printed.
"""

from bshmd.config.instance import INSTANCE_ENV, default_instance_id, instance_id
from bshmd.config.load import CONFIG_ENV, config_path_from, dump_effective, load_config, parse_config
from bshmd.config.redact import redact_url
from bshmd.config.sections import (
    DEFAULT_EXTENSIONS,
    DEFAULT_MODEL_ID,
    MAX_CANVAS_SIDE,
    BatchConfig,
    Config,
    FolderConfig,
    GateConfig,
    GateOverride,
    HttpConfig,
    LayoutConfig,
    LedgerConfig,
    LimitsConfig,
    LoggingConfig,
    ModelConfig,
    OnSuccess,
    OutputFormat,
    OutputsConfig,
    OutputsOverride,
    PipelineConfig,
    RawPairs,
    Section,
    WatchMode,
    Workers,
)

__all__ = [
    "CONFIG_ENV", "DEFAULT_EXTENSIONS", "DEFAULT_MODEL_ID", "INSTANCE_ENV", "MAX_CANVAS_SIDE", "BatchConfig",
    "Config", "FolderConfig", "GateConfig", "GateOverride", "HttpConfig", "LayoutConfig", "LedgerConfig",
    "LimitsConfig", "LoggingConfig", "ModelConfig", "OnSuccess", "OutputFormat", "OutputsConfig",
    "OutputsOverride", "PipelineConfig", "RawPairs", "Section", "WatchMode", "Workers", "config_path_from",
    "default_instance_id", "dump_effective", "instance_id", "load_config", "parse_config", "redact_url",
]
