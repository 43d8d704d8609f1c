// 站所分类 Classification: the latest run, each station's mode with margin and distinctive features, overrides
// with a reason, and a what-if dry run from an uploaded CSV (station_id,<feature>,…) that changes nothing.
import { all, api } from "../api.js";
import { label, shortName, t } from "../i18n.js";
import { html, num, useLoad, useState } from "../lib.js";
import { Chip, Loaded, Problem, Section } from "../ui.js";

async function load() {
  const [runs, modes, stations] = await Promise.all([
    api("classification/runs", { query: { limit: 1 } }), all("classification/modes"), all("stations")]);
  const latest = runs.items[0] ? await api(`classification/runs/${runs.items[0].id}`) : null;
  return { latest, modes: Object.fromEntries(modes.map((m) => [m.station_id, m])),
           names: Object.fromEntries(stations.map((s) => [s.id, shortName(s.name)])) };
}

/** Stations and features from CSV text: a header `station_id,<feature>…` (a `period` column is ignored). */
export function parseFeatures(text) {
  const rows = text.replace(/^\uFEFF/, "").split(/\r?\n/).filter((l) => l.trim()).map((l) => l.split(","));
  const [head, ...body] = rows;
  if (!head || head[0].trim() !== "station_id") throw new Error(t("classification.csv_header"));
  return body.map((cells) => {
    const features = {};
    head.forEach((name, i) => {
      if (i === 0 || name.trim() === "period" || cells[i] === undefined || cells[i].trim() === "") return;
      features[name.trim()] = Number(cells[i]);
    });
    return { id: cells[0].trim(), features };
  });
}

export function Classification() {
  const state = useLoad(load, []);
  return html`<${Loaded} state=${state}>${(d) => html`<div class="split even">
    <div class="side">
      <${Latest} data=${d} />
    </div>
    <div class="main">
      <${Override} data=${d} onDone=${state.reload} />
      <${WhatIf} data=${d} />
    </div></div>`}<//>`;
}

function Assignments({ run, modes, names, testid }) {
  return html`<table class="list" data-testid=${testid}><thead><tr><th>${t("board.station")}</th>
    <th>${t("classification.model_mode")}</th><th>${t("classification.margin")}</th>
    <th>${t("classification.distinctive")}</th>${modes && html`<th>${t("classification.in_force")}</th>`}</tr></thead>
  <tbody>${run.assignments.map((a) => html`<tr>
    <td>${names[a.station_id] || a.station_id}</td><td class="nowrap">${label("mode", a.mode)}${a.outlier ? " *" : ""}</td>
    <td>${num(a.margin, 2)}</td>
    <td class="small">${a.distinctive.slice(0, 3).map((x) => `${label("feature", x.feature)} ${x.z > 0 ? "+" : ""}${num(x.z, 1)}σ`)
      .join(" · ")}</td>
    ${modes && html`<td class="nowrap">${label("mode", modes[a.station_id]?.mode)}${modes[a.station_id]?.mode_source === "override"
      ? html` <span class="chip yellow" title=${modes[a.station_id].override_reason}>${t("classification.overridden")}</span>`
      : ""}</td>`}
  </tr>`)}</tbody></table>`;
}

function Latest({ data }) {
  const run = data.latest;
  if (!run) return html`<p class="muted">${t("classification.no_run")}</p>`;
  return html`<${Section} title=${t("classification.latest", { version: run.version ?? "—" })}>
    <p class="muted">${t("classification.run_facts", { period: run.period || "—", silhouette: num(run.silhouette, 3),
      at: new Date(run.created_at).toLocaleString(document.documentElement.lang) })}
      ${Object.entries(run.sizes).map(([m, n]) => html` <span class="chip none">${label("mode", m)} ${n}</span>`)}</p>
    <${Assignments} run=${run} modes=${data.modes} names=${data.names} testid="assignments" />
  <//>`;
}

function Override({ data, onDone }) {
  const [error, setError] = useState(null);
  const [saved, setSaved] = useState(null);
  async function submit(event) {
    event.preventDefault();
    const form = new FormData(event.target);
    try {
      const out = await api(`stations/${form.get("station")}/mode-override`, { method: "PUT",
        json: { mode: form.get("mode"), reason: form.get("reason") } });
      setError(null);
      setSaved(out);
      onDone();
    } catch (exc) { setError(exc); }
  }
  return html`<${Section} title=${t("classification.override")}>
    <form class="inline" onSubmit=${submit}>
      <select name="station">${Object.keys(data.names).map((id) => html`<option value=${id}>${data.names[id]}</option>`)}</select>
      <select name="mode">${["basic", "deep", "full"].map((m) => html`<option value=${m}>${label("mode", m)}</option>`)}</select>
      <input name="reason" required minlength="3" placeholder=${t("classification.reason")} />
      <button type="submit">${t("classification.save")}</button>
    </form>
    <${Problem} error=${error} />
    ${saved && html`<p class="ok">${t("classification.saved", { station: data.names[saved.station_id],
      mode: label("mode", saved.mode) })}</p>`}
  <//>`;
}

function WhatIf({ data }) {
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function run(event) {
    const file = event.target.files[0];
    if (!file) return;
    setBusy(true);
    try {
      const stations = parseFeatures(await file.text());
      setResult(await api("classification/runs", { method: "POST", json: { dry_run: true, stations } }));
      setError(null);
    } catch (exc) { setError(exc); setResult(null); } finally { setBusy(false); }
  }
  const moved = result ? result.assignments.filter((a) => data.modes[a.station_id]
    && data.modes[a.station_id].model_mode !== a.mode) : [];
  return html`<${Section} title=${t("classification.whatif")}>
    <p class="muted">${t("classification.whatif_help")}</p>
    <input type="file" accept=".csv,text/csv" name="whatif" data-testid="whatif-file" onChange=${run} disabled=${busy} />
    <${Problem} error=${error} />
    ${result && html`<div data-testid="whatif-result"><p>${t("classification.whatif_done", {
        n: result.assignments.length, silhouette: num(result.silhouette, 3), moved: moved.length })}</p>
      <${Chip} colour="none" text=${t("classification.dry_run")} />
      <${Assignments} run=${result} names=${data.names} testid="whatif-assignments" /></div>`}
  <//>`;
}
