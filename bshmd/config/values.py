"""The value types the configuration's keys share: paths, modes, colours, extensions, times."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo


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


def check_formats(formats: tuple[str, ...]) -> tuple[str, ...]:
    # AVIF needs a Pillow built with libavif (its wheels since 11.3); say so at start, not per file.
    if "avif" in formats:
        from PIL import features

        if not features.check("avif"):
            raise ValueError("avif needs Pillow built with AVIF support (Pillow >= 11.3 wheels)")
    return formats


def check_ledger_url(value: str | None) -> str | None:
    if value is not None and not re.match(r"postgres(ql)?://", value):
        raise ValueError("expected a PostgreSQL URL such as 'postgresql://bshmd@db.example/bshmd' "
                         "(leave it unset for the SQLite ledger in state_dir)")
    return value


ResolvedPath = Annotated[Path, AfterValidator(_resolve_path)]
Seconds = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
FileMode = Annotated[int, BeforeValidator(_parse_mode), Field(ge=0, le=0o7777)]
Colour = Annotated[str, AfterValidator(_check_colour)]
Extension = Annotated[str, AfterValidator(_check_extension)]
