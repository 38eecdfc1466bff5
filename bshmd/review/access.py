"""Who may use the review page, and which requests may change files.

- With ``http.token`` set, every request carries it: ``Authorization: Bearer <token>``, or a
  cookie that a first visit with ``?token=<token>`` sets. The cookie holds an HMAC derived
  from the token, not the token itself, and is ``HttpOnly; SameSite=Strict``.
- Without a token the page is only served on a loopback address, and only to requests whose
  ``Host`` is a loopback name: a web page elsewhere cannot reach it by rebinding its DNS name
  to 127.0.0.1.
- Actions are POST with a JSON body (a cross-site form cannot send one without the browser
  asking first) and either a bearer token or an ``Origin`` equal to the page's own.
"""

from __future__ import annotations

import hashlib
import hmac
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bshmd.httpd import is_loopback

COOKIE_NAME = "bshmd_review"




def _request_hostname(environ: dict[str, Any]) -> str:
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    return urlsplit(f"//{host}").hostname or ""


class Access:
    def __init__(self, token: str | None) -> None:
        self.token = token or None

    @property
    def cookie_value(self) -> str:
        assert self.token is not None
        return hmac.new(self.token.encode(), b"bshmd-review-cookie", hashlib.sha256).hexdigest()

    def host_allowed(self, environ: dict[str, Any]) -> bool:
        return self.token is not None or is_loopback(_request_hostname(environ))

    def bearer_ok(self, environ: dict[str, Any]) -> bool:
        if self.token is None:
            return False
        scheme, _, given = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())

    def authorised(self, environ: dict[str, Any]) -> bool:
        if self.token is None:
            return True
        if self.bearer_ok(environ):
            return True
        try:
            cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        except CookieError:
            return False
        morsel = cookie.get(COOKIE_NAME)
        return morsel is not None and hmac.compare_digest(morsel.value.encode(), self.cookie_value.encode())

    def query_token(self, environ: dict[str, Any]) -> str | None:
        values = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).get("token")
        return values[-1] if values else None

    def token_matches(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def set_cookie_header(self, path: str) -> tuple[str, str]:
        return ("Set-Cookie", f"{COOKIE_NAME}={self.cookie_value}; Path={path}; HttpOnly; SameSite=Strict")

    def may_act(self, environ: dict[str, Any]) -> bool:
        """A POST that changes files: from this page's own origin, or with the bearer token."""
        if environ.get("REQUEST_METHOD") != "POST":
            return False
        if environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower() != "application/json":
            return False
        if self.bearer_ok(environ):
            return True
        origin = environ.get("HTTP_ORIGIN")
        if not origin or origin == "null":
            return False
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc == environ.get("HTTP_HOST", "") != ""
