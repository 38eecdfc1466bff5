"""What ``<name>.reason.json`` holds, as a typed record, and how it is read and written.

``<name>.reason.json``::

    {"reason": "no_subject", "message": "...", "measured": {...}, "time": "2025-01-31T12:00:00Z",
     "version": "0.1.0", "instance": "host-1234", "input_root": "/srv/hot/in",
     "relpath": "studio/a.jpg", "folder": "/srv/hot/quarantine",
     "status": "quarantined" | "requeued" | "accepted" | "rejected",
     "history": [{"time": ..., "action": "quarantined", "by": "host-1234"}, ...],
     "matte": "a.jpg.matte.png" | null, "preview": "a.jpg.preview.png" | null,
     "input_missing": false}

Records written by earlier versions load as they are: a missing key takes its default, a key
this version does not know is kept (``extra``) and written back unchanged.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Any

REASON_SUFFIX = ".reason.json"
MATTE_SUFFIX = ".matte.png"
PREVIEW_SUFFIX = ".preview.png"
SIDECAR_SUFFIXES = (REASON_SUFFIX, MATTE_SUFFIX, PREVIEW_SUFFIX)
HISTORY_DIR = ".history"
STATUSES = ("quarantined", "requeued", "accepted", "rejected")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def now() -> str:
    """The current UTC time as records write it."""
    return dt.datetime.now(dt.timezone.utc).strftime(_TIME_FORMAT)


def parse_time(text: object) -> dt.datetime:
    """A recorded time; the epoch for one that cannot be read (it sorts last, purges first)."""
    try:
        return dt.datetime.strptime(str(text), _TIME_FORMAT).replace(tzinfo=dt.timezone.utc)
    except (TypeError, ValueError):
        return dt.datetime.fromtimestamp(0, dt.timezone.utc)


@dataclass
class Step:
    """One line of an entry's history: what was done, when, by whom, with the action's details."""

    action: str
    by: str
    time: str = field(default_factory=now)
    details: dict[str, Any] = field(default_factory=dict)  # e.g. "to", "outputs", "accept_once"

    @classmethod
    def from_json(cls, data: object) -> Step:
        data = dict(data) if isinstance(data, dict) else {}
        return cls(action=str(data.pop("action", "?")), by=str(data.pop("by", "?")),
                   time=str(data.pop("time", "")), details=data)

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, "action": self.action, "by": self.by, **self.details}


@dataclass
class QuarantineRecord:
    """Why an input is in quarantine and what has happened to it since."""

    reason: str
    message: str = ""
    measured: dict[str, Any] = field(default_factory=dict)
    time: str = field(default_factory=now)  # when it was quarantined, as recorded
    version: str = ""
    instance: str = ""
    input_root: str = ""
    relpath: str = ""  # where the input was, relative to input_root (checked where it is used)
    folder: str = ""  # the quarantine (or, once rejected, the rejected) folder
    status: str = "quarantined"
    history: list[Step] = field(default_factory=list)
    matte: str | None = None  # the sidecar's file name beside the record, or None
    preview: str | None = None
    input_missing: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # keys of other versions, kept as they were

    @property
    def when(self) -> dt.datetime:
        return parse_time(self.time)

    def add_step(self, status: str, by: str, **details: Any) -> None:
        """Record an action: the entry's status becomes ``status`` and the history says who."""
        self.status = status
        self.history.append(Step(status, by, details=details))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QuarantineRecord:
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        measured = data.get("measured")
        history = data.get("history")
        return cls(
            reason=str(data.get("reason", "?")),
            message=str(data.get("message", "")),
            measured=measured if isinstance(measured, dict) else {},
            time=str(data.get("time", "")),
            version=str(data.get("version", "")),
            instance=str(data.get("instance", "")),
            input_root=str(data.get("input_root", "")),
            relpath=data["relpath"] if isinstance(data.get("relpath"), str) else "",
            folder=str(data.get("folder", "")),
            status=str(data.get("status", "quarantined")),
            history=[Step.from_json(step) for step in history] if isinstance(history, list) else [],
            matte=_name_or_none(data.get("matte")),
            preview=_name_or_none(data.get("preview")),
            input_missing=bool(data.get("input_missing", False)),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def to_json(self) -> dict[str, Any]:
        return {
            **self.extra,
            "reason": self.reason, "message": self.message, "measured": self.measured, "time": self.time,
            "version": self.version, "instance": self.instance, "input_root": self.input_root,
            "relpath": self.relpath, "folder": self.folder, "status": self.status,
            "history": [step.to_json() for step in self.history],
            "matte": self.matte, "preview": self.preview, "input_missing": self.input_missing,
        }

    def encode(self) -> bytes:
        return encode_json(self.to_json())

    @classmethod
    def decode(cls, raw: bytes | str) -> QuarantineRecord:
        """The record in ``raw``; ValueError for anything that is not a record's JSON object."""
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return cls.from_json(data)


def _name_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def jsonable(value: Any) -> Any:
    """measured values as plain JSON: numpy scalars to numbers, non-finite floats to null."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float) or hasattr(value, "item"):
        try:
            number = value.item() if hasattr(value, "item") else value
        except (ValueError, TypeError):
            return str(value)
        if isinstance(number, float) and not math.isfinite(number):
            return None
        return number
    return str(value)


def encode_json(data: dict[str, Any]) -> bytes:
    # ensure_ascii: names that are not valid UTF-8 (lone surrogates) stay representable.
    return (json.dumps(jsonable(data), indent=2, ensure_ascii=True) + "\n").encode("ascii")
