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
    shoot: str  # the top-level folder inside the quarantine folder ("" for none)
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
    shoot: str | None
    reason: str | None
    version: str  # of the listing: the page polls /api/state and refreshes when it changes
    folders: Sequence[tuple[int, str, int]]  # (index, label, count)
    shoots: Sequence[tuple[str, int]]  # (name, count) within the chosen folder
    reasons: Sequence[tuple[str, int]]  # (code, count) within the chosen folder and shoot
    left: Sequence[tuple[str, str, int]]  # (folder label, shoot, count) of every entry waiting
    show_folder_in_left: bool


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
<article class="card" data-id="{_e(card.id)}" data-name="{_e(card.name)}" data-reason="{_e(card.reason)}"
  data-shoot="{_e(card.shoot)}" data-version="{_version(card)}" data-matte="{int(card.has_matte)}"
  data-title="{_e(reason_title(card.reason))}" tabindex="-1">
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
    params: dict[str, object] = {"folder": listing.folder, "shoot": listing.shoot, "reason": listing.reason,
                                 "page": listing.page}
    params.update(changes)
    kept = {k: v for k, v in params.items()
            if v is not None and (v != "" or k == "shoot") and not (k == "page" and v == 1)}
    return f"{listing.base}/" + ("?" + urlencode(kept) if kept else "")


def shoot_label(name: str) -> str:
    return name or "(no shoot folder)"


def _left(listing: Listing) -> str:
    items = []
    for label, shoot, count in listing.left:
        where = f"{label}: {shoot_label(shoot)}" if listing.show_folder_in_left else shoot_label(shoot)
        items.append(f'<li data-shoot="{_e(shoot)}"><span class="shoot">{_e(where)}</span> '
                     f'<b class="count">{count}</b></li>')
    return (f'<div class="left" id="left"><span>Left: <b id="left-total">{listing.total}</b></span>'
            f'<ul>{"".join(items)}</ul></div>')


def _bulk_all(listing: Listing) -> str:
    """The "all of this reason in this shoot" buttons, when a reason is chosen."""
    if listing.reason is None or not listing.matching:
        return ""
    where = f" in {shoot_label(listing.shoot)}" if listing.shoot is not None else ""
    words = f"{reason_title(listing.reason)}{where}"
    buttons = "".join(
        f'<button type="button" class="all-act {action}" data-all="{action}">{label} all {listing.matching}</button>'
        for action, label in (("accept", "Accept"), ("requeue", "Requeue"), ("reject", "Reject")))
    return (f'<div class="bulk-all" id="bulk-all" data-count="{listing.matching}" data-words="{_e(words)}" '
            f'data-folder="{"" if listing.folder is None else listing.folder}" '
            f'data-shoot="{_e("" if listing.shoot is None else listing.shoot)}" '
            f'data-has-shoot="{int(listing.shoot is not None)}" data-reason="{_e(listing.reason)}">'
            f'<span>{_e(words)}:</span>{buttons}</div>')


_HELP = [("← →", "previous / next photo"), ("Enter", "open the viewer"), ("Esc", "close the viewer or this help"),
         ("A", "accept"), ("R", "requeue"), ("X", "reject"), ("U", "undo the last action"),
         ("O", "viewer: matte overlay on the photo (red: what the matte removes)"),
         ("C", "viewer: cut-out; again: checkerboard, white, black"), ("M", "viewer: the matte alone"),
         ("P", "viewer: the photo"), ("1 or Z", "viewer: 100 %"), ("0 or F", "viewer: fit the window"),
         ("+ −, wheel", "viewer: zoom"), ("drag", "viewer: move the picture"), ("?", "these keys")]


def _viewer() -> str:
    keys = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in _HELP)
    return f"""
<section id="viewer" hidden aria-label="viewer">
  <div class="stage" id="stage"><div class="plane" id="plane"></div></div>
  <header class="viewer-bar">
    <span id="viewer-name" class="name"></span><span id="viewer-reason"></span>
    <span id="viewer-mode"></span><span id="viewer-zoom"></span><span id="viewer-position"></span>
    <span class="viewer-keys">A accept · R requeue · X reject · U undo · O overlay · C cut-out · M matte · 1 100 % · ? keys</span>
    <button type="button" id="viewer-close">Close (Esc)</button>
  </header>
</section>
<section id="help" hidden aria-label="keys"><div class="help-box"><h2>Keys</h2><dl>{keys}</dl>
  <p>Actions take effect at once, as <code>bshmd quarantine</code> would; U takes the last one back.</p></div></section>"""


def _options(selected: object, choices: Sequence[tuple[object, str]], everything: str, *,
             everything_value: str = "") -> str:
    everything_mark = " selected" if selected is None or selected == everything_value else ""
    html = [f'<option value="{_e(everything_value)}"{everything_mark}>{_e(everything)}</option>']
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
    shoot_choices = [(name, f"{shoot_label(name)} ({count})") for name, count in listing.shoots]
    shoot_options = _options("*" if listing.shoot is None else listing.shoot, shoot_choices, "all shoots",
                             everything_value="*")
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
<body data-base="{_e(base)}" data-version="{_e(listing.version)}">
<header class="top">
  <h1>Quarantine review</h1>
  <p class="summary"><span id="matching">{listing.matching}</span> of {listing.total} file(s) waiting for a decision, newest first</p>
  <form class="filters" method="get" action="{_e(base)}/">
    <label{show_folders}>Folder <select name="folder" id="filter-folder">{_options(listing.folder, folder_choices, "all folders")}</select></label>
    <label>Shoot <select name="shoot" id="filter-shoot">{shoot_options}</select></label>
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
  {_bulk_all(listing)}
  {_left(listing)}
  <p class="legend"><b>Accept</b>: keep this cut-out as the result. <b>Requeue</b>: put the photo back
    into its hot folder to be processed again. <b>Reject</b>: set it aside for good (kept, never retried).
    Keys: ← → choose, Enter view, A R X act, U undo, <b>?</b> all keys.</p>
</header>
<div id="toast" role="status" aria-live="polite"></div>
<main class="grid" id="grid">{cards}
</main>
{pager}
{_viewer()}
</body>
</html>
"""
