"""The review app over real HTTP on a real quarantine tree: listing, thumbnails, safety, tokens."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import yaml
from PIL import Image

from bshmd.errors import ConfigError
from bshmd.review.app import ReviewApp
from bshmd.review.server import Mounted, ReviewServer, review_command
from bshmd.review.thumbnails import CACHE_DIR

from .conftest import Served, Tree

NAMES_NEWEST_FIRST = ["dancer.png", "rocket.jpg", "astronaut.png", "cut-off.jpg", "notes.jpg"]


def request(url: str, path: str, *, method: str = "GET", body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One raw request: the path is sent exactly as given (no client-side normalisation)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def entries(served: Served, headers: dict[str, str] | None = None) -> dict[str, dict]:
    status, _, body = request(served.server.url, "/review/api/entries", headers=headers)
    assert status == 200
    return {Path(e["name"]).name: e for e in json.loads(body)["entries"]}


def make_id(rel: bytes, index: int = 0) -> str:
    return f"{index}-" + base64.urlsafe_b64encode(rel).decode().rstrip("=")


def post_action(served: Served, action: str, ids: list[str], **headers: str) -> tuple[int, dict]:
    origin = served.server.url
    status, _, body = request(origin, "/review/api/actions", method="POST",
                              body=json.dumps({"action": action, "ids": ids}).encode(),
                              headers={"Content-Type": "application/json", "Origin": origin, **headers})
    return status, json.loads(body)


def test_grid_lists_every_entry_newest_first_in_plain_words(served: Served, tree: Tree, studio_matte: np.ndarray) -> None:
    from bshmd.pipeline.gate import measure_matte
    from bshmd.review.reasons import _percent

    uncertain = measure_matte(studio_matte)["uncertain"]
    status, headers, body = request(served.server.url, "/review/")
    html = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    positions = [html.index(f'data-name="shoot/{name}"') for name in NAMES_NEWEST_FIRST]
    assert positions == sorted(positions)
    assert html.count('class="card"') == 5
    for words in ("Unclear outline.", "No person found.", "Picture too small.", "Incomplete file.", "Not a picture."):
        assert words in html
    assert "subject</dt><dd>0.0 % (needs ≥ 2.0 %)" in html  # the rocket's measured share and the gate's limit
    # The dancer's soft edges, and the limit (half of them) its gate had.
    assert f"unsure</dt><dd>{_percent(uncertain)} (limit {_percent(uncertain / 2)})" in html
    assert 'loading="lazy"' in html
    # Listing opens no image: nothing decoded, nothing cached yet.
    assert served.app.thumbnails.generated == 0
    assert not (tree.output / ".bshmd" / CACHE_DIR).exists()


def test_unknown_reason_code_falls_back_to_its_message(served: Served, tree: Tree) -> None:
    record_file = tree.quarantine / "shoot" / "notes.jpg.reason.json"
    record = json.loads(record_file.read_text())
    record.update(reason="cosmic_rays", message="a bit flipped somewhere")
    record_file.write_text(json.dumps(record))
    html = request(served.server.url, "/review/")[2].decode()
    assert "Cosmic rays." in html and "a bit flipped somewhere" in html


def test_filter_by_reason_and_folder(served: Served) -> None:
    html = request(served.server.url, "/review/?reason=no_subject")[2].decode()
    assert html.count('class="card"') == 1 and 'data-name="shoot/rocket.jpg"' in html
    assert request(served.server.url, "/review/?folder=0&reason=truncated")[2].decode().count('class="card"') == 1
    assert "No entry matches" in request(served.server.url, "/review/?reason=none_such")[2].decode()


def test_thumbnails_are_made_once_and_then_read_from_disk(served: Served, tree: Tree, studio_png: Path,
                                                          studio_matte: np.ndarray) -> None:
    with Image.open(studio_png) as original:
        expected = Image.new("L", original.size)
    expected.thumbnail((320, 320))
    dancer = entries(served)["dancer.png"]["id"]
    images = {}
    for kind in ("photo", "matte", "cutout"):
        status, headers, body = request(served.server.url, f"/review/thumb/{dancer}/{kind}")
        assert status == 200
        images[kind] = Image.open(io.BytesIO(body))
        images[kind].load()
    assert images["photo"].format == "JPEG" and images["photo"].size == expected.size  # long side 320
    assert images["matte"].mode == "L" and images["matte"].size == expected.size
    cutout = images["cutout"]
    assert cutout.format == "WEBP" and cutout.mode == "RGBA"
    alpha = np.asarray(cutout.getchannel("A"))
    person = np.count_nonzero(studio_matte >= 128) / studio_matte.size
    assert abs(np.count_nonzero(alpha >= 128) / alpha.size - person) < 0.02  # the person, not the frame
    assert served.app.thumbnails.generated == 1  # three images, one decode
    cache = tree.output / ".bshmd" / CACHE_DIR
    files = sorted(p for p in cache.rglob("*") if p.is_file())
    assert len(files) == 4  # photo, matte, cutout, done-marker
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    again = request(served.server.url, f"/review/thumb/{dancer}/cutout")[2]
    assert served.app.thumbnails.generated == 1
    # A new app (a restarted daemon) reads the same files and decodes nothing.
    fresh = ReviewApp(tree.config)
    server = ReviewServer(Mounted("/review", fresh)).start()
    try:
        assert request(server.url, f"/review/thumb/{dancer}/cutout")[2] == again
    finally:
        server.stop()
    assert fresh.thumbnails.generated == 0
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes


def test_entries_without_a_photo_or_matte_get_a_placeholder(served: Served) -> None:
    found = entries(served)
    status, headers, body = request(served.server.url, f"/review/thumb/{found['notes.jpg']['id']}/photo")
    assert status == 200 and headers["content-type"] == "image/svg+xml" and b"no preview" in body
    status, headers, body = request(served.server.url, f"/review/thumb/{found['cut-off.jpg']['id']}/photo")
    assert status == 200 and headers["content-type"] == "image/jpeg"  # as much as arrived
    assert Image.open(io.BytesIO(body)).size == (320, 214)
    generated = served.app.thumbnails.generated
    request(served.server.url, f"/review/thumb/{found['notes.jpg']['id']}/matte")
    assert served.app.thumbnails.generated == generated  # "nothing to show" is cached too


@pytest.mark.parametrize("path", [
    "/review/thumb/..%2f..%2fetc%2fpasswd/photo",
    "/review/thumb/../../../../etc/passwd",
    "/review/thumb/" + make_id(b"../../../../etc/passwd") + "/photo",
    "/review/thumb/" + make_id(b"/etc/passwd") + "/photo",
    "/review/thumb/" + make_id(b"shoot/dancer.png\x00.jpg") + "/photo",
    "/review/thumb/" + make_id(b"shoot/../shoot/dancer.png") + "/photo",
    "/review/thumb/" + make_id(b".history/shoot/dancer.png") + "/photo",
    "/review/thumb/" + make_id(b"shoot/dancer.png", index=7) + "/photo",
    "/review/thumb/0-%00/photo",
    "/review/thumb/" + make_id(b"shoot/dancer.png") + "/..%2f..%2fapp.py",
    "/review/static/..%2fapp.py",
    "/review/static/../app.py",
    "/review/static/%2e%2e/ids.py",
    "/review/static//etc/passwd",
    "/review/..%2f..%2fetc/passwd",
    "/etc/passwd",
])
def test_paths_outside_the_quarantine_are_refused(served: Served, path: str) -> None:
    status, _, body = request(served.server.url, path)
    assert status in (403, 404), (path, status)
    assert b"root:" not in body and b"import" not in body


def test_links_in_the_quarantine_tree_are_not_followed(served: Served, tree: Tree) -> None:
    # A link beside a forged record, and a linked folder: both lead to /etc/passwd.
    shoot = tree.quarantine / "shoot"
    (shoot / "evil.jpg").symlink_to("/etc/passwd")
    record = json.loads((shoot / "notes.jpg.reason.json").read_text())
    (shoot / "evil.jpg.reason.json").write_text(json.dumps({**record, "relpath": "shoot/evil.jpg"}))
    (tree.quarantine / "linked").symlink_to("/etc")
    passwd = Path("/etc/passwd").read_bytes()
    for rel in (b"shoot/evil.jpg", b"linked/passwd"):
        status, _, body = request(served.server.url, f"/review/thumb/{make_id(rel)}/photo")
        assert status == 404 and b"root:" not in body
        status, reply = post_action(served, "requeue", [make_id(rel)])
        assert status == 200 and reply["results"][0]["ok"] is False
    assert Path("/etc/passwd").read_bytes() == passwd and (shoot / "evil.jpg").is_symlink()
    assert not (tree.input / "shoot" / "evil.jpg").exists()


def test_actions_need_a_same_origin_json_post(served: Served, tree: Tree) -> None:
    dancer = entries(served)["dancer.png"]["id"]
    body = json.dumps({"action": "reject", "ids": [dancer]}).encode()
    url = served.server.url
    refused = [
        ("GET", {}),
        ("POST", {"Content-Type": "application/json"}),  # no Origin
        ("POST", {"Content-Type": "application/json", "Origin": "http://evil.example"}),
        ("POST", {"Content-Type": "application/json", "Origin": "null"}),
        ("POST", {"Content-Type": "application/x-www-form-urlencoded", "Origin": url}),
        ("POST", {"Content-Type": "text/plain", "Origin": url}),
    ]
    for method, headers in refused:
        status, _, _ = request(url, "/review/api/actions", method=method, body=body, headers=headers)
        assert status in (403, 405), (method, headers, status)
    # DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own Host.
    status, _, _ = request(url, "/review/", headers={"Host": "evil.example:80"})
    assert status == 421
    assert (tree.quarantine / "shoot" / "dancer.png").exists()
    assert entries(served)["dancer.png"]["id"] == dancer


def test_api_actions_follow_the_quarantine_rules(served: Served, tree: Tree) -> None:
    found = entries(served)
    status, reply = post_action(served, "accept", [found["astronaut.png"]["id"], found["dancer.png"]["id"]])
    assert status == 200
    by_id = {r["id"]: r for r in reply["results"]}
    assert by_id[found["astronaut.png"]["id"]]["ok"] is False  # no matte was kept: nothing to accept
    assert "requeue it instead" in by_id[found["astronaut.png"]["id"]]["message"]
    assert by_id[found["dancer.png"]["id"]]["ok"] is True
    assert (tree.output / "shoot" / "dancer.png.cutout.png").is_file()
    assert (tree.quarantine / "shoot" / "astronaut.png").is_file()
    [history] = (tree.quarantine / ".history" / "shoot").glob("dancer.png.*.reason.json")
    record = json.loads(history.read_text())
    assert record["status"] == "accepted" and record["history"][-1]["by"] == "review@127.0.0.1"
    # The same id again: the entry is gone, nothing happens twice.
    status, reply = post_action(served, "accept", [found["dancer.png"]["id"]])
    assert reply["results"][0]["ok"] is False
    assert set(entries(served)) == {"rocket.jpg", "astronaut.png", "cut-off.jpg", "notes.jpg"}


# --- token -----------------------------------------------------------------------------------

TOKEN = "s3cret-review-token-0123"


def test_non_loopback_address_without_token_is_refused(tree: Tree) -> None:
    with pytest.raises(ConfigError, match="http.token"):
        review_command(tree.config, host="0.0.0.0", port=0)


def test_every_request_needs_the_token_when_one_is_set(tree: Tree) -> None:
    config = tree.config.model_copy(update={"http": tree.config.http.model_copy(update={"token": TOKEN})})
    app = ReviewApp(config)
    served = Served(app, ReviewServer(Mounted("/review", app)).start())
    url = served.server.url
    try:
        for path in ("/review/", "/review/api/entries", "/review/static/review.js",
                     "/review/thumb/" + make_id(b"shoot/dancer.png") + "/photo"):
            assert request(url, path)[0] == 401, path
            assert request(url, path, headers={"Authorization": "Bearer wrong-token-000000000"})[0] == 401
            assert request(url, path, headers={"Cookie": "bshmd_review=forged"})[0] == 401
        assert request(url, "/review/", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert request(url, f"/review/?token=wrong{TOKEN}")[0] == 401
        status, headers, _ = request(url, f"/review/?reason=no_subject&token={TOKEN}")
        assert status == 303 and headers["location"] == "/review/?reason=no_subject"
        cookie = headers["set-cookie"].split(";")[0]
        assert TOKEN not in cookie and "HttpOnly" in headers["set-cookie"] and "SameSite=Strict" in headers["set-cookie"]
        assert request(url, "/review/", headers={"Cookie": cookie})[0] == 200
        found = entries(served, {"Cookie": cookie})
        # Actions: the cookie alone is not enough without the page's own Origin; a bearer token is.
        body = json.dumps({"action": "reject", "ids": [found["notes.jpg"]["id"]]}).encode()
        json_type = {"Content-Type": "application/json"}
        assert request(url, "/review/api/actions", method="POST", body=body,
                       headers={**json_type, "Cookie": cookie})[0] == 403
        assert request(url, "/review/api/actions", method="POST", body=body,
                       headers={**json_type, "Origin": url})[0] == 401
        status, _, reply = request(url, "/review/api/actions", method="POST", body=body,
                                   headers={**json_type, "Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and json.loads(reply)["results"][0]["ok"] is True
        assert (tree.rejected / "shoot" / "notes.jpg").is_file()
    finally:
        served.server.stop()


def test_review_command_serves_until_sigterm(tree: Tree, tmp_path: Path) -> None:
    config_file = tmp_path / "bshmd.yaml"
    config_file.write_text(yaml.safe_dump({
        "folders": [{"input": str(tree.input), "output": str(tree.output), "quarantine": str(tree.quarantine)}],
        "http": {"host": "0.0.0.0", "port": 0, "token": TOKEN},
    }))
    process = subprocess.Popen([sys.executable, "-m", "bshmd", "review", "-c", str(config_file)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("bshmd review: http://0.0.0.0:") and line.rstrip().endswith("/review/?token=<http.token>")
        port = int(re.search(r"0\.0\.0\.0:(\d+)/", line).group(1))
        url = f"http://127.0.0.1:{port}"
        assert request(url, "/review/")[0] == 401
        status, _, body = request(url, "/review/", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and body.decode().count('class="card"') == 5
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()


def test_folder_filter_with_two_hot_folders(tree: Tree, tmp_path: Path) -> None:
    from pathlib import PurePosixPath

    from bshmd.config import parse_config
    from bshmd.errors import InputRejected
    from bshmd.quarantine.store import quarantine_input

    second = {name: tmp_path / f"studio-b-{name}" for name in ("in", "out", "quarantine")}
    for path in second.values():
        path.mkdir()
    folders = [{"input": str(f.input), "output": str(f.output), "quarantine": str(f.quarantine)}
               for f in tree.config.folders]
    folders.append({"input": str(second["in"]), "output": str(second["out"]), "quarantine": str(second["quarantine"])})
    config = parse_config({"folders": folders}, base_dir=tmp_path)
    (second["in"] / "empty.jpg").write_bytes(b"")
    quarantine_input(config.folders[1], second["in"] / "empty.jpg", PurePosixPath("empty.jpg"),
                     InputRejected("empty", "empty.jpg: the file is empty (0 bytes)", {"bytes": 0}),
                     instance_id="test-host")
    app = ReviewApp(config)
    server = ReviewServer(Mounted("/review", app)).start()
    try:
        html = request(server.url, "/review/")[2].decode()
        assert html.count('class="card"') == 6 and "studio-b-in (1)" in html and "/in (5)" in html
        only_b = request(server.url, "/review/?folder=1")[2].decode()
        assert only_b.count('class="card"') == 1 and 'data-name="empty.jpg"' in only_b and "Empty file." in only_b
        assert request(server.url, "/review/?folder=0")[2].decode().count('class="card"') == 5
    finally:
        server.stop()
