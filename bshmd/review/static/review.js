// The review page: keyboard triage, the viewer, live updates, bulk actions. No framework.
//
// The grid is rendered by the server; this script keeps it current by polling /api/state (a
// cheap version of the listing) and, when it changed, fetching the same page again and
// merging its cards into the open one: cards already shown keep their node (selection, the
// reviewer's place), new ones are put where the server placed them, gone ones are removed.
"use strict";
(function () {
  const base = document.body.dataset.base || "";
  const grid = document.getElementById("grid");
  const toast = document.getElementById("toast");
  const selectAll = document.getElementById("select-all");
  const selectedCount = document.getElementById("selected-count");
  const viewer = document.getElementById("viewer");
  const stage = document.getElementById("stage");
  const plane = document.getElementById("plane");
  const help = document.getElementById("help");
  const verbs = { accept: "Accepted", requeue: "Requeued", reject: "Rejected", undo: "Undid" };
  const POLL_MS = 1000;
  let toastTimer = null;
  let currentId = null; // the card the keys act on
  let inFlight = 0; // actions sent and not answered yet
  let actionSeq = 0; // a refresh that started before an action is stale
  const undoStack = []; // [{action, tokens}], newest last: this page's session

  function cards() { return Array.from(grid.querySelectorAll("article.card:not(.gone)")); }
  function cardById(id) { return cards().find((c) => c.dataset.id === id) || null; }
  function picked() { return cards().filter((c) => c.querySelector(".pick").checked); }

  // --- messages and selection ------------------------------------------------------------

  function show(text, isError) {
    toast.textContent = text;
    toast.classList.toggle("error", Boolean(isError));
    toast.classList.add("show");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => toast.classList.remove("show"), isError ? 12000 : 6000);
  }

  function refreshSelection() {
    const all = cards();
    const chosen = picked();
    all.forEach((c) => c.classList.toggle("selected", c.querySelector(".pick").checked));
    selectedCount.textContent = chosen.length + " selected";
    document.querySelectorAll(".bulk-act").forEach((b) => { b.disabled = chosen.length === 0; });
    selectAll.checked = all.length > 0 && chosen.length === all.length;
    selectAll.indeterminate = chosen.length > 0 && chosen.length < all.length;
  }

  function setCurrent(id, scroll) {
    const all = cards();
    if (!all.length) { currentId = null; return; }
    const card = cardById(id) || all[0];
    currentId = card.dataset.id;
    all.forEach((c) => c.classList.toggle("current", c === card));
    if (scroll) card.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    const all = cards();
    if (!all.length) return;
    const at = Math.max(0, all.findIndex((c) => c.dataset.id === currentId));
    const next = all[Math.min(all.length - 1, Math.max(0, at + step))];
    setCurrent(next.dataset.id, true);
    if (!viewer.hidden) openViewer(next.dataset.id);
  }

  function localiseTimes(root) {
    root.querySelectorAll("time[datetime]").forEach((t) => {
      const when = new Date(t.getAttribute("datetime"));
      if (!isNaN(when) && !t.title) {
        t.title = t.textContent;
        t.textContent = when.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
      }
    });
  }

  // --- actions ---------------------------------------------------------------------------

  async function post(body) {
    const response = await fetch(base + "/api/actions", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const reply = await response.json();
    if (!response.ok) throw new Error(reply.error || response.statusText);
    return reply;
  }

  function report(action, reply) {
    const done = reply.results.filter((r) => r.ok).map((r) => r.message);
    const failed = reply.results.filter((r) => !r.ok).map((r) => r.message);
    let text = "";
    if (done.length) text += verbs[action] + " " + done.length + (done.length === 1 ? " file" : " files") + ".\n" + done.slice(0, 4).join("\n");
    if (done.length > 4) text += "\n…";
    if (failed.length) text += (text ? "\n" : "") + failed.join("\n");
    if (text) show(text, failed.length > 0);
    const tokens = reply.results.filter((r) => r.ok && r.undo).map((r) => r.undo);
    if (tokens.length) undoStack.push({ action: action, tokens: tokens });
    return reply.results;
  }

  // Act on cards and move on at once, before the answer: keys can run ahead of the server,
  // which takes actions one at a time. A card that could not be changed stays, with the reason.
  async function act(action, chosen) {
    const asked = chosen.length;
    chosen = chosen.filter((c) => !c.classList.contains("busy") && !(action === "accept" && c.dataset.matte === "0"));
    if (chosen.length === 0) {
      if (asked && action === "accept") show("No matte was kept for this photo: requeue it instead.", true);
      return;
    }
    inFlight += 1;
    actionSeq += 1;
    const all = cards().filter((c) => !c.classList.contains("busy") || chosen.includes(c));
    const after = all.slice(all.indexOf(chosen[chosen.length - 1]) + 1).find((c) => !chosen.includes(c))
      || all.slice(0, all.indexOf(chosen[0])).reverse().find((c) => !chosen.includes(c));
    chosen.forEach((c) => { c.classList.add("busy"); c.querySelectorAll("button").forEach((b) => { b.disabled = true; }); });
    if (chosen.some((c) => c.dataset.id === currentId || c.dataset.id === view.id)) {
      setCurrent(after ? after.dataset.id : null, true);
      if (!viewer.hidden) { if (after) openViewer(after.dataset.id); else closeViewer(); }
    }
    let results;
    try {
      results = report(action, await post({ action: action, ids: chosen.map((c) => c.dataset.id) }));
    } catch (error) {
      chosen.forEach((c) => { c.classList.remove("busy"); c.querySelectorAll("button").forEach((b) => { b.disabled = b.dataset.action === "accept" && c.dataset.matte === "0"; }); });
      show("Nothing was changed: " + error.message, true);
      inFlight -= 1;
      return;
    }
    const gone = new Set(results.filter((r) => r.ok).map((r) => r.id));
    chosen.forEach((card) => {
      if (gone.has(card.dataset.id)) {
        card.classList.add("gone");
        setTimeout(() => { card.remove(); refreshSelection(); }, 300);
      } else {
        card.classList.remove("busy");
        card.querySelectorAll("button").forEach((b) => { b.disabled = b.dataset.action === "accept" && card.dataset.matte === "0"; });
      }
    });
    inFlight -= 1;
    refreshSelection();
    if (!inFlight) refresh();
  }

  async function undo() {
    const last = undoStack.pop();
    if (!last) { show("Nothing to undo on this page.", false); return; }
    inFlight += 1;
    actionSeq += 1;
    try {
      const reply = await post({ action: "undo", ids: last.tokens });
      const back = reply.results.filter((r) => r.ok);
      const failed = reply.results.filter((r) => !r.ok).map((r) => r.message);
      let text = back.length ? "Undid " + last.action + " of " + back.length + (back.length === 1 ? " file" : " files") + ": back in quarantine." : "";
      if (failed.length) text += (text ? "\n" : "") + failed.join("\n");
      show(text, failed.length > 0);
      inFlight -= 1;
      await refresh();
      if (back.length) {
        setCurrent(back[0].entry, true);
        if (!viewer.hidden && currentId) openViewer(currentId);
      }
    } catch (error) {
      inFlight -= 1;
      undoStack.push(last);
      show("Nothing was undone: " + error.message, true);
    }
  }

  async function actOnAll(button) {
    const box = document.getElementById("bulk-all");
    const count = Number(box.dataset.count);
    const action = button.dataset.all;
    const label = { accept: "Accept", requeue: "Requeue", reject: "Reject" }[action];
    if (!window.confirm(label + " all " + count + (count === 1 ? " photo" : " photos") + " of " + box.dataset.words + "?")) return;
    const filter = { reason: box.dataset.reason };
    if (box.dataset.folder !== "") filter.folder = Number(box.dataset.folder);
    if (box.dataset.hasShoot === "1") filter.shoot = box.dataset.shoot;
    actionSeq += 1;
    try {
      report(action, await post({ action: action, filter: filter, count: count }));
    } catch (error) {
      show("Nothing was changed: " + error.message, true);
    }
    refresh();
  }

  // --- live updates ----------------------------------------------------------------------

  let refreshing = null;
  function refresh() {
    if (!refreshing) refreshing = doRefresh().finally(() => { refreshing = null; });
    return refreshing;
  }

  async function doRefresh() {
    for (let attempt = 0; attempt < 3; attempt++) {
      const seq = actionSeq;
      const response = await fetch(window.location.href, { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      if (seq !== actionSeq || inFlight) continue; // an action ran meanwhile: this copy may predate it
      merge(fresh);
      return;
    }
  }

  function merge(fresh) {
    const known = new Map(Array.from(grid.querySelectorAll("article.card")).map((c) => [c.dataset.id, c]));
    const all = cards();
    const at = all.findIndex((c) => c.dataset.id === currentId);
    const wanted = Array.from(fresh.querySelectorAll("#grid > *")).map((node) => {
      const card = node.matches("article.card") ? known.get(node.dataset.id) : null;
      if (card && card.dataset.version === node.dataset.version && !card.classList.contains("gone")) return card;
      const made = document.importNode(node, true);
      localiseTimes(made);
      return made;
    });
    grid.replaceChildren(...wanted);
    for (const id of ["matching", "left", "bulk-all"]) {
      const mine = document.getElementById(id), theirs = fresh.getElementById(id);
      if (mine && theirs) mine.replaceWith(document.importNode(theirs, true));
      else if (mine && !theirs) mine.replaceWith(document.createElement("span"));
      else if (!mine && theirs) document.querySelector(".legend").before(document.importNode(theirs, true));
    }
    for (const id of ["filter-folder", "filter-shoot", "filter-reason"]) {
      const mine = document.getElementById(id), theirs = fresh.getElementById(id);
      if (mine && theirs) mine.innerHTML = theirs.innerHTML;
    }
    document.body.dataset.version = fresh.body.dataset.version;
    const now = cards();
    if (!cardById(currentId) && now.length) setCurrent(now[Math.min(Math.max(at, 0), now.length - 1)].dataset.id, false);
    else setCurrent(currentId, false);
    refreshSelection();
  }

  async function poll() {
    if (document.hidden) { setTimeout(poll, POLL_MS); return; } // a tab in the background asks nothing
    try {
      const response = await fetch(base + "/api/state", { credentials: "same-origin", cache: "no-store" });
      if (response.ok) {
        const state = await response.json();
        if (state.version !== document.body.dataset.version && !inFlight) await refresh();
      }
    } catch (error) { /* the daemon restarts: try again at the next tick */ }
    setTimeout(poll, POLL_MS);
  }

  // --- the viewer ------------------------------------------------------------------------

  const view = { id: null, geo: null, mode: "overlay", bg: "checker", scale: 1, tx: 0, ty: 0, tiles: new Map(), token: 0 };
  const modeNames = { photo: "photo", overlay: "photo + matte overlay", cutout: "cut-out", matte: "matte alone" };
  const bgNames = { checker: "checkerboard", white: "white", black: "black" };

  function tileKind() { return view.mode; }
  function thumbKind() { return view.mode === "matte" ? "matte" : view.mode === "cutout" ? "cutout" : "photo"; }

  async function openViewer(id) {
    const card = cardById(id);
    if (!card) return;
    const token = ++view.token;
    viewer.hidden = false;
    document.body.classList.add("viewing");
    const response = await fetch(base + "/api/view/" + id, { credentials: "same-origin" });
    if (token !== view.token) return;
    if (!response.ok) { closeViewer(); return; }
    const geo = await response.json();
    // The next photo of a shoot usually has the same size: keep the zoom and place, so a
    // reviewer checking hair at 100 % stays on the hair from one photo to the next.
    const keepView = view.id !== null && view.geo && view.geo.width === geo.width && view.geo.height === geo.height;
    view.id = id;
    view.geo = geo;
    view.version = card.dataset.version;
    if (!geo.has_matte && view.mode !== "photo") view.mode = "photo";
    if (geo.has_matte && !geo.has_photo) view.mode = "matte";
    document.getElementById("viewer-name").textContent = card.dataset.name;
    document.getElementById("viewer-reason").textContent = card.dataset.title;
    viewer.dataset.id = id;
    resetPlane();
    if (!keepView) fit();
    render();
    clearTimeout(view.prefetchTimer);
    view.prefetchTimer = setTimeout(() => prefetchNext(id), 400);
  }

  // Triage goes from one photo to the next: ask for the next one's tiles at this zoom while
  // this one is looked at, so that acting or → shows it sharp at once (the browser keeps them).
  async function prefetchNext(id) {
    const all = cards();
    const next = all[all.findIndex((c) => c.dataset.id === id) + 1];
    if (!next || viewer.hidden || view.id !== id) return;
    const response = await fetch(base + "/api/view/" + next.dataset.id, { credentials: "same-origin" });
    if (!response.ok || view.id !== id) return;
    const geo = await response.json();
    if (!geo.width || (view.mode !== "photo" && !geo.has_matte) || (view.mode !== "matte" && !geo.has_photo)) return;
    const same = geo.width === view.geo.width && geo.height === view.geo.height;
    const w = stage.clientWidth, h = stage.clientHeight;
    const scale = same ? view.scale : Math.min(w / geo.width, h / geo.height, 1) * 0.98;
    const tx = same ? view.tx : (w - geo.width * scale) / 2, ty = same ? view.ty : (h - geo.height * scale) / 2;
    const level = Math.max(0, Math.min(geo.levels - 1, Math.floor(Math.log2(1 / (scale * (window.devicePixelRatio || 1))))));
    const span = geo.tile * Math.pow(2, level);
    const x0 = Math.max(0, -tx / scale), y0 = Math.max(0, -ty / scale);
    const x1 = Math.min(geo.width, (w - tx) / scale), y1 = Math.min(geo.height, (h - ty) / scale);
    for (let row = Math.floor(y0 / span); row * span < y1; row++) {
      for (let column = Math.floor(x0 / span); column * span < x1; column++) {
        const img = new Image();
        img.src = base + "/tile/" + next.dataset.id + "/" + view.mode + "/" + level + "/" + column + "/" + row + "?v=" + next.dataset.version;
      }
    }
  }

  function closeViewer() {
    view.token += 1;
    view.id = null;
    viewer.hidden = true;
    document.body.classList.remove("viewing");
    plane.replaceChildren();
    view.tiles.clear();
    if (currentId) setCurrent(currentId, true);
  }

  function resetPlane() {
    plane.replaceChildren();
    view.tiles.clear();
    const geo = view.geo;
    if (!geo.width) {
      const none = document.createElement("div");
      none.className = "none";
      none.textContent = "no preview: this file cannot be shown as a picture";
      plane.append(none);
      return;
    }
    const thumb = document.createElement("img");
    thumb.className = "base";
    thumb.alt = "";
    thumb.src = base + "/thumb/" + view.id + "/" + thumbKind() + "?v=" + view.version;
    thumb.style.width = geo.width + "px";
    thumb.style.height = geo.height + "px";
    plane.append(thumb);
    plane.style.width = geo.width + "px";
    plane.style.height = geo.height + "px";
  }

  function fit() {
    const geo = view.geo;
    if (!geo || !geo.width) return;
    const w = stage.clientWidth, h = stage.clientHeight;
    view.scale = Math.min(w / geo.width, h / geo.height, 1) * 0.98;
    view.tx = (w - geo.width * view.scale) / 2;
    view.ty = (h - geo.height * view.scale) / 2;
  }

  function zoomAt(scale, px, py) {
    scale = Math.min(32, Math.max(0.01, scale));
    view.tx = px - (px - view.tx) * (scale / view.scale);
    view.ty = py - (py - view.ty) * (scale / view.scale);
    view.scale = scale;
    render();
  }

  function actualSize() {
    zoomAt(1, stage.clientWidth / 2, stage.clientHeight / 2);
  }

  function render() {
    const geo = view.geo;
    if (!geo || !geo.width) return;
    if (Math.abs(view.scale - Math.round(view.scale)) < 1e-9) {
      // Whole screen pixels at 100 % and at whole zooms: one image pixel is exactly one screen pixel (or a square of them).
      view.tx = Math.round(view.tx); view.ty = Math.round(view.ty);
    }
    plane.style.transform = "translate(" + view.tx + "px," + view.ty + "px) scale(" + view.scale + ")";
    plane.style.setProperty("--pad", Math.abs(view.scale - Math.round(view.scale)) < 1e-9 ? "0px" : (2 / view.scale) + "px");
    plane.classList.toggle("pixels", view.scale >= 2);
    stage.className = "stage" + (view.mode === "cutout" ? " bg-" + view.bg : "") + (view.mode === "matte" ? " bg-matte" : "");
    const level = Math.max(0, Math.min(geo.levels - 1, Math.floor(Math.log2(1 / (view.scale * (window.devicePixelRatio || 1))))));
    const span = geo.tile * Math.pow(2, level);
    const x0 = Math.max(0, -view.tx / view.scale), y0 = Math.max(0, -view.ty / view.scale);
    const x1 = Math.min(geo.width, (stage.clientWidth - view.tx) / view.scale);
    const y1 = Math.min(geo.height, (stage.clientHeight - view.ty) / view.scale);
    const kind = tileKind();
    if (x1 > x0 && y1 > y0) {
      for (let row = Math.floor(y0 / span); row * span < y1; row++) {
        for (let column = Math.floor(x0 / span); column * span < x1; column++) addTile(kind, level, column, row, span);
      }
    }
    if (view.tiles.size > 400) {
      for (const [key, img] of view.tiles) { if (img.dataset.level !== String(level)) { img.remove(); view.tiles.delete(key); } }
    }
    viewer.dataset.scale = String(view.scale);
    viewer.dataset.tx = String(view.tx);
    viewer.dataset.ty = String(view.ty);
    viewer.dataset.level = String(level);
    viewer.dataset.mode = view.mode;
    viewer.dataset.bg = view.bg;
    document.getElementById("viewer-mode").textContent = modeNames[view.mode] + (view.mode === "cutout" ? " on " + bgNames[view.bg] : "");
    document.getElementById("viewer-zoom").textContent = Math.round(view.scale * 100) + " %";
    const all = cards();
    document.getElementById("viewer-position").textContent = (all.findIndex((c) => c.dataset.id === view.id) + 1) + " of " + all.length + " on this page";
  }

  function addTile(kind, level, column, row, span) {
    const key = kind + "/" + level + "/" + column + "/" + row;
    if (view.tiles.has(key)) return;
    const geo = view.geo;
    const img = document.createElement("img");
    img.className = "tile-img";
    img.alt = "";
    img.dataset.level = String(level);
    img.style.left = column * span + "px";
    img.style.top = row * span + "px";
    // Tiles that meet at a fractional zoom leave a hairline between them; --pad (two screen
    // pixels, zero at whole zooms so 100 % stays exact) lets each one overlap the next.
    const lastColumn = (column + 1) * span >= geo.width, lastRow = (row + 1) * span >= geo.height;
    img.style.width = lastColumn ? (geo.width - column * span) + "px" : "calc(" + span + "px + var(--pad))";
    img.style.height = lastRow ? (geo.height - row * span) + "px" : "calc(" + span + "px + var(--pad))";
    img.style.zIndex = String(100 - level); // sharper levels cover blurrier ones
    img.addEventListener("load", () => { img.dataset.loaded = "1"; });
    img.addEventListener("error", () => { img.dataset.loaded = "error"; });
    img.src = base + "/tile/" + view.id + "/" + key + "?v=" + view.version;
    view.tiles.set(key, img);
    plane.append(img);
  }

  function setMode(mode) {
    if (!view.geo) return;
    if (mode !== "photo" && !view.geo.has_matte) { show("No matte was kept for this photo.", false); return; }
    if (mode !== "matte" && !view.geo.has_photo) { show("The photo itself cannot be shown.", false); return; }
    if (mode === "cutout" && view.mode === "cutout") {
      view.bg = { checker: "white", white: "black", black: "checker" }[view.bg];
      render();
      return;
    }
    view.mode = mode;
    resetPlane();
    render();
  }

  let drag = null;
  stage.addEventListener("pointerdown", (event) => {
    drag = { x: event.clientX, y: event.clientY, tx: view.tx, ty: view.ty };
    stage.setPointerCapture(event.pointerId);
    stage.classList.add("dragging");
  });
  stage.addEventListener("pointermove", (event) => {
    if (!drag) return;
    view.tx = drag.tx + event.clientX - drag.x;
    view.ty = drag.ty + event.clientY - drag.y;
    render();
  });
  const endDrag = () => { drag = null; stage.classList.remove("dragging"); };
  stage.addEventListener("pointerup", endDrag);
  stage.addEventListener("pointercancel", endDrag);
  stage.addEventListener("wheel", (event) => {
    event.preventDefault();
    const box = stage.getBoundingClientRect();
    zoomAt(view.scale * Math.pow(1.25, -Math.sign(event.deltaY)), event.clientX - box.left, event.clientY - box.top);
  }, { passive: false });
  window.addEventListener("resize", () => { if (!viewer.hidden) render(); });
  document.getElementById("viewer-close").addEventListener("click", closeViewer);

  // --- keys ------------------------------------------------------------------------------

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const typing = event.target.closest && event.target.closest("input, select, textarea");
    const key = event.key;
    if (key === "Escape") {
      if (!help.hidden) help.hidden = true;
      else if (!viewer.hidden) closeViewer();
      return;
    }
    if (typing && !(event.target.type === "checkbox")) return;
    if ((key === "Enter" || key === " ") && event.target.closest && event.target.closest("button, a, summary")) return;
    const inViewer = !viewer.hidden;
    const handled = () => event.preventDefault();
    const current = cardById(inViewer ? view.id : currentId);
    switch (key) {
      case "ArrowRight": case "ArrowDown": case "j": handled(); move(1); return;
      case "ArrowLeft": case "ArrowUp": case "k": handled(); move(-1); return;
      case "Enter": if (current) { handled(); openViewer(current.dataset.id); } return;
      case "a": case "A": if (current) { handled(); act("accept", [current]); } return;
      case "r": case "R": if (current) { handled(); act("requeue", [current]); } return;
      case "x": case "X": if (current) { handled(); act("reject", [current]); } return;
      case "u": case "U": handled(); undo(); return;
      case "?": handled(); help.hidden = !help.hidden; return;
    }
    if (!inViewer) return;
    switch (key) {
      case "o": case "O": handled(); setMode(view.mode === "overlay" ? "photo" : "overlay"); break;
      case "c": case "C": handled(); setMode("cutout"); break;
      case "m": case "M": handled(); setMode("matte"); break;
      case "p": case "P": handled(); setMode("photo"); break;
      case "1": case "z": case "Z": handled(); actualSize(); break;
      case "0": case "f": case "F": handled(); fit(); render(); break;
      case "+": case "=": handled(); zoomAt(view.scale * 2, stage.clientWidth / 2, stage.clientHeight / 2); break;
      case "-": case "_": handled(); zoomAt(view.scale / 2, stage.clientWidth / 2, stage.clientHeight / 2); break;
      default:
    }
  });

  // --- clicks ----------------------------------------------------------------------------

  document.addEventListener("click", (event) => {
    const all = event.target.closest("button[data-all]");
    if (all) { actOnAll(all); return; }
    const button = event.target.closest("button[data-action]");
    if (button && !button.disabled) {
      if (button.classList.contains("bulk-act")) act(button.dataset.action, picked());
      else act(button.dataset.action, [button.closest("article.card")]);
      return;
    }
    const tile = event.target.closest("article.card .tiles");
    if (tile) {
      const card = tile.closest("article.card");
      setCurrent(card.dataset.id, false);
      openViewer(card.dataset.id);
      return;
    }
    const card = event.target.closest("article.card");
    if (card) setCurrent(card.dataset.id, false);
  });
  document.addEventListener("change", (event) => {
    if (event.target.classList.contains("pick")) refreshSelection();
    if (event.target.matches(".filters select")) event.target.form.submit();
  });
  selectAll.addEventListener("change", () => {
    cards().forEach((c) => { c.querySelector(".pick").checked = selectAll.checked; });
    refreshSelection();
  });
  help.addEventListener("click", () => { help.hidden = true; });

  localiseTimes(document);
  refreshSelection();
  setCurrent(null, false);
  setTimeout(poll, POLL_MS);
})();
