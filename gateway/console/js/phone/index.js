// The officer's phone (#/m/…): incidents dispatched to my unit with the one-tap arrival, my task orders by
// deadline, one order round its loop with photos. 390 × 844 first, thumbs, Chinese by default. Same shell,
// login and API client as the console; every write goes through the outbox (retried, never doubled).
import * as auth from "../auth.js";
import { all, follow } from "../api.js";
import { label, t } from "../i18n.js";
import { html, useEffect, useLoad, useState } from "../lib.js";
import { Loaded, Problem } from "../ui.js";
import * as outbox from "./outbox.js";
import { TaskDetail, TaskList, when } from "./task.js";

/** The live task stream, for the phone's lists: a counter bumped on every event (and on resets). */
function useLive() {
  const [tick, setTick] = useState(0);
  const [live, setLive] = useState(false);
  useEffect(() => {
    const stop = new AbortController();
    follow("tasks/stream", { signal: stop.signal, onState: setLive, onEvent: () => setTick((n) => n + 1) });
    return () => stop.abort();
  }, []);
  return { tick, live };
}

function Pending() {
  const [items, setItems] = useState(outbox.pending());
  useEffect(() => outbox.onChange(setItems), []);
  if (!items.length) return null;
  return html`<section class="pending" data-testid="pending" role="status">
    <b>${t("phone.pending", { n: items.length })}</b>
    <ul>${items.map((i) => html`<li>${i.label}${i.error ? html` <span class="muted">· ${t("phone.retrying")}</span>` : ""}</li>`)}</ul>
    <button type="button" onClick=${() => outbox.retry()}>${t("phone.retry_now")}</button>
  </section>`;
}

function Incidents({ who, tick }) {
  const since = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
  const state = useLoad(() => all("incidents", { since }, 200), [tick]);
  const [errors, setErrors] = useState({});
  const [tapped, setTapped] = useState({});
  function arrive(incident) {
    setTapped((s) => ({ ...s, [incident.id]: true }));
    const { done } = outbox.write({ label: t("phone.arrival_of", { kind: label("incident_kind", incident.kind) }),
                                    path: `incidents/${encodeURIComponent(incident.id)}/arrival`, json: {} });
    done.then(() => state.reload(), (exc) => {
      setErrors((e) => ({ ...e, [incident.id]: exc }));
      setTapped((s) => ({ ...s, [incident.id]: false }));
    });
  }
  return html`<${Loaded} state=${state}>${(rows) => {
    const mine = rows.filter((i) => i.handling_unit_id === who.unit_id || who.role !== "station");
    if (!mine.length) return html`<p class="muted">${t("phone.no_incidents")}</p>`;
    return html`<ul class="cards">${mine.map((i) => html`<li class="card" data-testid="incident" data-id=${i.id}>
      <div class="row"><b>${label("incident_kind", i.kind)}</b><span class="muted">${when(i.occurred_at)}</span></div>
      <div class="small muted">${t("phone.dispatched_at", { at: when(i.dispatched_at) })} · ${i.handling_unit_id}</div>
      ${i.arrived_at
        ? html`<div class=${`arrived ${i.within_5_min ? "ok" : "late"}`} data-testid="arrived">
            ${t("phone.arrived", { at: when(i.arrived_at), s: Math.round(i.response_s) })}
            ${i.within_5_min ? t("phone.within_5") : t("phone.over_5")}</div>`
        : html`<button type="button" class="big" data-testid="arrive" disabled=${tapped[i.id]}
            onClick=${() => arrive(i)}>${tapped[i.id] ? t("phone.sending") : t("phone.arrive")}</button>`}
      <${Problem} error=${errors[i.id]} />
    </li>`)}</ul>`;
  }}<//>`;
}

function Tabs({ tab }) {
  const tabs = [["incidents", "#/m"], ["tasks", "#/m/tasks"]];
  return html`<nav class="tabs">${tabs.map(([name, href]) => html`<a href=${href} class=${tab === name ? "on" : ""}
    data-testid=${`tab-${name}`}>${t(`phone.tab.${name}`)}</a>`)}</nav>`;
}

/** The phone's shell: `arg` is the rest of the route after `m` ("", "tasks", "task/{id}"). */
export function Phone({ who, arg }) {
  const { tick, live } = useLive();
  const [section, id] = (arg || "").split("/");
  const tab = section === "tasks" || section === "task" ? "tasks" : "incidents";
  return html`<div class="phone" data-screen="phone">
    <header class="phone-top">
      <div><b>${t("phone.title")}</b> <span class="small">${who.unit_id || who.username}</span></div>
      <span class=${`badge ${live ? "live" : "off"}`} data-testid="live">${live ? t("board.live") : t("board.offline")}</span>
      <button type="button" class="link" data-testid="logout" onClick=${() => auth.logout()}>${t("login.logout")}</button>
    </header>
    <${Pending} />
    <main>
      ${section === "task" && id ? html`<${TaskDetail} id=${decodeURIComponent(id)} who=${who} tick=${tick} />`
        : tab === "tasks" ? html`<${TaskList} who=${who} tick=${tick} />` : html`<${Incidents} who=${who} tick=${tick} />`}
    </main>
    <${Tabs} tab=${tab} />
  </div>`;
}
