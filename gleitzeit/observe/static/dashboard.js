// The dashboard: a snapshot on connect, then deltas pushed by the server's
// /dashboard namespace (a few a second at most, only what changed). No polling.
"use strict";

const instances = new Map();  // id -> row
let socket = null;
let shownProvider = null;

function fmt(v) {
  return v === null || v === undefined ? "–" : String(v);
}

function render() {
  const table = document.getElementById("providers");
  for (const body of table.querySelectorAll("tbody")) body.remove();
  const byName = new Map();
  for (const row of instances.values()) {
    if (!byName.has(row.name)) byName.set(row.name, []);
    byName.get(row.name).push(row);
  }
  const names = [...byName.keys()].sort();
  document.getElementById("no-providers").hidden = names.length > 0;
  for (const name of names) {
    const rows = byName.get(name).sort((a, b) => a.id.localeCompare(b.id));
    const sum = (k) => rows.reduce((n, r) => n + (r[k] || 0), 0);
    const body = el("tbody", { "data-provider": name });
    const inFlight = sum("in_flight");
    body.append(el("tr", { class: "provider" },
      el("td", {}, el("a", { onclick: () => showProvider(name) }, name),
        el("span", { class: "muted" }, ` ${rows[0].kind} · ${rows.length} instance(s)`)),
      el("td", {}, ""), el("td", {}, ""),
      el("td", { class: "num in-flight" + (inFlight ? " busy" : "") }, inFlight),
      el("td", { class: "num" }, Math.round(sum("rate") * 10) / 10),
      el("td", {}, ""), el("td", {}, ""),
      el("td", { class: "num" }, sum("calls")),
      el("td", { class: "num" }, sum("errors"))));
    for (const r of rows) {
      body.append(el("tr", { class: "instance", "data-instance": r.id },
        el("td", {}, r.id),
        el("td", {}, r.transport),
        el("td", {}, el("span", { class: "badge " + r.status, title: r.detail || "" },
          r.cooling_down ? "cooling down" : r.status)),
        el("td", { class: "num in-flight" + (r.in_flight ? " busy" : "") }, r.in_flight),
        el("td", { class: "num" }, r.rate),
        el("td", { class: "num" }, fmt(r.p50_ms)),
        el("td", { class: "num" }, fmt(r.p95_ms)),
        el("td", { class: "num" }, r.calls),
        el("td", { class: "num errors" }, r.errors)));
    }
    table.append(body);
  }
}

function renderRuns(runs) {
  const list = document.getElementById("runs");
  list.replaceChildren();
  document.getElementById("no-runs").hidden = runs.length > 0;
  for (const run of runs) {
    const tasks = (run.task_states || []).map((t) =>
      el("span", { class: "task " + t.status, title: t.error || t.status, "data-task": t.task_id }, t.task_id));
    list.append(el("li", { "data-run": run.id },
      el("strong", {}, run.workflow_name), " ",
      el("span", { class: "badge " + (run.status === "completed" ? "healthy" : run.status === "failed" ? "unhealthy" : "") }, run.status),
      el("span", { class: "muted" }, ` ${run.id.slice(0, 8)} · ${new Date(run.created_at * 1000).toLocaleTimeString()}`),
      el("div", {}, ...tasks)));
  }
}

async function showProvider(name) {
  shownProvider = name;
  const reply = await socket.call("provider", { name });
  const panel = document.getElementById("detail");
  panel.hidden = false;
  document.getElementById("detail-name").textContent = name;
  const body = document.getElementById("detail-body");
  body.replaceChildren();
  const inst = reply.result.instances[0];
  if (!inst) {
    body.append(el("p", { class: "muted" }, "No instance connected."));
    return;
  }
  body.append(el("p", {}, inst.description || "", " ",
    el("span", { class: "muted" }, `version ${inst.version || "?"}; models: ${inst.models.join(", ") || "any"}`)));
  for (const [method, spec] of Object.entries(inst.method_schemas || {})) {
    body.append(el("details", { class: "method", "data-method": method },
      el("summary", {}, el("strong", {}, method),
        spec.streaming ? el("span", { class: "muted" }, " · streams") : null,
        el("span", { class: "muted" }, spec.description ? ` — ${spec.description}` : "")),
      el("pre", {}, JSON.stringify(spec.params_schema, null, 2))));
  }
}

gzConnect("/dashboard", async (s) => {
  socket = s;
  socket.on("delta", (d) => {
    for (const row of d.upsert) instances.set(row.id, row);
    for (const id of d.remove) instances.delete(id);
    render();
  });
  socket.on("runs", (d) => renderRuns(d.runs));
  const snap = await socket.call("snapshot", {});
  instances.clear();
  for (const row of snap.result.instances) instances.set(row.id, row);
  render();
  renderRuns(snap.result.runs);
  if (shownProvider) showProvider(shownProvider);
});
