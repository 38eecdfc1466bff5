"""The grid page's HTML, written from the quarantine records alone (no image is opened here)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import urlencode

from bshmd.review.reasons import measured_summary, reason_sentence, reason_title


@dataclass(frozen=True)
class Card:
    id: str
    name: str  # the path inside the quarantine folder, for display
    folder_label: str
    reason: str
    message: str
    measured: object
    time: str  # ISO 8601 UTC as recorded
    has_matte: bool
    input_missing: bool


@dataclass(frozen=True)
class Listing:
    base: str  # where the app is mounted ("/review")
    cards: Sequence[Card]
    total: int  # entries waiting, all folders and reasons
    matching: int  # entries passing the filters
    page: int
    pages: int
    folder: int | None
    reason: str | None
    folders: Sequence[tuple[int, str, int]]  # (index, label, count)
    reasons: Sequence[tuple[str, int]]  # (code, count) within the chosen folder


def _e(value: object) -> str:
    # Names that are not valid UTF-8 arrive as lone surrogates: show a replacement character.
    return escape(str(value).encode("utf-8", "replace").decode("utf-8"), quote=True)


def _version(card: Card) -> str:
    """Changes when the same name is quarantined again, so the browser does not show old images."""
    return hashlib.sha256(f"{card.time}|{card.name}".encode("utf-8", "replace")).hexdigest()[:12]


def _image(base: str, card: Card, kind: str, alt: str) -> str:
    src = f"{base}/thumb/{card.id}/{kind}?v={_version(card)}"
    return (f'<figure class="tile tile-{kind}"><img loading="lazy" decoding="async" src="{_e(src)}" '
            f'alt="{_e(alt)}"><figcaption>{_e(alt)}</figcaption></figure>')


def _empty_tile(kind: str, text: str) -> str:
    return f'<figure class="tile tile-{kind} tile-empty"><div class="none">{_e(text)}</div><figcaption>&nbsp;</figcaption></figure>'


def _card(base: str, card: Card) -> str:
    if card.input_missing:
        photo = _empty_tile("photo", "photo missing")
    else:
        photo = _image(base, card, "photo", "Photo")
    if card.has_matte:
        matte = _image(base, card, "matte", "Matte")
        cutout = _image(base, card, "cutout", "Cut-out") if not card.input_missing else _empty_tile("cutout", "")
    else:
        matte = _empty_tile("matte", "no matte")
        cutout = _empty_tile("cutout", "no cut-out")
    values = "".join(f"<div><dt>{_e(label)}</dt><dd>{_e(value)}</dd></div>"
                     for label, value in measured_summary(card.measured))
    accept_note = "" if card.has_matte else ' disabled title="No matte was kept: requeue it instead"'
    return f"""
<article class="card" data-id="{_e(card.id)}" data-name="{_e(card.name)}" data-reason="{_e(card.reason)}">
  <header>
    <label class="pick-label"><input type="checkbox" class="pick" value="{_e(card.id)}" aria-label="select {_e(card.name)}">
      <span class="name" title="{_e(card.folder_label)}: {_e(card.name)}">{_e(card.name)}</span></label>
    <time datetime="{_e(card.time)}">{_e(card.time[:16].replace("T", " "))} UTC</time>
  </header>
  <div class="tiles">{photo}{matte}{cutout}</div>
  <p class="reason"><strong class="reason-title">{_e(reason_title(card.reason))}.</strong>
    <span class="reason-text">{_e(reason_sentence(card.reason, card.message))}</span></p>
  {f'<dl class="measured">{values}</dl>' if values else ''}
  <details class="more"><summary>Details</summary>
    <p><code>{_e(card.reason)}</code>: {_e(card.message)}</p><p>Folder: {_e(card.folder_label)}</p></details>
  <footer class="actions">
    <button type="button" class="act accept" data-action="accept"{accept_note}>Accept</button>
    <button type="button" class="act requeue" data-action="requeue">Requeue</button>
    <button type="button" class="act reject" data-action="reject">Reject</button>
  </footer>
</article>"""


def _query(listing: Listing, **changes: object) -> str:
    params: dict[str, object] = {"folder": listing.folder, "reason": listing.reason, "page": listing.page}
    params.update(changes)
    kept = {k: v for k, v in params.items() if v not in (None, "") and not (k == "page" and v == 1)}
    return f"{listing.base}/" + ("?" + urlencode(kept) if kept else "")


def _options(selected: object, choices: Sequence[tuple[object, str]], everything: str) -> str:
    html = [f'<option value="">{_e(everything)}</option>']
    for value, label in choices:
        mark = " selected" if value == selected else ""
        html.append(f'<option value="{_e(value)}"{mark}>{_e(label)}</option>')
    return "".join(html)


def render(listing: Listing) -> str:
    base = listing.base
    folder_choices = [(index, f"{label} ({count})") for index, label, count in listing.folders]
    reason_choices = [(code, f"{reason_title(code)} ({count})") for code, count in listing.reasons]
    cards = "".join(_card(base, card) for card in listing.cards)
    if not listing.cards:
        cards = '<p class="empty">Nothing waiting for review. ' + (
            "No entry matches these filters." if listing.total else "The quarantine is empty.") + "</p>"
    pager = ""
    if listing.pages > 1:
        prev_link = (f'<a href="{_e(_query(listing, page=listing.page - 1))}">← newer</a>'
                     if listing.page > 1 else "<span></span>")
        next_link = (f'<a href="{_e(_query(listing, page=listing.page + 1))}">older →</a>'
                     if listing.page < listing.pages else "<span></span>")
        pager = f'<nav class="pager">{prev_link}<span>page {listing.page} of {listing.pages}</span>{next_link}</nav>'
    show_folders = "" if len(listing.folders) > 1 else " hidden"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Quarantine review — bshmd</title>
<link rel="icon" href="{_e(base)}/static/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{_e(base)}/static/review.css">
<script src="{_e(base)}/static/review.js" defer></script>
</head>
<body data-base="{_e(base)}">
<header class="top">
  <h1>Quarantine review</h1>
  <p class="summary"><span id="matching">{listing.matching}</span> of {listing.total} file(s) waiting for a decision, newest first</p>
  <form class="filters" method="get" action="{_e(base)}/">
    <label{show_folders}>Folder <select name="folder" id="filter-folder">{_options(listing.folder, folder_choices, "all folders")}</select></label>
    <label>Reason <select name="reason" id="filter-reason">{_options(listing.reason, reason_choices, "all reasons")}</select></label>
    <noscript><button type="submit">Filter</button></noscript>
  </form>
  <div class="bulk">
    <label><input type="checkbox" id="select-all"> select all on this page</label>
    <span id="selected-count">0 selected</span>
    <button type="button" class="bulk-act accept" data-action="accept" disabled>Accept selected</button>
    <button type="button" class="bulk-act requeue" data-action="requeue" disabled>Requeue selected</button>
    <button type="button" class="bulk-act reject" data-action="reject" disabled>Reject selected</button>
  </div>
  <p class="legend"><b>Accept</b>: keep this cut-out as the result. <b>Requeue</b>: put the photo back
    into its hot folder to be processed again. <b>Reject</b>: set it aside for good (kept, never retried).</p>
</header>
<div id="toast" role="status" aria-live="polite"></div>
<main class="grid">{cards}
</main>
{pager}
</body>
</html>
"""
