// The web inbox's behaviour: forms -> JSON API (with the CSRF header), live updates over SSE,
// collision notices, canned responses and keyboard shortcuts. Plain JS, no build step.
"use strict";

(function () {
  const body = document.body;
  const csrf = body.dataset.csrf;
  if (!csrf) return; // the login page needs nothing of this
  const me = Number(body.dataset.agent);
  const strings = JSON.parse(document.getElementById("i18n").textContent);
  const app = document.querySelector(".app");
  const t = (key) => strings[key] || key;

  function conversationId() {
    const pane = document.querySelector(".conversation-pane[data-id]");
    return pane ? Number(pane.dataset.id) : null;
  }

  async function api(method, url, data, extra) {
    const response = await fetch(url, Object.assign({
      method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: data === undefined ? undefined : JSON.stringify(data),
    }, extra || {}));
    const payload = response.headers.get("Content-Type")?.includes("json") ? await response.json() : null;
    if (!response.ok) throw new Error(payload?.error?.message || response.statusText);
    return payload;
  }

  function flash(text) {
    const note = document.createElement("div");
    note.className = "flash";
    note.textContent = text;
    document.body.appendChild(note);
    setTimeout(() => note.remove(), 2500);
  }

  // --- forms: serialise to JSON, send to the API, refresh what changed -------------------------
  function formJson(form) {
    const data = {};
    for (const el of form.elements) {
      if (!el.name || el.name === "csrf_token" || el.disabled) continue;
      const value = el.value.trim();
      if (el.dataset.type === "int") data[el.name] = value === "" ? null : Number(value);
      else if (el.dataset.type === "list") data[el.name] = value ? value.split(",").map((s) => s.trim()).filter(Boolean) : [];
      else if (value !== "") data[el.name] = value;
    }
    return data;
  }

  async function submitForm(form) {
    const error = form.querySelector(".form-error");
    if (error) error.textContent = "";
    const button = form.querySelector("[type=submit]");
    if (button) button.disabled = true;
    try {
      await api(form.dataset.method || "POST", form.dataset.api, formJson(form));
      if (form.id === "reply-form") flash(t("sent"));
      form.querySelectorAll("textarea").forEach((el) => { el.value = ""; });
      await Promise.all([refreshPanes(), refreshList()]);
    } catch (exc) {
      if (error) error.textContent = exc.message; else flash(exc.message);
    } finally {
      if (button) button.disabled = false;
    }
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!form.dataset.api) return;
    event.preventDefault();
    submitForm(form);
  });

  // --- partial refreshes ------------------------------------------------------------------------
  async function fetchHtml(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) return null;
    return new DOMParser().parseFromString(await response.text(), "text/html");
  }

  async function refreshList() {
    const doc = await fetchHtml("/ui/list" + window.location.search);
    if (!doc) return;
    const list = document.getElementById("list");
    const cursor = document.querySelector(".conv.cursor")?.dataset.id;
    const selected = new Set([...document.querySelectorAll(".conv.selected")].map((el) => el.dataset.id));
    list.replaceChildren(...doc.body.childNodes);
    const id = conversationId();
    list.querySelectorAll(".conv").forEach((el) => {
      el.classList.toggle("active", Number(el.dataset.id) === id);
      el.classList.toggle("cursor", el.dataset.id === cursor);
      el.classList.toggle("selected", selected.has(el.dataset.id));
    });
    const counts = document.getElementById("list-counts");
    if (counts) {
      for (const [name, value] of Object.entries(counts.dataset)) {
        const badge = document.querySelector(`[data-count="${name}"]`);
        if (badge) badge.textContent = value;
      }
    }
  }

  // Replace the header, timeline and customer panel; the composer keeps what is being typed.
  async function refreshPanes() {
    const id = conversationId();
    if (!id) return;
    const doc = await fetchHtml(`/ui/conversations/${id}`);
    if (!doc) return;
    for (const part of ["conv-head", "timeline", "customer", "presence"]) {
      const fresh = doc.getElementById(part);
      const current = document.getElementById(part);
      if (fresh && current) {
        keepEdits(current, fresh);
        current.replaceWith(fresh);
      }
    }
    scrollTimeline();
  }

  // A live refresh must not undo what the agent is choosing (an assignee picked, not yet submitted).
  function keepEdits(current, fresh) {
    for (const field of current.querySelectorAll("form[data-api] [name]")) {
      const edited = field.tagName === "SELECT"
        ? [...field.options].some((o) => o.selected !== o.defaultSelected)
        : "defaultValue" in field && field.value !== field.defaultValue;
      if (!edited) continue;
      const api = CSS.escape(field.closest("form").dataset.api);
      const twin = fresh.querySelector(`form[data-api="${api}"] [name="${CSS.escape(field.name)}"]`);
      if (twin) twin.value = field.value;
    }
  }

  function scrollTimeline() {
    const timeline = document.getElementById("timeline");
    if (timeline) timeline.scrollTop = timeline.scrollHeight;
  }

  // Sanitised HTML mail loads only when asked, into an iframe sandboxed without scripts.
  document.addEventListener("toggle", (event) => {
    const frame = event.target.querySelector?.("iframe[data-src]");
    if (frame && event.target.open && !frame.src) frame.src = frame.dataset.src;
  }, true);

  // --- composer: tabs, channel -> identities, canned responses -----------------------------------
  function showTab(name) {
    document.querySelectorAll(".composer .tab").forEach((b) => b.classList.toggle("current", b.dataset.tab === name));
    document.querySelectorAll(".composer .tab-body").forEach((f) => { f.hidden = f.dataset.tab !== name; });
    document.getElementById(name === "note" ? "note-body" : "reply-body")?.focus();
  }

  document.addEventListener("click", (event) => {
    const tab = event.target.closest(".composer .tab");
    if (tab) showTab(tab.dataset.tab);
    if (event.target.closest("[data-action=help]")) document.getElementById("help").showModal();
    const bulk = event.target.closest("[data-bulk]");
    if (bulk) runBulk(bulk.dataset.bulk);
  });

  function syncRecipients() {
    const channel = document.getElementById("reply-channel");
    const to = document.getElementById("reply-to");
    if (!channel || !to) return;
    const kind = channel.value === "email" ? "email" : "phone";
    let first = null;
    for (const option of to.options) {
      option.hidden = option.dataset.kind !== kind;
      if (!option.hidden && !first) first = option;
    }
    if (to.selectedOptions[0]?.hidden && first) to.value = first.value;
  }
  document.addEventListener("change", (event) => {
    if (event.target.id === "reply-channel") syncRecipients();
    if (event.target.id === "canned") insertCanned(event.target.value);
  });

  async function insertCanned(cannedId) {
    const id = conversationId();
    if (!cannedId || !id) return;
    const out = await api("POST", `/api/v1/canned/${cannedId}/render`, { conversation_id: id });
    const box = document.getElementById("reply-body");
    box.value = box.value.replace(/^\/\S*\s*$/, "") + out.text;
    box.focus();
    document.getElementById("canned").value = "";
  }

  // Typing "/shortcut" then Tab fills in that canned response.
  document.addEventListener("keydown", (event) => {
    if (event.target.id !== "reply-body" || event.key !== "Tab") return;
    const match = event.target.value.match(/^\/(\S+)$/);
    const option = match && document.querySelector(`#canned option[data-shortcut="${CSS.escape(match[1])}"]`);
    if (option) { event.preventDefault(); insertCanned(option.value); }
  });

  // --- presence: announce viewing/typing, show others' --------------------------------------------
  let lastTyping = 0;
  function announce(state, keepalive) {
    const id = conversationId();
    if (!id) return Promise.resolve();
    return api("POST", `/api/v1/conversations/${id}/presence`, { state }, keepalive ? { keepalive: true } : {})
      .catch(() => {});
  }
  document.addEventListener("input", (event) => {
    if (!["reply-body", "note-body"].includes(event.target.id)) return;
    const now = Date.now();
    if (now - lastTyping > 3000) { lastTyping = now; announce("typing"); }
  });
  window.addEventListener("pagehide", () => announce("left", true));

  const here = new Map();
  function showPresence(notice) {
    if (notice.conversation_id !== conversationId() || notice.agent_id === me) return;
    if (notice.state === "left") here.delete(notice.agent_id); else here.set(notice.agent_id, notice);
    const box = document.getElementById("presence");
    if (!box) return;
    box.replaceChildren(...[...here.values()].map((n) => {
      const span = document.createElement("span");
      span.dataset.agent = n.agent_id;
      span.textContent = `${n.agent_name} ${n.state === "typing" ? t("typing") : t("viewing")}`;
      return span;
    }));
  }

  // --- live updates ------------------------------------------------------------------------------
  let listTimer = null;
  function onEvent(message) {
    const event = JSON.parse(message.data);
    clearTimeout(listTimer);
    listTimer = setTimeout(refreshList, 150);
    if (event.conversation_id && event.conversation_id === conversationId()) refreshPanes();
    else if (event.customer_id && document.querySelector(`#customer`) && event.type.startsWith("case.")) refreshPanes();
  }
  function connect() {
    const source = new EventSource("/api/v1/events");
    for (const type of ["message.received", "message.sent", "note.added", "conversation.created",
      "conversation.status_changed", "conversation.assigned", "conversation.updated", "delivery.updated",
      "complaint.opened", "call.logged", "call.missed", "customer.merged", "case.state_changed"]) {
      source.addEventListener(type, onEvent);
    }
    source.addEventListener("presence", (message) => showPresence(JSON.parse(message.data)));
    source.addEventListener("open", () => { app.dataset.live = "on"; });
    source.addEventListener("error", () => { app.dataset.live = "off"; });
  }

  // --- list navigation, selection, bulk actions, shortcuts ------------------------------------------
  function rows() { return [...document.querySelectorAll(".conv")]; }
  function moveCursor(step) {
    const all = rows();
    if (!all.length) return;
    const at = all.findIndex((el) => el.classList.contains("cursor"));
    const start = at >= 0 ? at : all.findIndex((el) => el.classList.contains("active"));
    const next = all[Math.min(Math.max(start + step, 0), all.length - 1)];
    all.forEach((el) => el.classList.remove("cursor"));
    next.classList.add("cursor");
    next.scrollIntoView({ block: "nearest" });
  }
  function openCursor() {
    const row = document.querySelector(".conv.cursor a");
    if (row) window.location.href = row.href;
  }
  function toggleSelect() {
    const row = document.querySelector(".conv.cursor") || document.querySelector(".conv.active");
    if (row) row.classList.toggle("selected");
    const count = document.querySelectorAll(".conv.selected").length;
    document.querySelector(".bulk").hidden = count === 0;
    document.querySelector(".bulk-count").textContent = count;
  }
  async function runBulk(kind) {
    const ids = [...document.querySelectorAll(".conv.selected")].map((el) => Number(el.dataset.id));
    if (!ids.length) return;
    const data = kind === "resolve" ? { ids, action: "status", status: "resolved" } : { ids, action: "assign", agent_id: me };
    try { await api("POST", "/api/v1/conversations/bulk", data); } catch (exc) { flash(exc.message); }
    document.querySelector(".bulk").hidden = true;
    await refreshList();
    await refreshPanes();
  }

  const keys = {
    j: () => moveCursor(1), k: () => moveCursor(-1), Enter: openCursor, x: toggleSelect,
    r: () => showTab("reply"), n: () => showTab("note"),
    e: () => document.getElementById("resolve-form")?.requestSubmit(),
    "/": () => document.getElementById("search")?.focus(),
    "?": () => document.getElementById("help").showModal(),
  };
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("input, textarea, select, [contenteditable]")) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    const action = keys[event.key];
    if (action) { event.preventDefault(); action(); }
  });

  syncRecipients();
  scrollTimeline();
  connect();
  if (conversationId()) {
    announce("viewing");
    setInterval(() => announce(document.activeElement?.tagName === "TEXTAREA" ? "typing" : "viewing"), 20000);
  }
})();
