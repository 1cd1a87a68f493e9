// The Mussel dashboard: polls /dashboard/data.json and renders it. Vanilla JS, SVG
// plots, nothing fetched from elsewhere. Text from the server is only ever set as
// textContent (never as HTML).
"use strict";

(function () {
  // ?refresh=S sets how often the page updates (the server checks 0.5 <= S <= 3600)
  const refresh = Number(new URLSearchParams(window.location.search).get("refresh"));
  const POLL_MS = refresh >= 0.5 ? refresh * 1000 : 2000;
  const SVG = "http://www.w3.org/2000/svg";
  const COLORS = ["#2563eb", "#16a34a", "#c2410c", "#9333ea", "#0891b2", "#b91c1c", "#ca8a04", "#4b5563"];

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k === "style") node.style.cssText = v; // CSSOM: allowed by the page's CSP
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  function bytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return (i === 0 ? v.toFixed(0) : v.toFixed(1)) + " " + units[i];
  }

  function num(n, digits) {
    if (n === null || n === undefined) return "–";
    return Number(n).toLocaleString("en-US", { maximumFractionDigits: digits === undefined ? 1 : digits });
  }

  function seconds(s) {
    if (s === null || s === undefined) return "–";
    if (s < 0.001) return (s * 1e6).toFixed(0) + " µs";
    if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 2 : 1) + " ms";
    return s.toFixed(2) + " s";
  }

  function duration(s) {
    if (s === null || s === undefined) return "–";
    if (s < 90) return s.toFixed(0) + " s";
    if (s < 5400) return (s / 60).toFixed(0) + " min";
    if (s < 172800) return (s / 3600).toFixed(1) + " h";
    return (s / 86400).toFixed(1) + " d";
  }

  function when(us) {
    if (!us) return "–";
    const ago = (Date.now() * 1000 - us) / 1e6;
    return ago >= 0 ? duration(ago) + " ago" : "in " + duration(-ago);
  }

  function usageBar(used, limit) {
    if (!limit) return el("span");
    const share = Math.min(1, used / limit);
    const bar = el("span", { class: "bar" + (share >= 1 ? " bad" : share >= 0.8 ? " warn" : "") },
      el("span", { style: "width:" + (share * 100).toFixed(1) + "%" }));
    bar.title = (share * 100).toFixed(1) + "% of the quota";
    return bar;
  }

  function withQuota(value, limit, fmt) {
    const td = el("td", { class: "num" }, usageBar(value, limit), fmt(value));
    if (limit) td.append(" / " + fmt(limit));
    return td;
  }

  function fill(tableId, rows, columns) {
    const body = document.querySelector("#" + tableId + " tbody");
    body.replaceChildren(...rows);
    if (!rows.length) body.append(el("tr", {}, el("td", { class: "empty", colspan: String(columns) }, "none")));
  }

  function renderNamespaces(data) {
    fill("namespaces", data.namespaces.map((ns) => el("tr", { "data-namespace": ns.name },
      el("td", {}, ns.name),
      withQuota(ns.usage.bytes, ns.quotas.storage_bytes, bytes),
      withQuota(ns.usage.read_qps, ns.quotas.read_qps, (v) => num(v)),
      withQuota(ns.usage.write_qps, ns.quotas.write_qps, (v) => num(v)),
      el("td", { class: "num" }, num(ns.usage.throttled, 0)),
      el("td", { class: "num" }, num(ns.usage.shed, 0)),
      withQuota(ns.usage.tables, ns.quotas.tables, (v) => num(v, 0)))), 7);
  }

  function renderJobs(data) {
    const jobs = data.jobs.slice().reverse();
    fill("jobs", jobs.map((j) => {
      const p = j.progress;
      const bar = el("progress", { max: "1", value: String(p.fraction) });
      return el("tr", { "data-job": j.id, "data-state": j.state },
        el("td", {}, j.id),
        el("td", {}, j.namespace + "/" + j.table),
        el("td", {}, j.mode),
        el("td", { class: "state-" + j.state }, j.state + (j.error ? ": " + j.error.message : "")),
        el("td", {}, bar, el("span", { class: "fraction" }, (p.fraction * 100).toFixed(1) + "%")),
        el("td", { class: "num rows" }, num(p.rows, 0)),
        el("td", { class: "num" }, num(p.rate_rows_s, 0)),
        el("td", { class: "num" }, j.state === "running" ? duration(p.eta_s) : "–"));
    }), 8);
  }

  function renderTables(data) {
    fill("tables", data.tables.map((t) => {
      const exp = t.expiration || {};
      const last = exp.last_run;
      const lastText = last ? when(last.ended_us || last.started_us) + " (" + num(last.removed, 0) + " removed)" : "never";
      return el("tr", { "data-table": t.namespace + "/" + t.name },
        el("td", {}, t.namespace + "/" + t.name),
        el("td", { class: "num" }, bytes(t.stats.approx_bytes)),
        el("td", { class: "num" }, num(t.stats.approx_cells, 0)),
        el("td", {}, t.ttl_seconds === null ? "never" : duration(t.ttl_seconds)),
        el("td", {}, exp.state === "running" ? "running now" : lastText),
        el("td", {}, when(exp.next_run_us)));
    }), 6);
  }

  function renderReplay(data) {
    const r = data.replay;
    const dl = document.getElementById("replay");
    const items = [
      ["lag (records)", num(r.lag_records, 0)],
      ["staleness", seconds(r.staleness_s)],
      ["applied since start", num(r.applied_records, 0)],
    ];
    for (const p of r.partitions) items.push(["partition " + p.partition, num(p.lag_records, 0) + " behind"]);
    dl.replaceChildren(...items.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  }

  function renderLatency(data) {
    fill("latency", data.latency.map((l) => el("tr", { "data-operation": l.operation },
      el("td", {}, l.operation),
      el("td", { class: "num" }, num(l.count, 0)),
      el("td", { class: "num" }, seconds(l.p50_s)),
      el("td", { class: "num" }, seconds(l.p99_s)))), 4);
  }

  function renderHotKeys(data) {
    fill("hotkeys", data.hot_keys.map((h) => el("tr", {},
      el("td", {}, h.namespace + "/" + h.table),
      el("td", {}, h.pk),
      el("td", { class: "num" }, num(h.per_s, 2)))), 3);
  }

  // A line chart of series over the history's times: [{name, values}], null = gap.
  function chart(id, times, series, fmt) {
    const box = document.getElementById(id);
    const W = Math.max(200, box.clientWidth || 600), H = 180, L = 52, R = 8, T = 8, B = 20;
    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img" });
    const legend = el("div", { class: "legend" });
    const t1 = times.length ? times[times.length - 1] : Date.now() / 1000;
    const t0 = Math.min(times.length ? times[0] : t1, t1 - 60);
    let max = 0;
    for (const s of series) for (const v of s.values) if (v !== null && v > max) max = v;
    if (max <= 0) max = 1;
    const x = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - R);
    const y = (v) => T + (1 - v / max) * (H - T - B);
    root.append(svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
    root.append(svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
    const top = svg("text", { x: L - 4, y: T + 8, "text-anchor": "end" });
    top.textContent = fmt(max);
    const zero = svg("text", { x: L - 4, y: H - B, "text-anchor": "end" });
    zero.textContent = fmt(0);
    const left = svg("text", { x: L, y: H - 4 });
    left.textContent = "-" + duration(t1 - t0);
    const right = svg("text", { x: W - R, y: H - 4, "text-anchor": "end" });
    right.textContent = "now";
    root.append(top, zero, left, right);
    series.forEach((s, i) => {
      const color = COLORS[i % COLORS.length];
      let d = "";
      let pen = false;
      const has = (j) => j >= 0 && j < s.values.length && s.values[j] !== null && s.values[j] !== undefined;
      s.values.forEach((v, j) => {
        if (!has(j)) { pen = false; return; }
        d += (pen ? "L" : "M") + x(times[j]).toFixed(1) + "," + y(v).toFixed(1);
        pen = true;
        if (!has(j - 1) && !has(j + 1)) { // a lone point: no line shows it, a dot does
          root.append(svg("circle", { cx: x(times[j]).toFixed(1), cy: y(v).toFixed(1), r: 2.5, fill: color }));
        }
      });
      if (d) root.append(svg("path", { d: d, fill: "none", stroke: color, "stroke-width": 1.5 }));
      const key = el("span", {}, el("i", { style: "background:" + color }), s.name);
      legend.append(key);
    });
    box.replaceChildren(root, legend);
  }

  function renderCharts(data) {
    const h = data.history;
    const s = h.series;
    const pick = (names) => names.filter((n) => s[n]).map((n) => ({ name: n.replace(/_per_s$/, "/s"), values: s[n] }));
    chart("chart-rates", h.t, pick(["reads_per_s", "writes_per_s", "throttled_per_s", "shed_per_s"]), (v) => num(v));
    const p99 = Object.keys(s).filter((n) => n.startsWith("p99_s:")).sort()
      .map((n) => ({ name: n.slice(6), values: s[n] }));
    chart("chart-latency", h.t, p99, seconds);
    chart("chart-lag", h.t, pick(["replay_lag_records"]).map((x) => ({ name: "records behind", values: x.values })), (v) => num(v, 0));
  }

  function render(data) {
    renderNamespaces(data);
    renderJobs(data);
    renderTables(data);
    renderReplay(data);
    renderLatency(data);
    renderHotKeys(data);
    renderCharts(data);
  }

  const status = () => document.getElementById("status");

  async function poll() {
    try {
      const resp = await fetch("/dashboard/data.json", { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" });
      if (resp.status === 401 || resp.status === 403) {
        window.location.reload(); // the page then asks to sign in
        return;
      }
      const data = await resp.json();
      if (!resp.ok) throw new Error(data.error ? data.error.message : "HTTP " + resp.status);
      render(data);
      status().className = "status";
      status().textContent = "updated " + new Date(data.now_us / 1000).toLocaleTimeString();
    } catch (err) {
      status().className = "status error";
      status().textContent = "cannot update: " + err.message;
    }
    window.setTimeout(poll, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", poll);
})();
