"""The review page as a WSGI application: the grid, the viewer's images, the actions and undo.

Routes, below wherever the app is mounted (``SCRIPT_NAME``, e.g. ``/review``)::

    GET  /                      the grid (filters: ?folder=N&shoot=NAME&reason=CODE&page=N)
    GET  /static/<name>         the page's CSS and JS, from the package's static folder only
    GET  /thumb/<id>/<kind>     photo | matte | cutout thumbnail of one entry
    GET  /tile/<id>/<kind>/<level>/<column>/<row>
                                one 512-pixel tile of the viewer (``bshmd.review.tiles``)
    GET  /api/view/<id>         the entry's size and pyramid depth, for the viewer
    GET  /api/entries           the waiting entries as JSON
    GET  /api/state             a version of the listing and the counts left: polled by the page
    POST /api/actions           {"action": "accept"|"requeue"|"reject", "ids": [...]}
                                {"action": ..., "filter": {"folder", "shoot", "reason"}, "count": N}
                                {"action": "undo", "ids": [undo tokens the actions returned]}

Entries are named by opaque ids (``bshmd.review.ids``), never by paths. Actions call the same
functions as ``bshmd quarantine`` (``bshmd.quarantine.actions``), one at a time
(``bshmd.review.actions``). A shoot is an
entry's top-level folder inside its quarantine folder; counts of what is left are per shoot.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from bshmd.config import Config
from bshmd.quarantine.entries import QuarantineEntry
from bshmd.review import ids, page
from bshmd.review.access import Access
from bshmd.review.actions import ACTIONS, Desk
from bshmd.review.listing import Waiting, shoot_of
from bshmd.review.thumbnails import KINDS, ThumbnailCache
from bshmd.review.tiles import TILE_KINDS, TileCache

log = logging.getLogger("bshmd.review")

PAGE_SIZE = 100
MAX_BODY = 1 << 20
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
                403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
                413: "Content Too Large", 415: "Unsupported Media Type", 421: "Misdirected Request"}

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
        self.tiles = TileCache(config, self.thumbnails)
        self.waiting = Waiting(config.folders)
        self.desk = Desk(config, self.thumbnails, self.tiles)
        self._static = _static_files()

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
        if path == "/api/state":
            return self._state(start_response)
        if path.startswith("/api/view/"):
            return self._view(start_response, path[len("/api/view/"):])
        if path.startswith("/static/"):
            return self._static_file(start_response, path[len("/static/"):])
        if path.startswith("/thumb/"):
            return self._thumbnail(start_response, path[len("/thumb/"):])
        if path.startswith("/tile/"):
            return self._tile(start_response, path[len("/tile/"):])
        return self._text(start_response, 404, "Not found.")

    # --- the listing ---------------------------------------------------------------------

    def _entries(self) -> list[QuarantineEntry]:
        return self.waiting.current().entries

    def _state(self, start_response: StartResponse) -> Iterable[bytes]:
        listing = self.waiting.current()
        shoots = [{"folder": i, "shoot": shoot, "left": n} for i, shoot, n in listing.left]
        return self._json(start_response, 200, {"version": listing.version, "total": len(listing.entries),
                                                "shoots": shoots})

    # --- pages ---------------------------------------------------------------------------

    def _entry_json(self, entry: QuarantineEntry) -> dict[str, Any]:
        return {
            "id": ids.entry_id(self.config.folders, entry),
            "folder": self.waiting.index_of(entry),
            "shoot": shoot_of(entry),
            "name": entry.name,
            "reason": entry.reason,
            "message": entry.record.message,
            "measured": entry.record.measured,
            "time": entry.record.time,
            "has_matte": entry.record.matte is not None,
        }

    def _page(self, environ: dict[str, Any], start_response: StartResponse, base: str) -> Iterable[bytes]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        folders = self.config.folders
        folder_filter = _int_or_none(query.get("folder", [""])[-1])
        if folder_filter is not None and not 0 <= folder_filter < len(folders):
            folder_filter = None
        shoot_values = query.get("shoot")
        shoot_filter = shoot_values[-1] if shoot_values and shoot_values[-1] != "*" else None
        reason_filter = query.get("reason", [""])[-1] or None
        listing = self.waiting.current()
        entries = listing.entries
        per_folder = Counter(self.waiting.index_of(e) for e in entries)
        in_folder = self.waiting.matching(entries, folder_filter, None, None)
        # A chosen shoot stays chosen when its last entry goes: the page shows "none left",
        # not suddenly every other shoot's entries.
        shoots = sorted({shoot_of(e) for e in in_folder} | ({shoot_filter} if shoot_filter is not None else set()))
        in_shoot = self.waiting.matching(in_folder, None, shoot_filter, None)
        per_reason = Counter(e.reason for e in in_shoot)
        matching = self.waiting.matching(in_shoot, None, None, reason_filter)
        pages = max(1, math.ceil(len(matching) / PAGE_SIZE))
        page_number = min(max(1, _int_or_none(query.get("page", [""])[-1]) or 1), pages)
        shown = matching[(page_number - 1) * PAGE_SIZE: page_number * PAGE_SIZE]
        cards = [self._card(entry, self.waiting.index_of(entry)) for entry in shown]
        rendered = page.Listing(
            base=base, cards=cards, total=len(entries), matching=len(matching), page=page_number, pages=pages,
            folder=folder_filter, shoot=shoot_filter, reason=reason_filter, version=listing.version,
            folders=[(i, str(f.input), per_folder.get(i, 0)) for i, f in enumerate(folders)],
            shoots=[(name, sum(1 for e in in_folder if shoot_of(e) == name)) for name in shoots],
            reasons=sorted(per_reason.items(), key=lambda item: (-item[1], item[0])),
            left=[(str(folders[i].input), shoot, n) for i, shoot, n in listing.left],
            show_folder_in_left=len(folders) > 1,
        )
        body = page.render(rendered).encode("utf-8")
        return self._respond(start_response, 200, body, "text/html; charset=utf-8")

    def _card(self, entry: QuarantineEntry, index: int) -> page.Card:
        record = entry.record
        return page.Card(
            id=ids.entry_id(self.config.folders, entry),
            name=entry.name,
            folder_label=str(self.config.folders[index].input),
            shoot=shoot_of(entry),
            reason=entry.reason,
            message=record.message,
            measured=record.measured,
            time=record.time,
            has_matte=record.matte is not None,
            input_missing=record.input_missing,
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

    def _entry_or_none(self, entry_id: str) -> QuarantineEntry | None:
        try:
            return ids.resolve(self.config.folders, entry_id)
        except ids.BadEntryId:
            return None

    def _view(self, start_response: StartResponse, entry_id: str) -> Iterable[bytes]:
        entry = self._entry_or_none(entry_id)
        if entry is None:
            return self._json(start_response, 404, {"error": "no such entry"})
        geometry = self.tiles.geometry(entry)
        body: dict[str, Any] = {"id": entry_id, "name": entry.name,
                                "reason": entry.reason}
        body.update(geometry.as_json() if geometry else {"width": 0, "height": 0, "levels": 0,
                                                           "has_photo": False, "has_matte": False})
        return self._json(start_response, 200, body)

    def _tile(self, start_response: StartResponse, rest: str) -> Iterable[bytes]:
        parts = rest.split("/")
        numbers = [_int_or_none(p) if p.isdigit() and len(p) < 6 else None for p in parts[2:]]
        if len(parts) != 5 or parts[1] not in TILE_KINDS or None in numbers:
            return self._text(start_response, 404, "Not found.")
        entry = self._entry_or_none(parts[0])
        if entry is None:
            return self._text(start_response, 404, "No such entry.")
        level, column, row = (n for n in numbers if n is not None)
        try:
            data = self.tiles.get(entry, parts[1], level, column, row)
        except Exception as exc:  # noqa: BLE001 - a photo that cannot be decoded shows nothing, the page goes on
            log.info("review: no tile of %s: %s", entry.path, exc)
            data = None
        if data is None:
            return self._text(start_response, 404, "No such tile.")
        return self._respond(start_response, 200, data, TILE_KINDS[parts[1]][1],
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
        by = f"review@{environ.get('REMOTE_ADDR', '?')}"
        if action in ACTIONS and isinstance(body, dict) and isinstance(body.get("filter"), dict):
            return self._bulk(start_response, action, body["filter"], body.get("count"), by)
        if action not in (*ACTIONS, "undo") or not isinstance(entry_ids, list) or not entry_ids \
                or not all(isinstance(i, str) for i in entry_ids):
            return self._json(start_response, 400, {"error": f"expected {{'action': one of {list(ACTIONS)}, "
                                                             "'ids': [entry ids]}, or a 'filter' and 'count'"})
        if action == "undo":
            results = [self.desk.undo(token, by=by) for token in dict.fromkeys(entry_ids)]
        else:
            results = [self.desk.act(action, entry_id, by=by) for entry_id in dict.fromkeys(entry_ids)]
        return self._json(start_response, 200, {"action": action, "results": results})

    def _bulk(self, start_response: StartResponse, action: str, wanted: dict[str, Any], count: object,
              by: str) -> Iterable[bytes]:
        """Every entry of one reason (in one shoot): only if there are still as many as the page confirmed."""
        folder, shoot, reason = wanted.get("folder"), wanted.get("shoot"), wanted.get("reason")
        if not isinstance(reason, str) or not isinstance(count, int) or isinstance(count, bool) \
                or not (folder is None or isinstance(folder, int) and not isinstance(folder, bool)) \
                or not (shoot is None or isinstance(shoot, str)):
            return self._json(start_response, 400, {"error": "a bulk action names a 'reason' (and optionally "
                                                             "'folder' and 'shoot') and the confirmed 'count'"})
        with self.desk.lock:
            chosen = self.waiting.matching(self.waiting.current().entries, folder, shoot, reason)
            if len(chosen) != count:
                return self._json(start_response, 409, {"error": f"{len(chosen)} entries match now, not {count}: "
                                                                 "nothing was changed", "count": len(chosen)})
            chosen_ids = [ids.entry_id(self.config.folders, e) for e in chosen]
        results = [self.desk.act(action, entry_id, by=by) for entry_id in chosen_ids]
        return self._json(start_response, 200, {"action": action, "results": results})

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
