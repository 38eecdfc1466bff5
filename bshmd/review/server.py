"""``bshmd review``: the review page on its own, for when the daemon is stopped.

The same ``ReviewApp`` the daemon mounts at ``/review`` is served at ``/review`` here too, so
bookmarks work either way. It listens on ``http.host:http.port`` (or ``--host``/``--port``),
and refuses a non-loopback address unless ``http.token`` is set.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterable
from typing import Any

from bshmd.config import Config
from bshmd.errors import EXIT_OK
from bshmd.httpd import HttpServer, WSGIApp, check_exposure

log = logging.getLogger("bshmd.review")

MOUNT = "/review"


class Mounted:
    """Serve ``app`` under ``prefix`` (SCRIPT_NAME), and send ``/`` there."""

    def __init__(self, prefix: str, app: WSGIApp) -> None:
        self.prefix = prefix.rstrip("/")
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == self.prefix or path.startswith(self.prefix + "/"):
            environ = dict(environ, SCRIPT_NAME=environ.get("SCRIPT_NAME", "") + self.prefix,
                           PATH_INFO=path[len(self.prefix):])
            return self.app(environ, start_response)
        if path == "/":
            query = environ.get("QUERY_STRING", "")
            start_response("303 See Other", [("Location", self.prefix + "/" + (f"?{query}" if query else "")),
                                             ("Content-Length", "0")])
            return [b""]
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [b"Not found\n"]


class ReviewServer(HttpServer):
    """Serves the review page from a ``bshmd-review-http`` thread; port 0 picks a free port."""

    def __init__(self, app: WSGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port, app, thread_name="bshmd-review-http")


def review_command(config: Config, *, host: str | None, port: int | None) -> int:
    """Serve the review page until SIGINT or SIGTERM."""
    from bshmd.review.app import ReviewApp

    host = host or config.http.host
    port = config.http.port if port is None else port
    token = config.http.token
    check_exposure(host, token)
    server = ReviewServer(Mounted(MOUNT, ReviewApp(config)), host, port)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        print(f"bshmd review: {server.url}{MOUNT}/" + ("?token=<http.token>" if token else ""), flush=True)
        print("press Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):  # a timed wait lets the signal handler run promptly
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_OK
