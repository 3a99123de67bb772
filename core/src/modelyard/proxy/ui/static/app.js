// modelyard dashboard: plain JavaScript over the /ui/api/* JSON endpoints (docs/dashboard.md).
// The master key is read from the sign-in field, sent once and cleared; the session lives in an
// HttpOnly cookie, the CSRF token only in this script's memory. Every value from the API goes into
// the page as text (textContent), never as HTML.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  let csrf = null;
  let timer = null;
  let current = null;
  const charts = {};

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
    return node;
  }

  class SignedOut extends Error {}

  async function api(method, path, body) {
    const init = { method, credentials: "same-origin", headers: {} };
    if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    if (method !== "GET" && csrf) init.headers["X-CSRF-Token"] = csrf;
    const res = await fetch(path, init);
    if (res.status === 401 && path !== "/ui/api/login") { showSignin(); throw new SignedOut(); }
    const data = await res.json();
    if (!res.ok) throw new Error((data.error && data.error.message) || ("HTTP " + res.status));
    return data;
  }

  const fmt = {
    num: (v, d = 0) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d })),
    usd: (v) => (v === null || v === undefined ? "–" : "$" + Number(v).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: v < 1 ? 6 : 2 })),
    pct: (v) => (v === null || v === undefined ? "–" : (v * 100).toFixed(1) + "%"),
  };

  // ------------------------------------------------------------------ session

  function showSignin() {
    stopPolling();
    csrf = null;
    $("nav").hidden = true;
    $("signout").hidden = true;
    for (const v of document.querySelectorAll(".view")) v.hidden = true;
    $("signin").hidden = false;
    $("signin-key").focus();
  }

  async function signin(ev) {
    ev.preventDefault();
    const input = $("signin-key");
    const key = input.value;
    input.value = "";
    $("signin-error").textContent = "";
    try {
      const data = await api("POST", "/ui/api/login", { key });
      csrf = data.csrf_token;
      start();
    } catch (err) {
      $("signin-error").textContent = err.message;
    }
  }

  async function signout() {
    try { await api("POST", "/ui/api/logout"); } catch (err) { if (!(err instanceof SignedOut)) console.warn(err.message); }
    showSignin();
  }

  function start() {
    $("signin").hidden = true;
    $("nav").hidden = false;
    $("signout").hidden = false;
    route();
  }

  // ------------------------------------------------------------------ views

  const views = { deployments: loadDeployments, traffic: loadTraffic, spend: loadSpend, keys: loadKeys };
  const polled = { deployments: 2000, traffic: 2000 };

  function stopPolling() { if (timer) { clearInterval(timer); timer = null; } }

  function route() {
    if (csrf === null) return;
    const name = (location.hash || "#deployments").slice(1);
    current = views[name] ? name : "deployments";
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === current);
    for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== "view-" + current;
    stopPolling();
    refresh();
    if (polled[current]) timer = setInterval(() => { if (document.visibilityState === "visible") refresh(); }, polled[current]);
  }

  async function refresh() {
    const name = current;
    try { await views[name](); } catch (err) { if (!(err instanceof SignedOut)) console.warn(name + ": " + err.message); }
  }

  // A bar of what is left (quota: full is good) or of what is used (budget: empty is good).
  function meter(fraction, label, used) {
    if (fraction === null || fraction === undefined) return el("span", { class: "quota", text: label });
    const scale = used ? { low: 0.7, high: 0.9, optimum: 0 } : { low: 0.1, high: 0.3, optimum: 1 };
    return el("span", { class: "quota" }, el("meter", { min: 0, max: 1, ...scale, value: fraction, title: label }), " " + label);
  }

  function table(node, head, rows) {
    node.replaceChildren();
    node.append(el("thead", {}, el("tr", {}, ...head.map(([h, cls]) => el("th", { class: cls, text: h })))));
    const body = el("tbody");
    if (!rows.length) body.append(el("tr", {}, el("td", { class: "empty", colspan: head.length, text: "Nothing yet." })));
    for (const r of rows) body.append(el("tr", {}, ...r.map((c, i) => el("td", { class: head[i][1] }, c))));
    node.append(body);
  }

  async function loadDeployments() {
    const data = await api("GET", "/ui/api/deployments");
    $("router-meta").textContent = `Routing: ${data.router.routing_strategy || "–"}, state: ${data.router.state || "–"}`;
    const groups = $("groups");
    groups.replaceChildren();
    for (const g of data.groups) {
      const t = el("table", { "data-group": g.model_name });
      const head = [["Deployment"], ["Model"], ["Mode"], ["Priority", "num"], ["Status"], ["Cooldown", "num"], ["In flight", "num"], ["Requests left"], ["Tokens left"], ["Last minute", "num"]];
      const rows = g.deployments.map((d) => {
        const q = d.quota;
        return [
          el("span", { title: d.api_base || "" }, d.id),
          d.model,
          d.mode,
          d.priority === null ? "–" : String(d.priority),
          el("span", { class: "badge " + d.status, "data-status": d.status, text: d.status.replace(/_/g, " ") }),
          d.cooldown_remaining_s > 0 ? d.cooldown_remaining_s.toFixed(1) + " s" : "–",
          String(d.in_flight),
          q ? meter(q.requests_fraction, fmt.num(q.remaining_requests)) : el("span", { class: "quota", text: "not seen" }),
          q ? meter(q.tokens_fraction, fmt.num(q.remaining_tokens)) : el("span", { class: "quota", text: "not seen" }),
          `${d.last_minute.requests} / ${d.last_minute.errors} err`,
        ];
      });
      table(t, head, rows);
      t.querySelectorAll("tbody tr").forEach((tr, i) => tr.setAttribute("data-deployment", g.deployments[i].id));
      groups.append(el("div", { class: "group" }, el("h3", { text: g.model_name }), t));
    }
    const tbody = $("plugins").querySelector("tbody");
    tbody.replaceChildren(...data.plugins.map((p) => el("tr", {},
      el("td", { text: p.name }), el("td", { text: p.distribution }), el("td", { text: p.version }),
      el("td", { text: p.hook_api ? p.hook_api.join(".") : "–" }),
      el("td", {}, el("span", { class: "badge " + p.status.replace(/ /g, "-"), text: p.status }), p.reason ? " " + p.reason : ""))));
  }

  function chart(id, title, times, series, opts) {
    const node = $(id);
    const width = Math.max(320, node.clientWidth || 400);
    const data = [times, ...series.map((s) => s.values)];
    const key = series.map((s) => s.label).join("|") + "|" + times.length;
    if (charts[id] && charts[id].key === key) { charts[id].plot.setData(data); return; }
    if (charts[id]) charts[id].plot.destroy();
    const palette = ["#2f5fd0", "#d0562f", "#1a7f37", "#8b3fc9", "#b38f00", "#0f8b8d"];
    const plot = new uPlot({
      width, height: 200, ...(opts || {}),
      series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: palette[i % palette.length], width: 2, spanGaps: false, ...(s.opts || {}) }))],
      axes: [{}, { size: 60 }],
    }, data, node);
    charts[id] = { key, plot };
  }

  async function loadTraffic() {
    const minutes = $("traffic-minutes").value;
    const data = await api("GET", "/ui/api/traffic?minutes=" + encodeURIComponent(minutes));
    $("traffic-source").textContent = data.source === "redis" ? "All instances (through Redis)." : "This process.";
    const names = Object.keys(data.groups);
    const tbody = $("traffic-table").querySelector("tbody");
    const span = data.seconds;
    tbody.replaceChildren(...(names.length ? names.map((n) => {
      const g = data.groups[n];
      return el("tr", { "data-group": n }, el("td", { text: n }), el("td", { class: "num", text: fmt.num(g.requests) }),
        el("td", { class: "num", text: fmt.num(g.requests / span, 2) }), el("td", { class: "num", text: fmt.num(g.p50_ms_total, 1) }),
        el("td", { class: "num", text: fmt.num(g.p99_ms_total, 1) }), el("td", { class: "num", text: g.requests ? fmt.pct(g.errors / g.requests) : "–" }));
    }) : [el("tr", {}, el("td", { class: "empty", colspan: 6, text: "No requests in this period." }))]));
    const pick = (field) => names.map((n) => ({ label: n, values: data.groups[n][field] }));
    chart("chart-rps", "Requests/s", data.times, pick("rps"));
    chart("chart-p99", "p99", data.times, pick("p99_ms"));
    chart("chart-errors", "Errors", data.times, pick("error_rate"));
  }

  function isoDay(d) { return d.toISOString().slice(0, 10); }

  function setRange(days) {
    const end = new Date();
    const start = new Date(end.getTime() - (days - 1) * 86400000);
    $("spend-start").value = isoDay(start);
    $("spend-end").value = isoDay(end);
  }

  async function loadSpend() {
    if (!$("spend-start").value) setRange(7);
    const q = new URLSearchParams({ start_date: $("spend-start").value, end_date: $("spend-end").value });
    const data = await api("GET", "/ui/api/spend?" + q.toString());
    $("spend-total").textContent = `Total ${fmt.usd(data.total.spend)} over ${fmt.num(data.total.requests)} requests, ${data.start_date} to ${data.end_date}.`;
    const rows = (list) => list.map((r) => [r.name === null ? "(none)" : r.name, fmt.usd(r.spend), fmt.num(r.requests), fmt.num(r.total_tokens)]);
    const head = (first) => [[first], ["Spend", "num"], ["Requests", "num"], ["Tokens", "num"]];
    table($("spend-model"), head("Model group"), rows(data.by_model));
    table($("spend-deployment"), head("Deployment"), rows(data.by_deployment));
    table($("spend-key"), head("Key"), rows(data.by_key));
    table($("spend-day"), head("Day"), rows(data.by_day));
    // One bar per day of the range, zero where nothing was spent; the axis spans exactly the range.
    const byDay = Object.fromEntries(data.by_day.map((d) => [d.name, d.spend]));
    const first = Date.parse(data.start_date + "T00:00:00Z") / 1000;
    const last = Date.parse(data.end_date + "T00:00:00Z") / 1000;
    const times = [];
    for (let t = first; t <= last; t += 86400) times.push(t);
    const values = times.map((t) => byDay[new Date(t * 1000).toISOString().slice(0, 10)] || 0);
    chart("chart-spend", "Spend", times, [{ label: "USD", values, opts: { paths: uPlot.paths.bars({ size: [0.6, 60] }), fill: "#2f5fd055", points: { show: false } } }],
      { scales: { x: { time: true, range: () => [first - 43200, last + 43200] } } });
  }

  async function loadKeys() {
    const data = await api("GET", "/ui/api/keys");
    const box = $("keys-unavailable");
    box.hidden = data.available;
    box.textContent = data.available ? "" : data.reason;
    for (const f of ["key-form", "team-form"]) $(f).hidden = !data.available;
    const teamSelect = $("key-team");
    const chosen = teamSelect.value;
    teamSelect.replaceChildren(el("option", { value: "", text: "(none)" }), ...data.teams.map((t) => el("option", { value: t.team_id, text: t.team_alias || t.team_id })));
    teamSelect.value = chosen;
    const used = (r) => (r.max_budget === null ? fmt.usd(r.spend) + " (no budget)" : meter(r.max_budget ? Math.min(1, r.spend / r.max_budget) : 1, `${fmt.usd(r.spend)} of ${fmt.usd(r.max_budget)}`, true));
    const teamName = Object.fromEntries(data.teams.map((t) => [t.team_id, t.team_alias || t.team_id]));
    $("keys").querySelector("tbody").replaceChildren(...data.keys.map((k) => el("tr", { "data-key-alias": k.key_alias || "" },
      el("td", { text: k.key_alias || "–" }), el("td", {}, el("code", { text: k.key_name })), el("td", { text: k.team_id ? teamName[k.team_id] || k.team_id : "–" }),
      el("td", { text: k.models && k.models.length ? k.models.join(", ") : "all" }), el("td", {}, used(k)),
      el("td", { text: k.expires ? k.expires.slice(0, 16).replace("T", " ") : "never" }),
      el("td", {}, el("button", { type: "button", class: "danger", text: "Revoke", onclick: () => revoke(k) })))));
    $("teams").querySelector("tbody").replaceChildren(...data.teams.map((t) => el("tr", {},
      el("td", { text: t.team_alias || "–" }), el("td", {}, el("code", { text: t.team_id })),
      el("td", { text: t.models && t.models.length ? t.models.join(", ") : "all" }), el("td", {}, used(t)))));
  }

  async function createKey(ev) {
    ev.preventDefault();
    $("key-error").textContent = "";
    const body = {};
    const alias = $("key-alias").value.trim();
    if (alias) body.key_alias = alias;
    if ($("key-team").value) body.team_id = $("key-team").value;
    const models = $("key-models").value.split(",").map((s) => s.trim()).filter(Boolean);
    if (models.length) body.models = models;
    if ($("key-budget").value !== "") body.max_budget = Number($("key-budget").value);
    if ($("key-duration").value.trim()) body.budget_duration = $("key-duration").value.trim();
    try {
      const made = await api("POST", "/ui/api/keys", body);
      $("new-key-value").textContent = made.key;
      $("new-key").hidden = false;
      $("key-form").reset();
      await loadKeys();
    } catch (err) {
      if (!(err instanceof SignedOut)) $("key-error").textContent = err.message;
    }
  }

  async function revoke(k) {
    if (!window.confirm(`Revoke the key ${k.key_alias || k.key_name}? Requests with it are refused from now on.`)) return;
    try { await api("POST", "/ui/api/keys/delete", { keys: [k.token] }); } catch (err) { if (!(err instanceof SignedOut)) $("key-error").textContent = err.message; }
    await loadKeys();
  }

  async function createTeam(ev) {
    ev.preventDefault();
    $("team-error").textContent = "";
    const body = { team_alias: $("team-alias").value.trim() };
    if ($("team-budget").value !== "") body.max_budget = Number($("team-budget").value);
    try { await api("POST", "/ui/api/teams", body); $("team-form").reset(); await loadKeys(); } catch (err) { if (!(err instanceof SignedOut)) $("team-error").textContent = err.message; }
  }

  // ------------------------------------------------------------------ wiring

  document.addEventListener("DOMContentLoaded", async () => {
    $("signin-form").addEventListener("submit", signin);
    $("signout").addEventListener("click", signout);
    $("traffic-minutes").addEventListener("change", refresh);
    $("spend-form").addEventListener("submit", (ev) => { ev.preventDefault(); refresh(); });
    for (const b of document.querySelectorAll("#spend-form button[data-days]")) b.addEventListener("click", () => { setRange(Number(b.dataset.days)); refresh(); });
    $("key-form").addEventListener("submit", createKey);
    $("team-form").addEventListener("submit", createTeam);
    $("new-key-done").addEventListener("click", () => { $("new-key-value").textContent = ""; $("new-key").hidden = true; });
    window.addEventListener("hashchange", route);
    try {
      const data = await api("GET", "/ui/api/session");
      if (data.signed_in) { csrf = data.csrf_token || ""; start(); } else showSignin();
    } catch (err) { showSignin(); }
  });
})();
