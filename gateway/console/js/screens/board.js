// 日清看板 The daily board (the article's figure 4): every station × the 8 themes for a day, live.
import { all, api, follow } from "../api.js";
import { label, shortName, t } from "../i18n.js";
import { html, localDay, num, pct, useEffect, useLoad, useMemo, useRef, useState } from "../lib.js";
import { Chip, Filter, Loaded, Section } from "../ui.js";

const REFRESH_S = 60; // activity-driven themes: polled; task-driven ones follow the live stream at once

async function loadBoard(day) {
  const [board, stations, squadrons] = await Promise.all([
    api("board", { query: { date: day } }),
    all("stations"),
    all("units", { kind: "squadron" }),
  ]);
  return { board, stations: Object.fromEntries(stations.map((s) => [s.id, s])), squadrons };
}

function Cell({ station, theme, onOpen, open }) {
  return html`<td class=${`cell ${theme.colour}${open ? " open" : ""}`} data-testid="cell" data-colour=${theme.colour}
      data-station=${station.station_id} data-theme=${theme.theme} tabindex="0" onClick=${() => onOpen(station, theme)}
      aria-label=${label("colour", theme.colour)}>
    <b>${num(theme.actual, 1)}</b><span>/ ${num(theme.target, 1)}</span>
    <small>${pct(theme.progress)}${theme.overdue_tasks.length ? html` · ⚠${theme.overdue_tasks.length}` : ""}</small>
  </td>`;
}

function Detail({ station, theme, close }) {
  const state = useLoad(() => Promise.all(theme.overdue_tasks.slice(0, 20).map((id) => api(`tasks/${id}`))),
                        [station.station_id, theme.theme]);
  return html`<${Section} title=${`${shortName(station.name) || station.station_id} · ${label("board_theme", theme.theme)}`}
      actions=${html`<button type="button" class="link" onClick=${close}>${t("common.close")}</button>`}>
    <dl class="facts">
      <dt>${t("board.target")}</dt><dd>${num(theme.target, 1)} ${theme.unit}</dd>
      <dt>${t("board.actual")}</dt><dd>${num(theme.actual, 1)} ${theme.unit}</dd>
      <dt>${t("board.progress")}</dt><dd>${pct(theme.progress)}</dd>
      <dt>${t("board.colour")}</dt><dd><${Chip} colour=${theme.colour} /></dd>
    </dl>
    <h3>${t("board.overdue", { n: theme.overdue_tasks.length })}</h3>
    <${Loaded} state=${state}>${(tasks) => tasks.length ? html`<table class="list"><thead><tr>
        <th>${t("task.model")}</th><th>${t("task.category")}</th><th>${t("task.unit")}</th>
        <th>${t("task.status")}</th><th>${t("task.deadline")}</th></tr></thead>
      <tbody>${tasks.map((x) => html`<tr><td>${x.model_id}</td><td>${label("category", x.category)}</td>
        <td>${x.unit_id}</td><td>${label("task_status", x.status)}</td>
        <td>${new Date(x.deadline_at).toLocaleString(document.documentElement.lang)}</td></tr>`)}</tbody></table>`
      : html`<p class="muted">${t("board.no_overdue")}</p>`}<//>
  <//>`;
}

export function Board() {
  const [day, setDay] = useState(localDay());
  const [mode, setMode] = useState(null);
  const [squadron, setSquadron] = useState(null);
  const [open, setOpen] = useState(null);
  const [live, setLive] = useState(false);
  const [updated, setUpdated] = useState(new Date());
  const state = useLoad(() => loadBoard(day), [day]);
  const reload = useRef(state.reload);
  reload.current = () => { state.reload(); setUpdated(new Date()); };

  useEffect(() => { // live: a changed task order re-reads the board (debounced), and a slow poll for the rest
    const stop = new AbortController();
    let pending = null;
    follow("/api/v1/tasks/stream", {
      signal: stop.signal, onState: setLive,
      onEvent: () => { clearTimeout(pending); pending = setTimeout(() => reload.current(), 1000); },
    });
    const poll = setInterval(() => reload.current(), REFRESH_S * 1000);
    return () => { stop.abort(); clearInterval(poll); clearTimeout(pending); };
  }, []);

  return html`<div class="board">
    <div class="toolbar">
      <label class="filter">${t("filter.day")}<input type="date" name="day" value=${day}
        onChange=${(e) => e.target.value && setDay(e.target.value)} /></label>
      <${Filter} name="mode" group="mode" value=${mode} onChange=${setMode} />
      <${Loaded} state=${state}>${(d) => html`<${Filter} name="squadron" value=${squadron} onChange=${setSquadron}
        choices=${d.squadrons.map((s) => [s.id, shortName(s.name)])} />`}<//>
      <span class=${`live ${live ? "on" : "off"}`} data-testid="live">${live ? t("board.live") : t("board.offline")}
        · ${t("board.updated", { at: updated.toLocaleTimeString(document.documentElement.lang) })}</span>
      <span class="legend">${["blue", "yellow", "red"].map((c) => html`<${Chip} colour=${c}
        text=${t(`board.legend.${c}`)} />`)}</span>
    </div>
    <${Loaded} state=${state}>${(d) => html`<${Grid} data=${d} mode=${mode} squadron=${squadron} open=${open}
      onOpen=${(station, theme) => setOpen({ station, theme })} />`}<//>
    ${open && html`<${Detail} ...${open} close=${() => setOpen(null)} />`}
  </div>`;
}

function Grid({ data, mode, squadron, open, onOpen }) {
  useEffect(() => { // after the cells are painted: what "interactive" is measured against (tests/console)
    if (!performance.getEntriesByName("board-drawn").length) performance.mark("board-drawn");
  }, [data]);
  const rows = useMemo(() => data.board.stations.filter((s) => (!mode || s.mode === mode)
      && (!squadron || data.stations[s.station_id]?.parent_id === squadron)), [data, mode, squadron]);
  const themes = data.board.stations[0]?.themes.map((x) => x.theme) || [];
  const counts = { blue: 0, yellow: 0, red: 0 };
  rows.forEach((s) => s.themes.forEach((x) => { counts[x.colour] = (counts[x.colour] || 0) + 1; }));
  return html`<p class="muted summary">${t("board.summary", { day: data.board.date, n: rows.length,
      elapsed: pct(data.board.elapsed), ...counts })}</p>
    <table class="grid" data-testid="board">
      <thead><tr><th>${t("board.station")}</th><th>${t("board.mode")}</th>
        ${themes.map((x) => html`<th>${label("board_theme", x)}</th>`)}</tr></thead>
      <tbody>${rows.map((s) => html`<tr>
        <th scope="row" title=${s.name}>${shortName(s.name) || s.station_id}</th><td class="mode">${label("mode", s.mode)}</td>
        ${s.themes.map((x) => html`<${Cell} station=${s} theme=${x} onOpen=${onOpen}
          open=${open && open.station.station_id === s.station_id && open.theme.theme === x.theme} />`)}
      </tr>`)}</tbody>
    </table>`;
}
