"""The HTTP endpoint: ``/metrics``, ``/healthz``, ``/readyz``, ``/status``, and mounted apps.

One small threaded WSGI server on wsgiref runs in a ``bshmd-http`` thread. Other parts
(the quarantine review page) plug in as ``(prefix, wsgi_app)`` mounts and see the prefix
moved from ``PATH_INFO`` to ``SCRIPT_NAME``, as under any WSGI server.

When ``http.token`` is set, everything except ``/healthz`` and ``/readyz`` (which reveal
nothing and serve container health checks) needs ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from bshmd import httpd
from bshmd.config import HttpConfig
from bshmd.httpd import WSGIApp
from bshmd.service.health import ServiceState

log = logging.getLogger(__name__)

Mount = tuple[str, WSGIApp]


def check_exposure(config: HttpConfig) -> None:
    """Refuse to serve beyond this host without a token: mounted pages can act on files."""
    if config.enabled:
        httpd.check_exposure(config.host, config.token)


class ServiceApp:
    """The WSGI application behind the endpoint."""

    def __init__(self, state: ServiceState, registry: Any, *, token: str | None = None,
                 mounts: Sequence[Mount] = ()) -> None:
        from prometheus_client import make_wsgi_app

        self.state = state
        self.token = token
        self._metrics = make_wsgi_app(registry)
        # Longest prefix first, so /review/api wins over /review.
        self.mounts = sorted(((p.rstrip("/"), a) for p, a in mounts), key=lambda m: -len(m[0]))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == "/healthz":
            alive, why = self.state.liveness()
            return _json(start_response, 200 if alive else 503, {"alive": alive, "reason": why})
        if path == "/readyz":
            ready, reasons = self.state.readiness()
            return _json(start_response, 200 if ready else 503, {"ready": ready, "reasons": reasons})
        mount = self._mount_for(path)
        # A mounted app that checks the token itself (the review page also accepts the cookie
        # a browser gets) sees its requests first; everything else needs the bearer header.
        if not (mount and getattr(mount[1], "authenticates_requests", False)) and not self._authorised(environ):
            return _json(start_response, 401, {"error": "missing or wrong bearer token"},
                         [("WWW-Authenticate", 'Bearer realm="bshmd"')])
        if path == "/metrics":
            return self._metrics(environ, start_response)
        if path == "/status":
            return _json(start_response, 200, self.state.snapshot())
        if mount:
            prefix, app = mount
            environ = dict(environ)
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
            environ["PATH_INFO"] = path[len(prefix):]
            return app(environ, start_response)
        return _json(start_response, 404, {"error": f"no such path: {path}"})

    def _mount_for(self, path: str) -> Mount | None:
        for prefix, app in self.mounts:
            if path == prefix or path.startswith(prefix + "/"):
                return prefix, app
        return None

    def replace_mount(self, prefix: str, app: WSGIApp) -> None:
        """Swap the app at ``prefix`` (after a reload changed what it serves)."""
        prefix = prefix.rstrip("/")
        self.mounts = [(p, app if p == prefix else a) for p, a in self.mounts]

    def _authorised(self, environ: dict[str, Any]) -> bool:
        if not self.token:
            return True
        header = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, given = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), self.token)


def _json(start_response: Callable[..., Any], status: int, body: dict[str, Any],
          headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    reasons = {200: "OK", 401: "Unauthorized", 404: "Not Found", 503: "Service Unavailable"}
    data = json.dumps(body, default=str).encode()
    start_response(f"{status} {reasons[status]}", [
        ("Content-Type", "application/json"), ("Content-Length", str(len(data))),
        ("Cache-Control", "no-store"), *(headers or []),
    ])
    return [data]


