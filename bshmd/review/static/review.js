// The review page: selection, the three actions, filters. No framework: a few listeners.
"use strict";
(function () {
  const base = document.body.dataset.base || "";
  const toast = document.getElementById("toast");
  const selectAll = document.getElementById("select-all");
  const selectedCount = document.getElementById("selected-count");
  const matching = document.getElementById("matching");
  const verbs = { accept: "Accepted", requeue: "Requeued", reject: "Rejected" };
  let toastTimer = null;

  function cards() { return Array.from(document.querySelectorAll("article.card")); }
  function picked() { return cards().filter((c) => c.querySelector(".pick").checked); }

  function refreshSelection() {
    const chosen = picked();
    cards().forEach((c) => c.classList.toggle("selected", c.querySelector(".pick").checked));
    selectedCount.textContent = chosen.length + " selected";
    document.querySelectorAll(".bulk-act").forEach((b) => { b.disabled = chosen.length === 0; });
    const all = cards();
    selectAll.checked = all.length > 0 && chosen.length === all.length;
    selectAll.indeterminate = chosen.length > 0 && chosen.length < all.length;
  }

  function show(text, isError) {
    toast.textContent = text;
    toast.classList.toggle("error", Boolean(isError));
    toast.classList.add("show");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => toast.classList.remove("show"), isError ? 12000 : 6000);
  }

  async function act(action, chosen) {
    if (chosen.length === 0) return;
    chosen.forEach((c) => { c.classList.add("busy"); c.querySelectorAll("button").forEach((b) => { b.disabled = true; }); });
    let reply;
    try {
      const response = await fetch(base + "/api/actions", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ action: action, ids: chosen.map((c) => c.dataset.id) }),
      });
      reply = await response.json();
      if (!response.ok) throw new Error(reply.error || response.statusText);
    } catch (error) {
      chosen.forEach((c) => { c.classList.remove("busy"); c.querySelectorAll("button").forEach((b) => { b.disabled = false; }); });
      show("Nothing was changed: " + error.message, true);
      return;
    }
    const done = [], failed = [];
    reply.results.forEach((result) => {
      const card = chosen.find((c) => c.dataset.id === result.id);
      if (!card) return;
      if (result.ok) {
        done.push(result.message);
        card.classList.add("gone");
        setTimeout(() => { card.remove(); refreshSelection(); }, 300);
      } else {
        failed.push(result.message);
        card.classList.remove("busy");
        card.querySelectorAll("button").forEach((b) => { b.disabled = b.dataset.action === "accept" && b.hasAttribute("title"); });
      }
    });
    if (matching) matching.textContent = String(Math.max(0, Number(matching.textContent) - done.length));
    let text = "";
    if (done.length) text += verbs[action] + " " + done.length + (done.length === 1 ? " file" : " files") + ".\n" + done.slice(0, 4).join("\n");
    if (done.length > 4) text += "\n…";
    if (failed.length) text += (text ? "\n" : "") + failed.join("\n");
    show(text, failed.length > 0);
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button || button.disabled) return;
    if (button.classList.contains("bulk-act")) {
      act(button.dataset.action, picked());
    } else {
      act(button.dataset.action, [button.closest("article.card")]);
    }
  });
  document.addEventListener("change", (event) => {
    if (event.target.classList.contains("pick")) refreshSelection();
  });
  selectAll.addEventListener("change", () => {
    cards().forEach((c) => { c.querySelector(".pick").checked = selectAll.checked; });
    refreshSelection();
  });
  document.querySelectorAll(".filters select").forEach((select) => {
    select.addEventListener("change", () => select.form.submit());
  });
  document.querySelectorAll("time[datetime]").forEach((t) => {
    const when = new Date(t.getAttribute("datetime"));
    if (!isNaN(when)) { t.title = t.textContent; t.textContent = when.toLocaleString([], { dateStyle: "medium", timeStyle: "short" }); }
  });
  refreshSelection();
})();
