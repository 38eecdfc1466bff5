"""The configuration file: one YAML document validated into typed, frozen objects.

Loading happens in two steps, as in uvicorn's ``Config``: pydantic checks each key's type
and range, then ``_check_folder_layout`` checks what only makes sense across keys (an output
folder inside its input would make the daemon eat its own results). Every problem becomes
one line that names the key path, the bad value and what is expected.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
)

from bshmd.errors import ConfigError

CONFIG_ENV = "BSHMD_CONFIG"

DEFAULT_EXTENSIONS = (
    "jpg", "jpeg", "png", "tif", "tiff", "webp", "bmp", "heic", "heif",
    # camera RAW (bshmd.decode.raw)
    "dng", "cr2", "cr3", "nef", "arw", "raf", "orf", "rw2", "pef", "srw",
)
DEFAULT_MODEL_ID = "damo/cv_unet_image-matting"


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Relative paths are relative to the config file's folder, not to the working directory."""
    base = (info.context or {}).get("base_dir")
    path = value.expanduser()
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return Path(os.path.normpath(path))


def _parse_mode(value: Any) -> int:
    # YAML reads an unquoted 0644 as the decimal 644; accept the octal string and the int form.
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ValueError("expected an octal file mode such as '0644'")
    if not re.fullmatch(r"0?o?[0-7]{3,4}", text):
        raise ValueError("expected an octal file mode such as '0644'")
    return int(text.replace("o", ""), 8)


def _check_colour(value: str) -> str:
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", value):
        raise ValueError("expected a colour as '#rrggbb'")
    return value.lower()


def _check_extension(value: str) -> str:
    ext = value.lower().lstrip(".")
    if not re.fullmatch(r"[a-z0-9]+", ext):
        raise ValueError("expected a file extension such as 'jpg'")
    return ext


ResolvedPath = Annotated[Path, AfterValidator(_resolve_path)]
Seconds = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
FileMode = Annotated[int, BeforeValidator(_parse_mode), Field(ge=0, le=0o7777)]
Colour = Annotated[str, AfterValidator(_check_colour)]
Extension = Annotated[str, AfterValidator(_check_extension)]


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(Section):
    path: ResolvedPath | None = None  # a local folder holding tf_graph.pb; wins over `id`
    id: str = DEFAULT_MODEL_ID
    revision: str | None = None
    cache_dir: ResolvedPath = Path("/var/lib/bshmd/model-cache")
    sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None = None
    fetch_timeout_seconds: Seconds = 30.0
    max_side: Annotated[int, Field(ge=64)] = 2000
    device: Annotated[str, Field(pattern=r"^(auto|cpu|gpu(:\d+)?)$")] = "auto"
    gpu_memory_fraction: Annotated[float, Field(gt=0, le=1)] | None = None
    intra_op_threads: Annotated[int, Field(ge=0)] = 0
    inter_op_threads: Annotated[int, Field(ge=0)] = 0
    warmup: bool = True


def _check_formats(formats: tuple[str, ...]) -> tuple[str, ...]:
    # AVIF needs a Pillow built with libavif (its wheels since 11.3); say so at start, not per file.
    if "avif" in formats:
        from PIL import features

        if not features.check("avif"):
            raise ValueError("avif needs Pillow built with AVIF support (Pillow >= 11.3 wheels)")
    return formats


OutputFormat = Literal["cutout", "alpha", "composite", "webp", "tiff", "psd", "avif"]
MAX_CANVAS_SIDE = 10000  # px: what marketplaces accept, and under WebP's 16383 limit
CanvasSide = Annotated[int, Field(ge=1, le=MAX_CANVAS_SIDE)]


class LayoutConfig(Section):
    """Where the subject goes in the output (see bshmd.outputs.layout)."""

    trim: bool = True  # crop to the subject: alpha above `threshold`
    threshold: Annotated[int, Field(ge=0, le=254)] = 10
    margin: Annotated[float, Field(ge=0, lt=0.5)] = 0.0  # share of the canvas's shorter side
    canvas: tuple[CanvasSide, CanvasSide] | None = None  # width, height; None: the subject's size
    align: Literal["center", "bottom"] = "center"


class OutputsConfig(Section):
    formats: Annotated[
        tuple[OutputFormat, ...], Field(min_length=1), AfterValidator(_check_formats)
    ] = ("cutout",)
    composite_format: Literal["jpeg", "png"] = "jpeg"
    background: Colour = "#ffffff"
    background_image: ResolvedPath | None = None
    feather_px: Annotated[float, Field(ge=0, le=50)] = 0.0
    png_compression: Annotated[int, Field(ge=0, le=9)] = 2  # see bshmd.outputs.png
    clear_transparent: bool = True  # black under alpha 0 in cut-outs: smaller, faster files
    webp_quality: Annotated[int, Field(ge=1, le=100)] = 90
    jpeg_quality: Annotated[int, Field(ge=1, le=100)] = 92
    avif_quality: Annotated[int, Field(ge=1, le=100)] = 80
    tiff_compression: Literal["deflate", "none"] = "deflate"
    # See bshmd.outputs.colour and bshmd.outputs.metadata.
    color: Literal["keep", "srgb"] = "keep"  # the photo's own profile and pixels, or sRGB for the web
    metadata: Literal["keep", "strip"] = "keep"  # strip: the colour profile only (no GPS, no names)
    bit_depth: Literal[8, "keep"] = 8  # keep: 16-bit inputs give 16-bit cutout and tiff results
    jpeg_max_bytes: Annotated[int, Field(ge=1024)] | None = None  # lower the quality until it fits
    # exact: a plain #ffffff-like background decodes exactly in the JPEG (bshmd.outputs.jpeg),
    # at 1.4-2.6x the bytes; plain: the smaller YCbCr file, a few levels off next to the subject.
    jpeg_background: Literal["exact", "plain"] = "exact"
    # decontaminate: the subject's colour at soft edges (bshmd.outputs.edges), for what shows the
    # subject over something new; none: the photo's colour, backdrop fringe included.
    edges: Literal["none", "decontaminate"] = "decontaminate"
    layout: LayoutConfig | None = None  # None: the photo's own framing
    file_mode: FileMode = 0o644
    group: str | None = None


class GateConfig(Section):
    """Quality gate thresholds (shares of the frame; see bshmd.pipeline.gate).

    Calibrated on the real BSHM matte of a full-length studio portrait (foreground 0.082,
    uncertain 0.0087): min_foreground leaves a 4x margin below it, max_uncertain a 17x margin
    above it (uniform noise measures 0.90).
    """

    enabled: bool = True
    min_input_side: Annotated[int, Field(ge=1)] = 64
    min_foreground: Fraction = 0.02
    max_foreground: Fraction = 0.90
    max_uncertain: Fraction = 0.15


OnSuccess = Literal["keep", "move", "delete"]
WatchMode = Literal["auto", "events", "poll"]
RawPairs = Literal["jpeg", "raw", "both"]  # which half of a RAW+JPEG pair of one shot is processed


def _partial(model: type[Section]) -> type[Section]:
    """The same section with every key optional: a folder's override of the defaults."""
    fields: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if field.metadata:
            annotation = Annotated[(annotation, *field.metadata)]  # keep ranges and patterns
        fields[name] = (Optional[annotation], None)  # noqa: UP045 - runtime construction
    return create_model(f"{model.__name__}Override", __base__=Section, **fields)


OutputsOverride = _partial(OutputsConfig)
GateOverride = _partial(GateConfig)


class FolderConfig(Section):
    input: ResolvedPath
    output: ResolvedPath
    quarantine: ResolvedPath
    done: ResolvedPath | None = None  # where inputs go with on_success: move
    rejected: ResolvedPath | None = None  # where reviewers' rejections go
    watch: WatchMode = "auto"
    outputs: OutputsOverride | None = None  # type: ignore[valid-type]
    gate: GateOverride | None = None  # type: ignore[valid-type]
    on_success: OnSuccess | None = None
    raw_pairs: RawPairs | None = None
    # Globs of names (or, with a "/", relative paths) never to process, beside the built-in list.
    ignore: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    # How long a client may see stale sizes and mtimes here (NFS/SMB/FUSE attribute cache);
    # None: read from the mount's options (bshmd.fs.mounts.attribute_cache).
    attribute_cache_seconds: Annotated[float, Field(ge=0, le=3600)] | None = None

    @property
    def done_dir(self) -> Path:
        return self.done or self.input.parent / (self.input.name + ".done")

    @property
    def rejected_dir(self) -> Path:
        return self.rejected or self.quarantine.parent / (self.quarantine.name + ".rejected")

    @property
    def state_dir(self) -> Path:
        """Claims and done-markers live beside the results, on the same (shared) filesystem."""
        return self.output / ".bshmd"


class BatchConfig(Section):
    max_size: Annotated[int, Field(ge=1, le=256)] = 4
    max_wait_ms: Annotated[float, Field(gt=0)] = 200.0


# A worker count, or "auto": one per CPU the process may use (bshmd.cpus.usable_cpus).
Workers = Annotated[int, Field(ge=1, le=64)] | Literal["auto"]


class PipelineConfig(Section):
    decode_workers: Workers = "auto"
    write_workers: Workers = "auto"
    # Decoded pixels in flight (decoding to written), in megapixels: bounds memory by bytes
    # whatever the files' sizes; one image larger than this still goes through, alone.
    max_inflight_megapixels: Annotated[float, Field(gt=0)] = 50.0
    queue_size: Annotated[int, Field(ge=1, le=4096)] = 16
    decode_timeout_seconds: Seconds = 60.0
    write_timeout_seconds: Seconds = 60.0
    worker_niceness: Annotated[int, Field(ge=0, le=19)] = 5  # decode/write threads yield to inference
    # A file given back because its quarantine or output folder fails waits this long before
    # its next attempt, doubling per failure in a row up to retry_max_seconds.
    retry_base_seconds: Seconds = 5.0
    retry_max_seconds: Seconds = 300.0

    @property
    def decode_worker_count(self) -> int:
        return _worker_count(self.decode_workers)

    @property
    def write_worker_count(self) -> int:
        return _worker_count(self.write_workers)


def _worker_count(value: int | str) -> int:
    from bshmd.cpus import usable_cpus

    return min(usable_cpus(), 64) if value == "auto" else int(value)


class LimitsConfig(Section):
    max_pixels: Annotated[int, Field(ge=1)] = 100_000_000
    max_file_bytes: Annotated[int, Field(ge=1)] = 500 * 1024 * 1024


class ClaimsConfig(Section):
    lease_seconds: Seconds = 60.0


def _check_ledger_url(value: str | None) -> str | None:
    if value is not None and not re.match(r"postgres(ql)?://", value):
        raise ValueError("expected a PostgreSQL URL such as 'postgresql://bshmd@db.example/bshmd' "
                         "(leave it unset for the SQLite ledger in state_dir)")
    return value


class LedgerConfig(Section):
    """Where the job ledger lives: SQLite in ``state_dir`` (one host), or PostgreSQL (several)."""

    url: Annotated[str | None, AfterValidator(_check_ledger_url)] = None  # $BSHMD_LEDGER_URL wins
    password_file: ResolvedPath | None = None  # else systemd's credential 'ledger-password'
    retry_seconds: Seconds = 15.0  # how long a lost database is retried before files wait


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    journald: Literal["auto", "on", "off"] = "auto"


class HttpConfig(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 9464
    token: Annotated[str, Field(min_length=16)] | None = None


class Config(Section):
    model: ModelConfig = ModelConfig()
    folders: Annotated[tuple[FolderConfig, ...], Field(min_length=1)]
    settle_seconds: Seconds = 2.0
    # A file that reads as cut short (or empty) while its mtime is younger than this is still
    # being copied: it goes back to settling instead of to quarantine. 0: quarantine at once.
    truncated_grace_seconds: Annotated[float, Field(ge=0)] = 120.0
    raw_pairs: RawPairs = "jpeg"
    poll_seconds: Seconds = 2.0
    rescan_seconds: Seconds = 300.0
    extensions: Annotated[tuple[Extension, ...], Field(min_length=1)] = DEFAULT_EXTENSIONS
    instance_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")] | None = None
    claims: ClaimsConfig = ClaimsConfig()
    # This host's own state: the SQLite ledger (ledger.db). Default (bshmd/ledger/statedir.py): $BSHMD_STATE_DIR,
    # systemd's $STATE_DIRECTORY, /var/lib/bshmd for root, else $XDG_STATE_HOME/bshmd or ~/.local/state/bshmd.
    state_dir: ResolvedPath | None = None
    ledger: LedgerConfig = LedgerConfig()
    batch: BatchConfig = BatchConfig()
    pipeline: PipelineConfig = PipelineConfig()
    limits: LimitsConfig = LimitsConfig()
    outputs: OutputsConfig = OutputsConfig()
    gate: GateConfig = GateConfig()
    on_success: OnSuccess = "keep"
    shutdown_timeout: Seconds = 30.0
    # Create missing input, output and quarantine folders at start (the quick start's ./hot);
    # off for production, where a missing share must not be replaced by an empty local folder.
    create_folders: bool = False
    logging: LoggingConfig = LoggingConfig()
    http: HttpConfig = HttpConfig()

    # Set by load_config; not a YAML key.
    source: Path | None = Field(default=None, exclude=True)

    @property
    def effective_instance_id(self) -> str:
        return self.instance_id or default_instance_id()

    def outputs_for(self, folder: FolderConfig) -> OutputsConfig:
        return _merge(self.outputs, folder.outputs)

    def gate_for(self, folder: FolderConfig) -> GateConfig:
        return _merge(self.gate, folder.gate)

    def on_success_for(self, folder: FolderConfig) -> OnSuccess:
        return folder.on_success or self.on_success

    def raw_pairs_for(self, folder: FolderConfig) -> RawPairs:
        return folder.raw_pairs or self.raw_pairs


def _merge(defaults: Section, override: Section | None) -> Any:
    if override is None:
        return defaults
    changes = override.model_dump(exclude_none=True)
    return type(defaults).model_validate({**defaults.model_dump(), **changes})


def default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


# --- loading -------------------------------------------------------------------------------


def config_path_from(option: str | os.PathLike[str] | None) -> Path:
    """The file named by ``-c``, else by ``$BSHMD_CONFIG``; neither is a usage error."""
    if option:
        return Path(option)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    raise ConfigError(f"no configuration file: pass -c FILE or set {CONFIG_ENV}")


def load_config(path: str | os.PathLike[str]) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{path}: cannot read the configuration file: {reason}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from exc
    return parse_config(data, base_dir=path.resolve().parent, source=path)


def parse_config(data: Any, *, base_dir: Path, source: Path | None = None) -> Config:
    where = f"{source}: " if source else ""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}expected a mapping of keys at the top level, got {_short(data)}")
    try:
        config = Config.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError("\n".join(where + line for line in _describe(exc))) from exc
    problems = list(_check_folder_layout(config.folders))
    if problems:
        raise ConfigError("\n".join(where + line for line in problems))
    return config.model_copy(update={"source": source})


def _describe(exc: ValidationError) -> Iterable[str]:
    errors = exc.errors(include_url=False)
    locations = [tuple(error["loc"]) for error in errors]
    for error in errors:
        loc = tuple(error["loc"])
        # A list whose only item failed also fails its own length check: report the item alone.
        if any(len(other) > len(loc) and other[: len(loc)] == loc for other in locations):
            continue
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        kind = error["type"]
        if kind == "missing":
            yield f"{key}: missing; this key is required"
        elif kind == "extra_forbidden":
            parent = _model_at(error["loc"][:-1])
            allowed = ", ".join(parent.model_fields) if parent else "see etc/bshmd.yaml"
            yield f"{key}: unknown key; expected one of: {allowed}"
        else:
            message = error["msg"].removeprefix("Value error, ")
            yield f"{key} = {_short(error.get('input'))}: {message}"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The section model found by following a key path from the top (for 'allowed keys')."""
    model: type[BaseModel] = Config
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        candidates = [field.annotation, *getattr(field.annotation, "__args__", ())]
        for candidate in candidates:
            inner = getattr(candidate, "__args__", (candidate,))
            found = next((c for c in (candidate, *inner) if isinstance(c, type) and issubclass(c, BaseModel)), None)
            if found:
                model = found
                break
        else:
            return None
    return model


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _check_folder_layout(folders: tuple[FolderConfig, ...]) -> Iterable[str]:
    outputs: dict[Path, int] = {}
    for index, folder in enumerate(folders):
        key = f"folders.{index}"
        for name in ("output", "quarantine", "done", "rejected"):
            path = getattr(folder, name)
            if path is not None and _is_within(path, folder.input):
                yield (
                    f"{key}.{name} = '{path}': is inside its input folder '{folder.input}'; "
                    "expected a folder outside it (the daemon would process its own results)"
                )
        if folder.quarantine == folder.output:
            yield f"{key}.quarantine = '{folder.quarantine}': is the output folder; expected a separate folder"
        if any(folder.input != root and _is_within(folder.input, root) for root in (folder.output, folder.quarantine)):
            yield f"{key}.input = '{folder.input}': lies inside its output or quarantine folder; expected it outside"
        if folder.output in outputs:
            yield (
                f"{key}.output = '{folder.output}': already the output of folders.{outputs[folder.output]}; "
                "expected each folders entry to have its own output"
            )
        outputs.setdefault(folder.output, index)
        for other_index, other in enumerate(folders[:index]):
            if _is_within(folder.input, other.input) or _is_within(other.input, folder.input):
                yield (
                    f"{key}.input = '{folder.input}': overlaps folders.{other_index}.input '{other.input}'; "
                    "expected input folders that do not contain each other"
                )


def dump_effective(config: Config) -> str:
    """The configuration with every default filled in, as YAML (for ``check-config``)."""
    data = config.model_dump(mode="json", exclude={"source"})
    data["instance_id"] = config.instance_id  # None means hostname-pid at run time
    if data["ledger"]["url"]:
        from bshmd.ledger.backend import redact_url

        data["ledger"]["url"] = redact_url(data["ledger"]["url"])  # never print a password
    for folder_data, folder in zip(data["folders"], config.folders, strict=True):
        folder_data["outputs"] = config.outputs_for(folder).model_dump(mode="json")
        folder_data["gate"] = config.gate_for(folder).model_dump(mode="json")
        folder_data["on_success"] = config.on_success_for(folder)
        folder_data["raw_pairs"] = config.raw_pairs_for(folder)
        folder_data["done"] = str(folder.done_dir)
        folder_data["rejected"] = str(folder.rejected_dir)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
