"""The review page in headless Chromium: what a photographer sees and what one click does."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from tests.support.waiting import wait_until

from .conftest import CHROMIUM, Served, Tree

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (CI installs Debian's chromium)")


@pytest.fixture
def page(browser, served: Served) -> Iterator[object]:  # noqa: ANN001 - playwright Browser
    # Tall enough that every card is on screen, so lazy images load without scrolling.
    context = browser.new_context(viewport={"width": 1280, "height": 2400})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(f"{served.url}/")
    page.console_errors = errors  # tests that expect failed requests clear it
    yield page
    context.close()
    assert not errors, errors  # no script error, no CSP violation


def until(page, predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:  # noqa: ANN001
    """Poll a condition (page.evaluate, not wait_for_function: the page's CSP forbids eval)."""
    wait_until(predicate, timeout, what, sleep=lambda seconds: page.wait_for_timeout(seconds * 1000))


def card(page, name: str):  # noqa: ANN001, ANN201
    return page.locator(f'article.card[data-name="shoot/{name}"]')


def click_and_wait_gone(page, name: str, action: str) -> str:  # noqa: ANN001
    card(page, name).locator(f'button[data-action="{action}"]').click()
    until(page, lambda: card(page, name).count() == 0, f"{name} to leave the grid")
    return page.locator("#toast").inner_text()


def test_grid_shows_each_entry_with_its_reason_and_images(page, tree: Tree) -> None:  # noqa: ANN001
    assert page.locator("article.card").count() == 5
    assert page.locator("#matching").inner_text() == "5"
    reasons = page.locator(".reason-title").all_inner_texts()
    assert reasons == ["Unclear outline.", "No person found.", "Picture too small.", "Incomplete file.", "Not a picture."]
    script = "Array.from(document.images).map(i => [i.closest('article').dataset.name, i.alt, i.complete, i.naturalWidth])"
    until(page, lambda: all(complete for _, _, complete, _ in page.evaluate(script)), "thumbnails to load")
    images = page.evaluate(script)
    # Photo, matte and cut-out for the two gate refusals; a photo (or placeholder) for the others.
    assert len(images) == 2 * 3 + 3
    assert all(width > 0 for _, _, _, width in images), images
    assert [alt for name, alt, _, _ in images if name == "shoot/dancer.png"] == ["Photo", "Matte", "Cut-out"]
    assert card(page, "astronaut.png").locator(".tile-matte").inner_text().strip() == "no matte"
    assert card(page, "astronaut.png").locator("button.accept").is_disabled()


def test_filter_by_reason(page) -> None:  # noqa: ANN001
    page.select_option("#filter-reason", "no_subject")
    until(page, lambda: "reason=no_subject" in page.url and page.locator("article.card").count() == 1, "the filter")
    assert page.locator("article.card").get_attribute("data-name") == "shoot/rocket.jpg"
    assert page.locator("#matching").inner_text() == "1"


def test_accept_writes_the_rejected_result_as_the_output(page, tree: Tree) -> None:  # noqa: ANN001
    toast = click_and_wait_gone(page, "dancer.png", "accept")
    assert "Accepted 1 file" in toast and "dancer.png.cutout.png" in toast
    assert (tree.output / "shoot" / "dancer.png.cutout.png").is_file()
    assert not (tree.quarantine / "shoot" / "dancer.png").exists()
    assert (tree.input / "shoot" / "dancer.png").is_file()  # on_success: keep, with a done record
    [record_file] = (tree.quarantine / ".history" / "shoot").glob("dancer.png.*.reason.json")
    assert json.loads(record_file.read_text())["status"] == "accepted"
    assert page.locator("#matching").inner_text() == "4"


def test_requeue_puts_the_photo_back_into_its_hot_folder(page, tree: Tree) -> None:  # noqa: ANN001
    toast = click_and_wait_gone(page, "astronaut.png", "requeue")
    assert "Requeued 1 file" in toast
    assert (tree.input / "shoot" / "astronaut.png").is_file()
    assert not (tree.quarantine / "shoot" / "astronaut.png").exists()
    [record_file] = (tree.quarantine / ".history" / "shoot").glob("astronaut.png.*.reason.json")
    record = json.loads(record_file.read_text())
    assert record["status"] == "requeued" and record["history"][-1]["by"].startswith("review@")


def test_reject_sets_the_photo_aside_for_good(page, tree: Tree) -> None:  # noqa: ANN001
    toast = click_and_wait_gone(page, "rocket.jpg", "reject")
    assert "Rejected 1 file" in toast
    rejected = tree.rejected / "shoot"
    assert (rejected / "rocket.jpg").is_file() and (rejected / "rocket.jpg.matte.png").is_file()
    assert json.loads((rejected / "rocket.jpg.reason.json").read_text())["status"] == "rejected"
    assert not (tree.quarantine / "shoot" / "rocket.jpg").exists()
    page.reload()
    assert card(page, "rocket.jpg").count() == 0 and page.locator("article.card").count() == 4


def test_selected_files_are_rejected_together(page, tree: Tree) -> None:  # noqa: ANN001
    assert page.locator(".bulk-act.reject").is_disabled()
    card(page, "cut-off.jpg").locator(".pick").check()
    card(page, "notes.jpg").locator(".pick").check()
    assert page.locator("#selected-count").inner_text() == "2 selected"
    page.locator(".bulk-act.reject").click()
    until(page, lambda: page.locator("article.card").count() == 3, "two cards to leave the grid")
    assert "Rejected 2 files" in page.locator("#toast").inner_text()
    for name in ("cut-off.jpg", "notes.jpg"):
        assert (tree.rejected / "shoot" / name).is_file()
        assert json.loads((tree.rejected / "shoot" / f"{name}.reason.json").read_text())["status"] == "rejected"
    assert page.locator("#selected-count").inner_text() == "0 selected"


def test_select_all_then_requeue(page, tree: Tree) -> None:  # noqa: ANN001
    page.locator("#select-all").check()
    assert page.locator("#selected-count").inner_text() == "5 selected"
    page.locator(".bulk-act.requeue").click()
    until(page, lambda: page.locator("article.card").count() == 0, "every card to leave the grid")
    assert sorted(p.name for p in (tree.input / "shoot").iterdir()) == sorted(
        ["dancer.png", "rocket.jpg", "astronaut.png", "cut-off.jpg", "notes.jpg"])
    page.reload()
    assert "The quarantine is empty" in page.locator("main").inner_text()


def test_traversal_from_the_page_is_refused(page) -> None:  # noqa: ANN001
    statuses = page.evaluate("""async (base) => {
        const paths = ["/thumb/..%2f..%2f..%2fetc%2fpasswd/photo", "/thumb/0-Li4vLi4vLi4vZXRjL3Bhc3N3ZA/photo",
                       "/thumb/0-L2V0Yy9wYXNzd2Q/photo", "/static/..%2fapp.py", "/static/%2e%2e%2fapp.py"];
        const out = [];
        for (const p of paths) { const r = await fetch(base + p); out.push([p, r.status, await r.text()]); }
        return out;
    }""", page.evaluate("document.body.dataset.base"))
    for path, status, body in statuses:
        assert status in (403, 404), (path, status)
        assert "root:" not in body
    assert all("404" in error for error in page.console_errors), page.console_errors
    page.console_errors.clear()
