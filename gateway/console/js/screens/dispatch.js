// 接处警与派单 Dispatch: the 5-minute arrival rate per unit, station, mode and district; overdue and escalated orders.
import { all, api } from "../api.js";
import { label, modelName, shortName, t } from "../i18n.js";
import { html, pct, useLoad, useState } from "../lib.js";
import { Chart, Loaded, Section } from "../ui.js";

const GROUPS = ["district", "mode", "station", "unit"];

async function load(group) {
  const [rates, units, overdue, models] = await Promise.all([
    api("arrival-rates", { query: { group_by: group } }), all("units", {}, 5000),
    all("tasks", { overdue: true }, 1000), all("tracing/models")]);
  return { rates, names: Object.fromEntries(units.map((u) => [u.id, shortName(u.name)])), overdue,
           models: Object.fromEntries(models.map((m) => [m.id, m])) };
}

export function Dispatch() {
  const [group, setGroup] = useState("station");
  const state = useLoad(() => load(group), [group]);
  return html`<div class="split even">
    <div class="side">
      <div class="toolbar" role="tablist">${GROUPS.map((g) => html`<button type="button" role="tab"
        class=${g === group ? "on" : ""} aria-selected=${g === group} data-testid=${`group-${g}`}
        onClick=${() => setGroup(g)}>${t(`dispatch.by.${g}`)}</button>`)}</div>
      <${Loaded} state=${state}>${(d) => html`<${Rates} data=${d} group=${group} />`}<//>
    </div>
    <div class="main"><${Loaded} state=${state}>${(d) => html`<${Overdue} data=${d} />`}<//></div>
  </div>`;
}

function keyName(d, group, key) {
  if (group === "mode") return label("mode", key === "unknown" ? null : key);
  if (group === "district") return t("dispatch.district");
  return d.names[key] || key;
}

function Rates({ data, group }) {
  const groups = [...data.rates.groups].sort((a, b) => (b.rate ?? -1) - (a.rate ?? -1));
  const option = {
    grid: { left: 150, right: 40, top: 10, bottom: 30 },
    tooltip: { trigger: "axis", valueFormatter: (v) => `${v}%` },
    xAxis: { type: "value", max: 100, axisLabel: { formatter: "{value}%" } },
    yAxis: { type: "category", inverse: true, data: groups.map((g) => keyName(data, group, g.key)) },
    series: [{ type: "bar", data: groups.map((g) => (g.rate == null ? null : Math.round(g.rate * 1000) / 10)),
               itemStyle: { color: "#5b8ff9" }, label: { show: true, position: "right", formatter: "{c}%" } }],
  };
  return html`<${Section} title=${t("dispatch.rates")}>
    ${groups.length > 1 && html`<${Chart} testid="rates-chart" height=${Math.max(160, groups.length * 24 + 40)}
      option=${option} />`}
    <table class="list" data-testid="rates"><thead><tr><th>${t(`dispatch.by.${group}`)}</th>
      <th>${t("dispatch.dispatched")}</th><th>${t("dispatch.within")}</th><th>${t("dispatch.rate")}</th>
      <th>${t("dispatch.mean")}</th></tr></thead>
    <tbody>${groups.map((g) => html`<tr data-testid="rate-row"><td>${keyName(data, group, g.key)}</td>
      <td>${g.dispatched}</td><td>${g.within_5_min}</td><td><b>${pct(g.rate, 1)}</b></td>
      <td>${g.mean_response_s == null ? "—" : t("tracing.response", { s: Math.round(g.mean_response_s) })}</td>
    </tr>`)}</tbody></table>
  <//>`;
}

function Overdue({ data }) {
  const escalated = data.overdue.filter((x) => x.escalated_to).length;
  return html`<${Section} title=${t("dispatch.overdue", { n: data.overdue.length, escalated })}>
    <table class="list" data-testid="overdue"><thead><tr><th>${t("task.model")}</th><th>${t("task.category")}</th>
      <th>${t("task.unit")}</th><th>${t("task.status")}</th><th>${t("task.deadline")}</th>
      <th>${t("dispatch.escalated")}</th></tr></thead>
    <tbody>${data.overdue.slice(0, 200).map((x) => html`<tr>
      <td><a href=${`#/tracing/${x.incident_id}`}>${x.model_id}</a> ${modelName(data.models[x.model_id])}</td>
      <td>${label("category", x.category)}</td><td>${data.names[x.unit_id] || x.unit_id}</td>
      <td>${label("task_status", x.status)}</td>
      <td>${new Date(x.deadline_at).toLocaleString(document.documentElement.lang)}</td>
      <td>${x.escalated_to ? data.names[x.escalated_to] || x.escalated_to : "—"}</td></tr>`)}</tbody></table>
  <//>`;
}
