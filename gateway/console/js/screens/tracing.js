// 警情溯源 Incident tracing: incidents with filters; one incident's five sources, the models that fired and why,
// the task orders they issued and where each stands in its loop.
import { all, api } from "../api.js";
import { label, modelName, pick, shortName, t } from "../i18n.js";
import { addDays, dayStart, html, localDay, useLoad, useState } from "../lib.js";
import { Filter, Loaded, Section } from "../ui.js";

const SOURCES = ["person", "vehicle", "road", "enterprise", "village"];
const LOOP = ["created", "dispatched", "accepted", "in_progress", "submitted", "verified"];
const when = (x) => (x ? new Date(x).toLocaleString(document.documentElement.lang) : "—");

async function loadIncidents(f) {
  const query = { since: dayStart(f.day), until: dayStart(addDays(f.day, 1)), station_id: f.station };
  const incidents = await all("incidents", query, 1000);
  if (!f.model && !f.category && !f.status) return incidents;
  const tasks = await all("tasks", { category: f.category, status: f.status }, 5000);
  const ids = new Set(tasks.filter((x) => !f.model || x.model_id === f.model).map((x) => x.incident_id));
  return incidents.filter((i) => ids.has(i.id));
}

export function Tracing({ arg }) {
  const [f, setF] = useState({ day: localDay(), station: null, model: null, category: null, status: null });
  const set = (key) => (value) => setF({ ...f, [key]: value });
  const refs = useLoad(() => Promise.all([all("units", {}, 5000), all("tracing/models")]), []);
  const names = refs.data ? Object.fromEntries(refs.data[0].map((u) => [u.id, shortName(u.name)])) : {};
  const list = useLoad(() => loadIncidents(f), [f.day, f.station, f.model, f.category, f.status]);
  return html`<div class="split">
    <div class="side">
      <div class="toolbar">
        <label class="filter">${t("filter.day")}<input type="date" name="day" value=${f.day}
          onChange=${(e) => e.target.value && set("day")(e.target.value)} /></label>
        <${Loaded} state=${refs}>${([stations, models]) => html`
          <${Filter} name="station" value=${f.station} onChange=${set("station")}
            choices=${stations.filter((u) => u.kind === "station").map((s) => [s.id, shortName(s.name)])} />
          <${Filter} name="model" value=${f.model} onChange=${set("model")}
            choices=${models.map((m) => [m.id, `${m.id} ${modelName(m)}`])} />`}<//>
        <${Filter} name="category" group="category" value=${f.category} onChange=${set("category")} />
        <${Filter} name="status" group="task_status" value=${f.status} onChange=${set("status")} />
      </div>
      <${Loaded} state=${list}>${(items) => html`<p class="muted">${t("tracing.count", { n: items.length })}</p>
        ${items.length ? "" : html`<${Latest} f=${f} onPick=${set("day")} />`}
        <ul class="incidents" data-testid="incidents">${items.map((i) => html`<li>
          <a href=${`#/tracing/${i.id}`} class=${i.id === arg ? "on" : ""} data-testid="incident">
            <b>${label("incident_kind", i.kind)}</b> ${when(i.occurred_at)}
            <span class="muted">${names[i.station_id] || i.station_id || t("tracing.outside")} · ${t("tracing.severity", i.severity)}</span>
          </a></li>`)}</ul>`}<//>
    </div>
    <div class="main">${arg ? html`<${Trace} id=${arg} key=${arg} names=${names} />`
      : html`<p class="muted">${t("tracing.pick")}</p>`}</div>
  </div>`;
}

// a day without incidents: offer the day of the latest one before it (same station filter)
function Latest({ f, onPick }) {
  const latest = useLoad(() => api("incidents", { query: { limit: 1, until: dayStart(f.day), station_id: f.station } }),
    [f.day, f.station]);
  const last = latest.data?.items?.[0];
  if (!last) return "";
  const day = localDay(new Date(last.occurred_at));
  return html`<button type="button" class="link" data-testid="latest-day" onClick=${() => onPick(day)}>
    ${t("tracing.latest", { day })}</button>`;
}

async function loadTrace(id) {
  const [incident, trace, tasks, models] = await Promise.all([
    api(`incidents/${id}`), api(`incidents/${id}/trace`).catch((e) => (e.status === 404 ? null : Promise.reject(e))),
    all("tasks", { incident_id: id }), all("tracing/models")]);
  return { incident, trace, tasks, models: Object.fromEntries(models.map((m) => [m.id, m])) };
}

function Trace({ id, names }) {
  const state = useLoad(() => loadTrace(id), [id]);
  return html`<${Loaded} state=${state}>${(d) => html`<div data-testid="trace">
    <${Section} title=${`${label("incident_kind", d.incident.kind)} · ${d.incident.external_id}`}>
      <dl class="facts">
        <dt>${t("tracing.occurred")}</dt><dd>${when(d.incident.occurred_at)}</dd>
        <dt>${t("tracing.station")}</dt><dd>${names[d.incident.station_id] || d.incident.station_id || t("tracing.outside")}</dd>
        <dt>${t("tracing.mode")}</dt><dd>${label("mode", d.incident.mode)}</dd>
        <dt>${t("tracing.handling")}</dt><dd>${names[d.incident.handling_unit_id] || d.incident.handling_unit_id || "—"}</dd>
        <dt>${t("tracing.arrival")}</dt><dd>${d.incident.response_s == null ? "—"
          : t("tracing.response", { s: Math.round(d.incident.response_s) })}</dd>
        <dt>${t("tracing.severity_label")}</dt><dd>${t("tracing.severity", d.incident.severity)}</dd>
      </dl>
    <//>
    ${d.trace ? html`<${Sources} trace=${d.trace} />
      <${Section} title=${t("tracing.fired", { n: d.trace.fired.length })}>
        <table class="list" data-testid="fired"><thead><tr><th>${t("task.model")}</th><th>${t("tracing.entity")}</th>
          <th>${t("tracing.why")}</th><th>${t("tracing.issued")}</th></tr></thead>
        <tbody>${d.trace.fired.map((x) => html`<tr><td><b>${x.model_id}</b> ${modelName(d.models[x.model_id])}</td>
          <td>${x.entity_ref}</td><td title=${pick(x.reason)}>${pick(d.models[x.model_id]?.description) || pick(x.reason)}</td>
          <td>${x.issued ? t("common.yes") : t("tracing.backfill")}</td></tr>`)}</tbody></table>
      <//>` : html`<p class="muted">${t("tracing.not_traced")}</p>`}
    <${Section} title=${t("tracing.orders", { n: d.tasks.length })}>
      ${d.tasks.map((x) => html`<${Order} task=${x} model=${d.models[x.model_id]} names=${names} />`)}
    <//>
  </div>`}<//>`;
}

// a source field's value in the reader's language: yes/no, and the codes that have labels
const CODED = { role: "party_role", kind: "vehicle_kind", licence_status: "licence_status", lighting: "lighting",
  junction: "junction" };
function fieldValue(key, value) {
  if (typeof value === "boolean") return value ? t("common.yes") : t("common.no");
  if (key === "section") return value.name || value.section_id || "—";
  return CODED[key] ? label(CODED[key], value) : String(value);
}

function Sources({ trace }) {
  const shown = ([k, v]) => k !== "ref" && v !== null && (typeof v !== "object" || k === "section");
  return html`<${Section} title=${t("tracing.sources")}><div class="sources" data-testid="sources">
    ${SOURCES.map((s) => html`<div class="source"><h3>${label("source", s)}</h3>
      ${(trace.sources[s] || []).length ? trace.sources[s].map((e) => html`<dl class="entity" title=${e.ref || ""}>
        ${Object.entries(e).filter(shown).slice(0, 8)
          .map(([k, v]) => html`<dt>${label("source_field", k)}</dt><dd>${fieldValue(k, v)}</dd>`)}</dl>`)
        : html`<p class="muted">${t("tracing.none")}</p>`}</div>`)}
  </div><//>`;
}

function Order({ task, model, names }) {
  const step = task.status === "verified" ? LOOP.length - 1 : LOOP.indexOf(task.status);
  const done = task.milestones.filter((m) => m.done || m.completed_at).length;
  return html`<article class="order" data-testid="order">
    <header><b>${task.model_id}</b> ${modelName(model)} · ${label("category", task.category)}
      · ${t("task.unit")}: ${names[task.unit_id] || task.unit_id}
      ${task.overdue ? html` <span class="chip red">${label("task_status", "overdue")}</span>` : ""}
      ${task.escalated_to ? html` <span class="chip yellow">${t("dispatch.escalated_to", { unit: names[task.escalated_to] || task.escalated_to })}</span>` : ""}
    </header>
    <ol class="loop">${LOOP.map((s, i) => html`<li class=${i < step ? "done" : i === step ? "now" : ""}>
      ${label("task_status", s)}</li>`)}
      ${["returned", "reassigned", "overdue"].includes(task.status) ? html`<li class="now">
        ${label("task_status", task.status)}</li>` : ""}</ol>
    <p class="muted">${t("tracing.milestones", { done, n: task.milestones.length })} · ${t("task.deadline")}
      ${when(task.deadline_at)} · ${pick(task.routing_reason)}</p>
  </article>`;
}
