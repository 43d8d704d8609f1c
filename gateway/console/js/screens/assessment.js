// 月度考核 Monthly assessment: rankings within each mode with colours and trends, the 30/70 split and the nine
// indicators per station, a station's history as a chart, and the month's report as CSV or XLSX.
import { api, download } from "../api.js";
import { label, shortName, t } from "../i18n.js";
import { html, localMonth, num, useLoad, useState } from "../lib.js";
import { Chart, Chip, Loaded, Problem, Section } from "../ui.js";

const MODES = ["basic", "deep", "full"];
const ARROW = { up: "▲", down: "▼", flat: "■" };
const HISTORY_MONTHS = 12;

export function Assessment({ arg, navigate }) {
  const [period, setPeriod] = useState(localMonth());
  const [error, setError] = useState(null);
  const scores = useLoad(() => api("assessment/scores", { query: { period } }), [period]);
  const get = (format) => download("reports/monthly", { period, format }, `jiaozhi-monthly-${period}.${format}`)
    .then(() => setError(null), setError);
  return html`<div class="split wide-side">
    <div class="side">
      <div class="toolbar">
        <label class="filter">${t("filter.month")}<input type="month" name="period" value=${period}
          onChange=${(e) => e.target.value && setPeriod(e.target.value)} /></label>
        <button type="button" data-testid="csv" onClick=${() => get("csv")}>${t("assessment.csv")}</button>
        <button type="button" data-testid="xlsx" onClick=${() => get("xlsx")}>${t("assessment.xlsx")}</button>
      </div>
      <${Problem} error=${error} />
      <${Loaded} state=${scores}>${(d) => MODES.map((mode) => html`<${Ranking} mode=${mode} period=${d.period} current=${arg}
        stations=${d.stations.filter((s) => s.mode === mode)} navigate=${navigate} />`)}<//>
    </div>
    <div class="main">${arg ? html`<${StationDetail} id=${arg} period=${period} key=${`${arg}${period}`} />`
      : html`<p class="muted">${t("assessment.pick")}</p>`}</div>
  </div>`;
}

function Ranking({ mode, period, stations, current, navigate }) {
  const ranked = [...stations].sort((a, b) => (a.rank_in_mode ?? 999) - (b.rank_in_mode ?? 999));
  return html`<${Section} title=${`${label("mode", mode)} (${ranked.length})`}>
    <table class="list ranking" data-testid="ranking" data-mode=${mode} data-period=${period}><thead><tr>
      <th>${t("assessment.rank")}</th><th>${t("board.station")}</th><th>${t("assessment.total")}</th>
      <th>${label("part", "outcome")} 30</th><th>${label("part", "process")} 70</th>
      <th>${t("board.colour")}</th><th>${t("assessment.trend")}</th></tr></thead>
    <tbody>${ranked.map((s) => html`<tr class=${s.station_id === current ? "on" : ""} data-testid="rank-row"
        data-colour=${s.colour} onClick=${() => navigate("assessment", s.station_id)}>
      <td>${s.rank_in_mode ?? "—"}</td><td><a href=${`#/assessment/${s.station_id}`}>${shortName(s.name) || s.station_id}</a></td>
      <td><b>${num(s.total)}</b></td><td>${num(s.outcome)}</td><td>${num(s.process)}</td>
      <td><${Chip} colour=${s.colour} /></td>
      <td class=${`trend ${s.trend_direction || ""}`}>${s.trend_direction ? `${ARROW[s.trend_direction]} ${num(s.trend)}`
        : "—"}</td></tr>`)}</tbody></table>
  <//>`;
}

async function loadStation(id, period) {
  const [y, m] = period.split("-").map(Number);
  const months = Array.from({ length: HISTORY_MONTHS }, (_, i) => localMonth(new Date(Date.UTC(y, m - 1, 15)),
                                                                              HISTORY_MONTHS - 1 - i));
  const history = await Promise.all(months.map((p) => api(`stations/${id}/score`, { query: { period: p } })
    .then((s) => ({ period: p, ...s }))));
  return { score: history[history.length - 1], history };
}

function StationDetail({ id, period }) {
  const state = useLoad(() => loadStation(id, period), [id, period]);
  return html`<${Loaded} state=${state}>${({ score, history }) => html`<div data-testid="station-score">
    <${Section} title=${`${shortName(score.name) || id} · ${period}`}>
      <div class="split-bar" title=${t("assessment.split")}>
        <span class="outcome" style=${{ width: "30%" }}>${label("part", "outcome")} ${num(score.outcome)} / 30</span>
        <span class="process" style=${{ width: "70%" }}>${label("part", "process")} ${num(score.process)} / 70</span>
      </div>
      <p><b>${t("assessment.total")}: ${num(score.total)}</b> · ${label("mode", score.mode)}
        · ${t("assessment.rank")} ${score.rank_in_mode ?? "—"} <${Chip} colour=${score.colour} /></p>
      <table class="list" data-testid="indicators"><thead><tr><th>${t("assessment.indicator")}</th>
        <th>${t("assessment.value")}</th><th>${t("board.target")}</th><th>${t("assessment.floor")}</th>
        <th>${t("assessment.points")}</th></tr></thead>
      <tbody>${Object.entries(score.indicators).map(([code, x]) => html`<tr>
        <td>${label("indicator", code)}</td><td>${num(x.value, 2)} <span class="muted">${x.unit}</span></td>
        <td>${num(x.target, 2)}</td><td>${num(x.floor, 2)}</td>
        <td>${num(x.score)} / ${num(x.weight)}</td></tr>`)}</tbody></table>
    <//>
    <${Section} title=${t("assessment.history")}>
      <${Chart} testid="history" height=${280} option=${historyOption(history)} />
    <//>
  </div>`}<//>`;
}

function historyOption(history) {
  const line = (key, name) => ({ name, type: "line", data: history.map((h) => h[key]), connectNulls: false });
  return {
    tooltip: { trigger: "axis" },
    legend: { top: 0 },
    grid: { left: 40, right: 20, top: 30, bottom: 30 },
    xAxis: { type: "category", data: history.map((h) => h.period) },
    yAxis: { type: "value", min: 0, max: 100 },
    series: [line("total", t("assessment.total")), line("outcome", label("part", "outcome")),
             line("process", label("part", "process"))],
  };
}
