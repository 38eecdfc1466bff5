"""The review page as a WSGI application: the grid, its thumbnails, and the three actions.

Routes, below wherever the app is mounted (``SCRIPT_NAME``, e.g. ``/review``)::

    GET  /                      the grid (filters: ?folder=N&reason=CODE&page=N)
    GET  /static/<name>         the page's CSS and JS, from the package's static folder only
    GET  /thumb/<id>/<kind>     photo | matte | cutout thumbnail of one entry
    GET  /api/entries           the waiting entries as JSON
    POST /api/actions           {"action": "accept"|"requeue"|"reject", "ids": [...]}

Entries are named by opaque ids (``bshmd.review.ids``), never by paths. Actions call the same
functions as ``bshmd quarantine`` (``bshmd.pipeline.quarantine``), one at a time.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from bshmd.config import Config
from bshmd.errors import InputRejected
from bshmd.pipeline import quarantine
from bshmd.review import ids, page
from bshmd.review.access import Access
from bshmd.review.thumbnails import KINDS, ThumbnailCache

log = logging.getLogger("bshmd.review")

PAGE_SIZE = 100
MAX_BODY = 1 << 20
ACTIONS = ("accept", "requeue", "reject")
_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".svg": "image/svg+xml"}
_SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
                                "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
]
_STATUS_TEXT = {200: "OK", 303: "See Other", 308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized",
                403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 413: "Content Too Large",
                415: "Unsupported Media Type", 421: "Misdirected Request"}

StartResponse = Callable[..., Any]


def _static_files() -> dict[str, bytes]:
    """Every file shipped in bshmd/review/static, read once: nothing else can be served."""
    folder = resources.files("bshmd.review") / "static"
    files = {}
    for item in folder.iterdir():
        if item.is_file() and Path(item.name).suffix in _STATIC_TYPES:
            files[item.name] = item.read_bytes()
    return files


class ReviewApp:
    """The review page for the folders of ``config``; mount it anywhere (it reads SCRIPT_NAME)."""

    # It checks http.token itself (bearer header, or the cookie a browser gets from ?token=),
    # so a server mounting it can hand requests over before its own bearer-only check.
    authenticates_requests = True

    def __init__(self, config: Config, *, token: str | None = None) -> None:
        self.config = config
        self.access = Access(token if token is not None else config.http.token)
        self.thumbnails = ThumbnailCache(config)
        self._static = _static_files()
        self._action_lock = threading.Lock()  # one action at a time: two clicks never race on a file

    # --- dispatch ------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "")
        base = environ.get("SCRIPT_NAME", "").rstrip("/")
        if not self.access.host_allowed(environ):
            return self._text(start_response, 421, "This page answers only on a loopback address (127.0.0.1).")
        given = self.access.query_token(environ) if method == "GET" else None
        if given is not None:
            if not self.access.token_matches(given):
                return self._text(start_response, 401, "Wrong token.")
            # Move the token from the address bar into a cookie, and out of the history.
            return self._redirect(start_response, self._without_token(base, path, environ),
                                  [self.access.set_cookie_header(base + "/")])
        if not self.access.authorised(environ):
            return self._text(start_response, 401, "Open this page with ?token=<http.token> once, "
                                                   "or send Authorization: Bearer <http.token>.",
                              [("WWW-Authenticate", 'Bearer realm="bshmd-review"')])
        if path == "":
            return self._redirect(start_response, base + "/", status=308)
        if path == "/api/actions":
            if method != "POST":
                return self._json(start_response, 405, {"error": "use POST"}, [("Allow", "POST")])
            return self._actions(environ, start_response)
        if method != "GET":
            return self._json(start_response, 405, {"error": "only GET here"}, [("Allow", "GET")])
        if path == "/":
            return self._page(environ, start_response, base)
        if path == "/api/entries":
            return self._json(start_response, 200, {"entries": [self._entry_json(e) for e in self._entries()]})
        if path.startswith("/static/"):
            return self._static_file(start_response, path[len("/static/"):])
        if path.startswith("/thumb/"):
            return self._thumbnail(start_response, path[len("/thumb/"):])
        return self._text(start_response, 404, "Not found.")

    # --- pages ---------------------------------------------------------------------------

    def _entries(self) -> list[quarantine.QuarantineEntry]:
        return quarantine.list_entries(self.config.folders)

    def _entry_json(self, entry: quarantine.QuarantineEntry) -> dict[str, Any]:
        return {
            "id": ids.entry_id(self.config.folders, entry),
            "name": entry.path.relative_to(entry.folder.quarantine).as_posix(),
            "reason": entry.reason,
            "message": entry.record.get("message", ""),
            "measured": entry.record.get("measured", {}),
            "time": entry.record.get("time", ""),
            "has_matte": entry.record.get("matte") is not None,
        }

    def _page(self, environ: dict[str, Any], start_response: StartResponse, base: str) -> Iterable[bytes]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        folders = self.config.folders
        folder_filter = _int_or_none(query.get("folder", [""])[-1])
        if folder_filter is not None and not 0 <= folder_filter < len(folders):
            folder_filter = None
        reason_filter = query.get("reason", [""])[-1] or None
        entries = self._entries()
        index_of = {f.quarantine: i for i, f in enumerate(folders)}
        per_folder = Counter(index_of[e.folder.quarantine] for e in entries)
        in_folder = [e for e in entries if folder_filter is None or index_of[e.folder.quarantine] == folder_filter]
        per_reason = Counter(e.reason for e in in_folder)
        matching = [e for e in in_folder if reason_filter is None or e.reason == reason_filter]
        pages = max(1, math.ceil(len(matching) / PAGE_SIZE))
        page_number = min(max(1, _int_or_none(query.get("page", [""])[-1]) or 1), pages)
        shown = matching[(page_number - 1) * PAGE_SIZE: page_number * PAGE_SIZE]
        cards = [self._card(entry, index_of[entry.folder.quarantine]) for entry in shown]
        listing = page.Listing(
            base=base, cards=cards, total=len(entries), matching=len(matching), page=page_number, pages=pages,
            folder=folder_filter, reason=reason_filter,
            folders=[(i, str(f.input), per_folder.get(i, 0)) for i, f in enumerate(folders)],
            reasons=sorted(per_reason.items(), key=lambda item: (-item[1], item[0])),
        )
        body = page.render(listing).encode("utf-8")
        return self._respond(start_response, 200, body, "text/html; charset=utf-8")

    def _card(self, entry: quarantine.QuarantineEntry, index: int) -> page.Card:
        record = entry.record
        return page.Card(
            id=ids.entry_id(self.config.folders, entry),
            name=entry.path.relative_to(entry.folder.quarantine).as_posix(),
            folder_label=str(self.config.folders[index].input),
            reason=entry.reason,
            message=str(record.get("message", "")),
            measured=record.get("measured"),
            time=str(record.get("time", "")),
            has_matte=isinstance(record.get("matte"), str),
            input_missing=bool(record.get("input_missing")),
        )

    def _static_file(self, start_response: StartResponse, name: str) -> Iterable[bytes]:
        data = self._static.get(name)
        if data is None:
            return self._text(start_response, 404, "Not found.")
        content_type = _STATIC_TYPES[Path(name).suffix]
        return self._respond(start_response, 200, data, content_type, [("Cache-Control", "no-cache")])

    def _thumbnail(self, start_response: StartResponse, rest: str) -> Iterable[bytes]:
        entry_id, _, kind = rest.rpartition("/")
        if kind not in KINDS:
            return self._text(start_response, 404, "Not found.")
        try:
            entry = ids.resolve(self.config.folders, entry_id)
        except ids.BadEntryId:
            return self._text(start_response, 404, "No such entry.")
        thumbnail = self.thumbnails.get(entry, kind)
        if thumbnail is None:
            data = self._static.get(f"no-{kind}.svg") or self._static["no-preview.svg"]
            return self._respond(start_response, 200, data, "image/svg+xml", [("Cache-Control", "private, max-age=60")])
        # The page's URLs carry ?v=<entry version>: a new entry under the same name gets a new URL.
        return self._respond(start_response, 200, thumbnail.data, thumbnail.content_type,
                             [("Cache-Control", "private, max-age=86400")])

    # --- actions -------------------------------------------------------------------------

    def _actions(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not self.access.may_act(environ):
            return self._json(start_response, 403, {"error": "actions need a JSON POST from this page "
                                                             "(same Origin) or a bearer token"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            return self._json(start_response, 413 if length > MAX_BODY else 400, {"error": "bad request body size"})
        try:
            body = json.loads(environ["wsgi.input"].read(length))
        except ValueError:
            return self._json(start_response, 400, {"error": "the body is not JSON"})
        action = body.get("action") if isinstance(body, dict) else None
        entry_ids = body.get("ids") if isinstance(body, dict) else None
        if action not in ACTIONS or not isinstance(entry_ids, list) or not entry_ids \
                or not all(isinstance(i, str) for i in entry_ids):
            return self._json(start_response, 400, {"error": f"expected {{'action': one of {list(ACTIONS)}, "
                                                             "'ids': [entry ids]}"})
        by = f"review@{environ.get('REMOTE_ADDR', '?')}"
        results = [self.act(action, entry_id, by=by) for entry_id in dict.fromkeys(entry_ids)]
        return self._json(start_response, 200, {"action": action, "results": results})

    def act(self, action: str, entry_id: str, *, by: str = "review") -> dict[str, Any]:
        """Apply one action to one entry; the result says what happened, for the page to show."""
        with self._action_lock:
            try:
                entry = ids.resolve(self.config.folders, entry_id)
            except ids.BadEntryId as exc:
                log.info("review: %s of %s refused: %s", action, entry_id, exc)
                return {"id": entry_id, "ok": False, "message": "not in quarantine any more, or not an entry"}
            name = entry.path.name
            thumbs_key = self.thumbnails.key(entry)
            try:
                if action == "accept":
                    written = quarantine.accept(entry, self.config, by=by)
                    message = f"{name}: accepted; wrote {', '.join(p.name for p in written)}"
                elif action == "requeue":
                    moved = quarantine.requeue(entry, by=by)
                    message = f"{name}: back in the hot folder as {moved.name}, to be processed again"
                else:
                    moved = quarantine.reject(entry, by=by)
                    message = f"{name}: rejected; kept in {moved.parent}"
            except (InputRejected, OSError, ValueError) as exc:
                log.warning("review: %s of %s failed: %s", action, entry.path, exc)
                return {"id": entry_id, "ok": False, "message": f"{name}: {action} failed: {exc}"}
            self.thumbnails.forget(entry, thumbs_key)
            log.info("review: %s %s (by %s)", action, entry.path, by)
            return {"id": entry_id, "ok": True, "message": message}

    # --- responses -----------------------------------------------------------------------

    @staticmethod
    def _without_token(base: str, path: str, environ: dict[str, Any]) -> str:
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        query.pop("token", None)
        rest = urlencode(query, doseq=True)
        return quote(base + (path or "/")) + (f"?{rest}" if rest else "")

    def _respond(self, start_response: StartResponse, status: int, body: bytes, content_type: str,
                 headers: list[tuple[str, str]] | None = None) -> list[bytes]:
        extra = list(headers or [])
        if not any(name == "Cache-Control" for name, _ in extra):
            extra.append(("Cache-Control", "no-store"))
        start_response(f"{status} {_STATUS_TEXT.get(status, 'OK')}", [
            ("Content-Type", content_type), ("Content-Length", str(len(body))), *_SECURITY_HEADERS, *extra])
        return [body]

    def _json(self, start_response: StartResponse, status: int, body: dict[str, Any],
              headers: list[tuple[str, str]] | None = None) -> list[bytes]:
        data = json.dumps(body, default=str, ensure_ascii=True).encode()
        return self._respond(start_response, status, data, "application/json", headers)

    def _text(self, start_response: StartResponse, status: int, text: str,
              headers: list[tuple[str, str]] | None = None) -> list[bytes]:
        return self._respond(start_response, status, text.encode() + b"\n", "text/plain; charset=utf-8", headers)

    def _redirect(self, start_response: StartResponse, location: str, headers: list[tuple[str, str]] | None = None,
                  *, status: int = 303) -> list[bytes]:
        return self._respond(start_response, status, b"", "text/plain", [("Location", location), *(headers or [])])


def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None
