"""The review app mounted at /review on the daemon's own HTTP server (bshmd.service.httpserver)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bshmd.httpd import HttpServer
from bshmd.metrics import Metrics
from bshmd.review.app import ReviewApp
from bshmd.service.health import ServiceState
from bshmd.service.httpserver import ServiceApp

from .conftest import Tree
from .test_app import request

TOKEN = "s3cret-review-token-0123"


def _state(tmp_path: Path) -> ServiceState:
    return ServiceState(instance_id="test-1", pipeline_health=lambda: None,
                        ingest_health=lambda: {"folders": {}, "pending": 0, "last_rescan": None},
                        output_folders=lambda: [tmp_path])


def _serve(tree: Tree, token: str | None) -> Iterator[HttpServer]:
    config = tree.config
    if token:
        config = config.model_copy(update={"http": config.http.model_copy(update={"token": token})})
    app = ServiceApp(_state(tree.root), Metrics().registry, token=token, mounts=[("/review", ReviewApp(config))])
    server = HttpServer("127.0.0.1", 0, app)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def daemon_http(tree: Tree) -> Iterator[HttpServer]:
    yield from _serve(tree, None)


def test_page_thumbnails_and_actions_under_the_daemon(daemon_http: HttpServer, tree: Tree) -> None:
    url = daemon_http.url
    status, _, body = request(url, "/review/")
    html = body.decode()
    assert status == 200 and html.count('class="card"') == 5
    assert 'href="/review/static/review.css"' in html and 'src="/review/thumb/' in html
    assert request(url, "/review")[1]["location"] == "/review/"
    status, _, body = request(url, "/review/api/entries")
    found = {Path(e["name"]).name: e["id"] for e in json.loads(body)["entries"]}
    status, headers, _ = request(url, f"/review/thumb/{found['dancer.png']}/cutout")
    assert status == 200 and headers["content-type"] == "image/webp"
    status, _, body = request(url, "/review/api/actions", method="POST",
                              body=json.dumps({"action": "reject", "ids": [found["rocket.jpg"]]}).encode(),
                              headers={"Content-Type": "application/json", "Origin": url})
    assert status == 200 and json.loads(body)["results"][0]["ok"] is True
    assert (tree.rejected / "shoot" / "rocket.jpg").is_file()
    assert request(url, "/metrics")[0] == 200  # the daemon's own routes are untouched


def test_bearer_token_passes_both_checks(tree: Tree) -> None:
    for server in _serve(tree, TOKEN):
        assert request(server.url, "/review/")[0] == 401
        status, _, body = request(server.url, "/review/", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and body.decode().count('class="card"') == 5
