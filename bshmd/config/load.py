"""Reading the configuration file: YAML to a validated ``Config``, every problem one line.

Loading happens in two steps, as in uvicorn's ``Config``: pydantic checks each key's type
and range (sections.py), then ``check_folder_layout`` checks what only makes sense across
keys (layout.py). Every problem becomes one line that names the key path, the bad value and
what is expected. Keys that were renamed still load, with one warning naming the new key.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from bshmd.config.layout import check_folder_layout
from bshmd.config.redact import redact_url
from bshmd.config.sections import Config
from bshmd.errors import ConfigError

log = logging.getLogger("bshmd.config")

CONFIG_ENV = "BSHMD_CONFIG"

# Old key path → new key path. The claims section named claim files that no longer exist:
# the lease is the ledger's.
RENAMED_KEYS = {("claims", "lease_seconds"): ("ledger", "lease_seconds")}


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
    data, moved = _rename_old_keys(data, where)
    try:
        config = Config.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError("\n".join(where + line for line in _describe(exc, moved))) from exc
    problems = list(check_folder_layout(config.folders))
    if problems:
        raise ConfigError("\n".join(where + line for line in problems))
    return config.model_copy(update={"source": source})


def _rename_old_keys(data: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, str]]:
    """``data`` with renamed keys moved to their new place, and new key → old key for errors."""
    moved: dict[str, str] = {}
    for (old_section, old_key), (new_section, new_key) in RENAMED_KEYS.items():
        section = data.get(old_section)
        if not isinstance(section, dict) or old_key not in section:
            continue
        old, new = f"{old_section}.{old_key}", f"{new_section}.{new_key}"
        target = data.get(new_section)
        if target is None:
            target = {}
        if isinstance(target, dict) and new_key in target:
            raise ConfigError(f"{where}{old} and {new} are both set; expected {new} alone "
                              f"({old} is its old name)")
        log.warning("%s%s is deprecated; write it as %s", where, old, new)
        rest = {k: v for k, v in section.items() if k != old_key}
        data = {k: v for k, v in data.items() if k != old_section}
        if rest:
            data[old_section] = rest  # whatever else is there is reported as unknown
        if isinstance(target, dict):
            data[new_section] = {**target, new_key: section[old_key]}
        moved[new] = old
    return data, moved


def _describe(exc: ValidationError, moved: dict[str, str]) -> Iterable[str]:
    errors = exc.errors(include_url=False)
    locations = [tuple(error["loc"]) for error in errors]
    for error in errors:
        loc = tuple(error["loc"])
        # A list whose only item failed also fails its own length check: report the item alone.
        if any(len(other) > len(loc) and other[: len(loc)] == loc for other in locations):
            continue
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        key = moved.get(key, key)  # the key as the file spells it
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


def dump_effective(config: Config) -> str:
    """The configuration with every default filled in, as YAML (for ``check-config``)."""
    data = config.model_dump(mode="json", exclude={"source"})
    data["instance_id"] = config.instance_id  # None means $BSHMD_INSTANCE_ID, else hostname-pid, at run time
    if data["ledger"]["url"]:
        data["ledger"]["url"] = redact_url(data["ledger"]["url"])  # never print a password
    for folder_data, folder in zip(data["folders"], config.folders, strict=True):
        folder_data["outputs"] = config.outputs_for(folder).model_dump(mode="json")
        folder_data["gate"] = config.gate_for(folder).model_dump(mode="json")
        folder_data["on_success"] = config.on_success_for(folder)
        folder_data["raw_pairs"] = config.raw_pairs_for(folder)
        folder_data["done"] = str(folder.done_dir)
        folder_data["rejected"] = str(folder.rejected_dir)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
