"""A small threaded WSGI server in a named thread, shared by the daemon's endpoint and ``bshmd review``."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from bshmd.errors import ConfigError

log = logging.getLogger("bshmd.http")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to serve beyond this host without a token: the pages served can act on files."""
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"http.host = {host!r}: listens beyond this host but http.token is not set; "
            "expected a token of at least 16 characters, or host 127.0.0.1"
        )


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow client or an open browser tab never holds up the shutdown
    allow_reuse_address = True


class _IPv6WSGIServer(_ThreadingWSGIServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("http %s: " + format, self.address_string(), *args)


class HttpServer:
    """Serves ``app`` on ``host:port`` from a thread named ``thread_name``; port 0 picks a free one."""

    def __init__(self, host: str, port: int, app: WSGIApp, *, thread_name: str = "bshmd-http") -> None:
        server_class = _IPv6WSGIServer if ":" in host else _ThreadingWSGIServer
        try:
            self._server = make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
        except OSError as exc:
            raise ConfigError(f"http: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        self.host = host
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=thread_name, daemon=True)

    def start(self) -> HttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"
