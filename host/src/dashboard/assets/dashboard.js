// Tally dashboard: polls the server it was loaded from every 500 ms.
// Gateway: GET /cluster (every node). Single node: GET /counter, /counters, /peers, /metrics.
"use strict";

(function () {
  const POLL_MS = 500;
  const TIMEOUT_MS = 2000;
  // As many named counters as the gateway's GET /cluster carries (the first by name).
  const COUNTERS_SHOWN = 100;
  // A counter name, as the nodes check it (they check again).
  const NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;
  // A browser resolves "." and ".." in a URL path, so /counters/../increment would be another
  // route: such names are valid but cannot be written from here (nor through the gateway).
  const unaddressable = (name) => name === "." || name === "..";
  const $ = (id) => document.getElementById(id);

  let mode = null; // "gateway" | "node"
  const previous = new Map(); // url -> {t, fin, fout} for frame rates
  const lastValues = new Map(); // url -> last value shown (for the change highlight)

  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({
      "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
    }[c]));
  }

  async function fetchWithTimeout(path, init) {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), TIMEOUT_MS);
    try {
      return await fetch(path, Object.assign({ cache: "no-store", signal: ctrl.signal }, init || {}));
    } finally {
      clearTimeout(timer);
    }
  }

  async function getJson(path) {
    const r = await fetchWithTimeout(path);
    if (!r.ok) throw new Error(path + ": HTTP " + r.status);
    return r.json();
  }

  // Frame counters from Prometheus text: {in: {type: n}, out: {type: n}} or null.
  function parseFrames(text) {
    const frames = { in: {}, out: {} };
    let found = false;
    for (const line of text.split("\n")) {
      const m = /^tally_frames_(in|out)_total(\{[^}]*\})?\s+([0-9.eE+-]+)/.exec(line);
      if (!m) continue;
      const t = /type="([^"]*)"/.exec(m[2] || "");
      const kind = t ? t[1] : "all";
      const dir = frames[m[1]];
      dir[kind] = (dir[kind] || 0) + Number(m[3]);
      found = true;
    }
    return found ? frames : null;
  }

  const sum = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);

  // A gateway says so in GET /health (which every server here answers, even when down).
  async function probe() {
    try {
      const r = await fetchWithTimeout("/health");
      const body = await r.json();
      if (body && body.role === "gateway") return "gateway";
    } catch (e) { /* a node, or not reachable yet */ }
    return "node";
  }

  async function loadNode() {
    const t0 = performance.now();
    const counter = await getJson("/counter");
    const latency = performance.now() - t0;
    const [peers, frames, list] = await Promise.all([
      getJson("/peers").catch(() => null),
      fetchWithTimeout("/metrics")
        .then((r) => (r.ok ? r.text() : ""))
        .then(parseFrames)
        .catch(() => null),
      getJson("/counters").catch(() => null),
    ]);
    // The same shape as the gateway's: the first COUNTERS_SHOWN names, and how many in all.
    let named = null, total = null;
    const counters = {};
    if (list && list.counters) {
      const names = Object.keys(list.counters).sort();
      total = names.length;
      named = {};
      for (const name of names.slice(0, COUNTERS_SHOWN)) {
        named[name] = list.counters[name];
        counters[name] = { converged: null, value: list.counters[name] };
      }
    }
    const node = {
      url: location.origin, healthy: true, id: counter.node, value: counter.value,
      latency_ms: latency, peers, frames, counters: named, counters_total: total, error: null,
    };
    return {
      nodes: [node], converged: null, value: counter.value, healthy: 1, total: 1,
      counters, counters_total: total || 0, counters_converged: null,
    };
  }

  function rates(node, now) {
    if (!node.frames) { previous.delete(node.url); return null; }
    const fin = sum(node.frames.in), fout = sum(node.frames.out);
    const prev = previous.get(node.url);
    previous.set(node.url, { t: now, fin, fout });
    if (!prev || now <= prev.t) return null;
    const dt = (now - prev.t) / 1000;
    return { in: Math.max(0, (fin - prev.fin) / dt), out: Math.max(0, (fout - prev.fout) / dt) };
  }

  const fmtRate = (r) => (r == null ? "–" : r.toFixed(1));
  const fmtMs = (ms) => (ms == null ? "–" : ms < 10 ? ms.toFixed(2) + " ms" : Math.round(ms) + " ms");
  function fmtAgo(ms) {
    if (ms == null) return "never";
    if (ms < 1000) return ms + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    return Math.round(ms / 60000) + " min";
  }

  function cardFor(url) {
    const grid = $("nodes");
    for (const el of grid.children) if (el.dataset.nodeUrl === url) return el;
    const card = document.createElement("article");
    card.className = "card node";
    card.dataset.nodeUrl = url;
    card.innerHTML =
      '<header><span class="dot"></span><h3 class="node-id"></h3></header>' +
      '<div class="url"></div>' +
      '<div class="node-value" data-role="value" data-value="">–</div>' +
      '<div class="facts">' +
      '<span>in <b data-role="fps-in">–</b> f/s</span>' +
      '<span>out <b data-role="fps-out">–</b> f/s</span>' +
      '<span>latency <b data-role="latency">–</b></span></div>' +
      '<div class="error" data-role="error" hidden></div>' +
      '<div data-role="peers"></div>';
    grid.appendChild(card);
    return card;
  }

  function peersHtml(peers) {
    if (peers == null) return '<div class="empty">peers unknown</div>';
    if (peers.length === 0) return '<div class="empty">no peers yet</div>';
    const rows = peers.map((p) =>
      '<tr><td class="addr" title="source: ' + esc(p.source || "?") + '">' + esc(p.addr) + "</td>" +
      '<td><span class="state ' + (p.status === "alive" ? "alive" : "down") + '">' + esc(p.status) + "</span></td>" +
      "<td>" + esc(p.fails ?? "") + "</td>" +
      "<td>" + esc(fmtAgo(p.last_seen_ms_ago)) + "</td></tr>").join("");
    return '<table class="peers"><thead><tr><th>peer (gossip)</th><th>state</th>' +
      "<th>fails</th><th>last heard</th></tr></thead><tbody>" + rows + "</tbody></table>";
  }

  function render(snapshot) {
    const now = performance.now();
    const urls = new Set(snapshot.nodes.map((n) => n.url));
    for (const el of Array.from($("nodes").children)) {
      if (!urls.has(el.dataset.nodeUrl)) { el.remove(); previous.delete(el.dataset.nodeUrl); }
    }
    let totalIn = null, totalOut = null;
    const healthyValues = [];
    for (const n of snapshot.nodes) {
      const card = cardFor(n.url);
      card.dataset.healthy = String(!!n.healthy);
      card.querySelector(".node-id").textContent = n.id || n.url;
      card.querySelector(".url").textContent = n.url;
      const valueEl = card.querySelector('[data-role="value"]');
      const shown = n.value == null ? "–" : String(n.value);
      valueEl.textContent = shown;
      valueEl.dataset.value = n.value == null ? "" : String(n.value);
      if (lastValues.has(n.url) && lastValues.get(n.url) !== shown && n.value != null) {
        valueEl.classList.add("changed");
        setTimeout(() => valueEl.classList.remove("changed"), 700);
      }
      lastValues.set(n.url, shown);
      if (n.healthy && n.value != null) healthyValues.push(String(n.value));
      const r = rates(n, now);
      card.querySelector('[data-role="fps-in"]').textContent = fmtRate(r && r.in);
      card.querySelector('[data-role="fps-out"]').textContent = fmtRate(r && r.out);
      if (r) { totalIn = (totalIn || 0) + r.in; totalOut = (totalOut || 0) + r.out; }
      card.querySelector('[data-role="latency"]').textContent = fmtMs(n.latency_ms);
      const err = card.querySelector('[data-role="error"]');
      const message = n.error || (!n.healthy && n.last_error) || "";
      err.hidden = !message;
      err.textContent = message;
      card.querySelector('[data-role="peers"]').innerHTML = peersHtml(n.peers);
    }

    const distinct = new Set(healthyValues);
    const big = $("cluster-value");
    const pill = $("convergence");
    if (mode === "node") {
      big.textContent = snapshot.value == null ? "–" : String(snapshot.value);
      big.dataset.value = snapshot.value == null ? "" : String(snapshot.value);
      pill.dataset.converged = "";
      pill.textContent = "single node view";
      pill.title = "Convergence needs every node: open the gateway's dashboard.";
    } else if (healthyValues.length === 0) {
      big.textContent = "–";
      big.dataset.value = "";
      pill.dataset.converged = "down";
      pill.textContent = "no healthy node";
    } else if (distinct.size === 1 && snapshot.converged !== false) {
      big.textContent = healthyValues[0];
      big.dataset.value = healthyValues[0];
      pill.dataset.converged = "true";
      pill.textContent = "✓ converged · " + healthyValues.length + " nodes agree";
    } else {
      const max = healthyValues.map(Number).reduce((a, b) => Math.max(a, b));
      big.textContent = String(max);
      big.dataset.value = String(max);
      pill.dataset.converged = "false";
      pill.textContent = "converging · " + distinct.size + " different values";
    }
    for (const el of document.querySelectorAll('[data-role="value"]')) {
      el.classList.toggle("lagging", mode === "gateway" && distinct.size > 1 && el.dataset.value !== big.dataset.value);
    }
    $("stat-healthy").textContent = snapshot.healthy + " / " + snapshot.total;
    $("stat-fps-in").textContent = fmtRate(totalIn);
    $("stat-fps-out").textContent = fmtRate(totalOut);
    renderCounters(snapshot);
  }

  // One table row per named counter shown: name, value, convergence, each node's value, and
  // the row's own −1 / +1 buttons. Rows and cells are kept across polls (never rebuilt), so a
  // click is never lost to a re-render.
  function counterRow(name) {
    const body = $("counters-body");
    for (const tr of body.children) if (tr.dataset.counter === name) return tr;
    const tr = document.createElement("tr");
    tr.dataset.counter = name;
    tr.innerHTML =
      '<td class="name"></td>' +
      '<td class="value" data-role="counter-value" data-value="">–</td>' +
      '<td><span class="pill small" data-role="counter-converged" data-converged="">–</span></td>' +
      '<td class="actions">' +
      '<button class="btn small" type="button" data-action="decrement">−1</button>' +
      '<button class="btn small primary" type="button" data-action="increment">+1</button></td>';
    tr.querySelector(".name").textContent = name;
    const blocked = unaddressable(name);
    for (const b of tr.querySelectorAll("button")) {
      b.dataset.counter = name;
      b.disabled = blocked;
      b.title = blocked ? "a browser cannot address this name: write it on a node (curl --path-as-is)"
        : "POST /counters/" + name + "/" + b.dataset.action + ' {"by": 1}';
    }
    // Keep the rows in byte order of the names.
    const next = Array.from(body.children).find((other) => other.dataset.counter > name);
    body.insertBefore(tr, next || null);
    return tr;
  }

  function renderCounters(snapshot) {
    const shown = snapshot.counters || {};
    const names = Object.keys(shown).sort();
    const nodes = snapshot.nodes;
    const columns = nodes.map((n) => n.url).join(" ");
    const head = $("counters-head");
    if (head.dataset.columns !== columns || !head.children.length) {
      head.dataset.columns = columns;
      head.innerHTML = "<th>name</th><th>value</th><th>state</th>" +
        nodes.map((n) => '<th class="node-col" title="' + esc(n.url) + '">' + esc(n.id || n.url) + "</th>").join("") +
        "<th></th>";
    } else {
      // Ids can arrive after the first poll.
      nodes.forEach((n, i) => {
        const th = head.children[3 + i];
        if (th && th.textContent !== (n.id || n.url)) th.textContent = n.id || n.url;
      });
    }
    const keep = new Set(names);
    for (const tr of Array.from($("counters-body").children)) {
      if (!keep.has(tr.dataset.counter)) tr.remove();
    }
    for (const name of names) {
      const tr = counterRow(name);
      const view = shown[name] || {};
      // Each node's value of it: a cell per node, rebuilt only when the nodes change.
      let cells = Array.from(tr.querySelectorAll('[data-role="counter-node"]'));
      if (cells.map((c) => c.dataset.node).join(" ") !== columns) {
        cells.forEach((c) => c.remove());
        const actions = tr.querySelector(".actions");
        cells = nodes.map((n) => {
          const td = document.createElement("td");
          td.className = "node-col";
          td.dataset.role = "counter-node";
          td.dataset.node = n.url;
          tr.insertBefore(td, actions);
          return td;
        });
      }
      const values = [];
      nodes.forEach((n, i) => {
        const td = cells[i];
        const has = n.counters != null && Object.prototype.hasOwnProperty.call(n.counters, name);
        const v = has ? String(n.counters[name]) : "";
        td.dataset.value = v;
        td.textContent = has ? v : n.healthy && n.counters != null ? "absent" : "–";
        td.classList.toggle("missing", !has);
        if (n.healthy && has) values.push(v);
      });
      const valueEl = tr.querySelector('[data-role="counter-value"]');
      const mark = tr.querySelector('[data-role="counter-converged"]');
      let value;
      if (view.converged === true) {
        value = String(view.value);
        mark.dataset.converged = "true";
        mark.textContent = "✓ converged";
        mark.title = "every healthy node holds it with this value";
      } else if (view.converged === false) {
        // Like the default counter: the highest value any node reports, while they differ.
        value = values.length ? String(values.map(Number).reduce((a, b) => Math.max(a, b))) : "";
        const missing = nodes.filter((n) => n.healthy).length - values.length;
        mark.dataset.converged = "false";
        mark.textContent = "converging";
        mark.title = new Set(values).size + " different values" +
          (missing > 0 ? ", " + missing + " node(s) without it (or not read)" : "");
      } else {
        value = view.value == null ? "" : String(view.value);
        mark.dataset.converged = "";
        mark.textContent = "single node";
        mark.title = "Convergence needs every node: open the gateway's dashboard.";
      }
      const before = valueEl.dataset.value;
      valueEl.dataset.value = value;
      valueEl.textContent = value === "" ? "–" : value;
      if (before !== "" && before !== value) {
        valueEl.classList.add("changed");
        setTimeout(() => valueEl.classList.remove("changed"), 700);
      }
      for (const td of cells) {
        td.classList.toggle("lagging", view.converged === false && td.dataset.value !== "" && td.dataset.value !== value);
      }
    }
    $("counters-empty").hidden = names.length > 0;
    const total = snapshot.counters_total || names.length;
    const more = $("counters-more");
    more.hidden = total <= names.length;
    more.textContent = "showing the first " + names.length + " of " + total +
      " named counters, by name (the dashboard shows at most " + COUNTERS_SHOWN + ")";
    const all = $("counters-convergence");
    if (mode === "node") {
      all.dataset.converged = "";
      all.textContent = total + " on this node";
    } else if (snapshot.counters_converged === true) {
      all.dataset.converged = "true";
      all.textContent = total === 1 ? "✓ converged" : "✓ all " + total + " agree";
    } else {
      all.dataset.converged = "false";
      all.textContent = "converging";
    }
  }

  function setConnection(ok, text) {
    const c = $("connection");
    c.dataset.state = ok ? "ok" : "error";
    c.textContent = text;
  }

  async function poll() {
    try {
      const snapshot = mode === "gateway" ? await getJson("/cluster") : await loadNode();
      render(snapshot);
      setConnection(true, "live");
      $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    } catch (e) {
      setConnection(false, "disconnected: " + e.message);
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  async function change(path) {
    const result = $("action-result");
    const by = Number($("by").value || "1");
    const buttons = [$("inc"), $("dec")];
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const r = await fetchWithTimeout(path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ by }),
      });
      const body = await r.json().catch(() => ({}));
      if (r.ok) {
        result.dataset.ok = "true";
        result.textContent = (path === "/increment" ? "+" : "−") + by + " → " + body.value +
          " on " + (body.node || "node");
      } else {
        result.dataset.ok = "false";
        result.textContent = "HTTP " + r.status + ": " + (body.error || "error");
      }
    } catch (e) {
      result.dataset.ok = "false";
      result.textContent = "request failed: " + e.message;
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  // The outcome of a named write in #counter-result; data-seq counts the writes started.
  function counterResult(ok, text) {
    const result = $("counter-result");
    result.dataset.ok = String(ok);
    result.textContent = text;
  }

  async function changeNamed(name, op, by, buttons) {
    const result = $("counter-result");
    result.dataset.seq = String(Number(result.dataset.seq || "0") + 1);
    delete result.dataset.ok;
    if (!NAME_RE.test(name)) {
      counterResult(false, "not a counter name: 1–64 characters of A–Z a–z 0–9 . _ -");
      return;
    }
    if (unaddressable(name)) {
      counterResult(false, "\"" + name + "\" cannot be written from a browser (it resolves . and .. in URLs): write it on a node (curl --path-as-is)");
      return;
    }
    if (!Number.isSafeInteger(by) || by < 1) {
      counterResult(false, "by: a whole number from 1 to 2^53−1");
      return;
    }
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const r = await fetchWithTimeout("/counters/" + encodeURIComponent(name) + "/" + op, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ by }),
      });
      const body = await r.json().catch(() => ({}));
      if (r.ok) {
        counterResult(true, name + " " + (op === "increment" ? "+" : "−") + by + " → " + body.value +
          " on " + (body.node || "node"));
      } else {
        counterResult(false, "HTTP " + r.status + ": " + (body.error || "error"));
      }
    } catch (e) {
      counterResult(false, "request failed: " + e.message);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  async function start() {
    mode = await probe();
    document.body.dataset.mode = mode;
    $("mode").textContent = mode === "gateway" ? "gateway · all nodes" : "single node";
    $("source").textContent = location.origin + (mode === "gateway" ? "/cluster" : " (/counter, /counters, /peers, /metrics)");
    $("inc").addEventListener("click", () => change("/increment"));
    $("dec").addEventListener("click", () => change("/decrement"));
    $("counter-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const name = $("counter-name").value.trim();
      const by = Number($("counter-by").value || "1");
      changeNamed(name, "increment", by, [$("counter-inc")]);
    });
    $("counters-body").addEventListener("click", (e) => {
      const b = e.target.closest("button[data-action]");
      if (b && !b.disabled) changeNamed(b.dataset.counter, b.dataset.action, 1, [b]);
    });
    poll();
  }

  start();
})();
