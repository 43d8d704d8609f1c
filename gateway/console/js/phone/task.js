// Task orders on the phone: mine by deadline (overdue first), and one order round its loop — accept, start,
// each milestone (with a note and photos), submit — with the reason when it came back returned.
import { all, api, request } from "../api.js";
import { label, t } from "../i18n.js";
import { html, useEffect, useLoad, useState } from "../lib.js";
import { Loaded, Problem } from "../ui.js";
import * as outbox from "./outbox.js";

/** A time in the district's zone, short (HH:MM, with the date when not today). */
export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  const day = (x) => new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai" }).format(x);
  const time = new Intl.DateTimeFormat("zh-CN", { timeZone: "Asia/Shanghai", hour: "2-digit", minute: "2-digit",
                                                  hour12: false }).format(d);
  return day(d) === day(new Date()) ? time : `${day(d).slice(5)} ${time}`;
}

const SHOWN = ["dispatched", "reassigned", "accepted", "in_progress", "returned", "submitted"];

function order(a, b) {
  if (a.overdue !== b.overdue) return a.overdue ? -1 : 1;
  return a.deadline_at < b.deadline_at ? -1 : a.deadline_at > b.deadline_at ? 1 : 0;
}

export function TaskList({ who, tick }) {
  const state = useLoad(async () => {
    const rows = await all("tasks", who.unit_id ? { unit_id: who.unit_id } : {}, 500);
    return rows.filter((r) => SHOWN.includes(r.status)).sort(order);
  }, [tick]);
  return html`<${Loaded} state=${state}>${(rows) => !rows.length ? html`<p class="muted">${t("phone.no_tasks")}</p>`
    : html`<ul class="cards">${rows.map((r) => html`<li class=${`card ${r.overdue ? "overdue" : ""}`} data-testid="task"
        data-id=${r.id} data-model=${r.model_id} data-incident=${r.incident_id}>
      <a href=${`#/m/task/${encodeURIComponent(r.id)}`} class="row">
        <b>${r.model_name || r.model_id}</b><span class=${`status ${r.status}`}>${r.status_label || label("task_status", r.status)}</span>
      </a>
      <div class="small muted">${r.category_label || label("category", r.category)} · ${t("phone.deadline", { at: when(r.deadline_at) })}
        ${r.overdue ? html` · <b class="red">${label("task_status", "overdue")}</b>` : ""}</div>
    </li>`)}</ul>`}<//>`;
}

/** A thumbnail read with the bearer token (an <img src> cannot send it) and shown from a blob: URL. */
function Thumb({ photo }) {
  const [src, setSrc] = useState(null);
  useEffect(() => {
    let url = null;
    let gone = false;
    request(photo.thumbnail_href).then((r) => r.blob()).then((b) => {
      if (gone) return;
      url = URL.createObjectURL(b);
      setSrc(url);
    }).catch(() => {});
    return () => { gone = true; if (url) URL.revokeObjectURL(url); };
  }, [photo.id]);
  return html`<figure class="thumb" data-testid="photo" data-id=${photo.id}>
    ${src ? html`<img src=${src} alt=${photo.id} />` : html`<span class="muted small">…</span>`}
    ${photo.attached_milestone || photo.attached_action ? html`<figcaption class="small">
      ${photo.attached_milestone || label("task_action", photo.attached_action)}</figcaption>` : ""}
  </figure>`;
}

/** The step the order is at, as one form: a note, photos (for a milestone or the submission), one big button. */
function Step({ task, onQueued }) {
  const [note, setNote] = useState("");
  const [files, setFiles] = useState([]);
  const [error, setError] = useState(null);
  const next = task.milestones.find((m) => !m.done_at);
  const action = ["dispatched", "reassigned"].includes(task.status) ? "accept"
    : ["accepted", "returned"].includes(task.status) ? "start"
      : task.status === "in_progress" ? (next ? "complete_milestone" : "submit") : null;
  if (!action) return html`<p class="muted" data-testid="step-none">${t(`phone.after.${task.status}`)}</p>`;
  const withPhotos = action === "complete_milestone" || action === "submit";
  function go(event) {
    event.preventDefault();
    setError(null);
    const base = `tasks/${encodeURIComponent(task.id)}`;
    const uploads = files.map((f) => outbox.write({ label: t("phone.photo_of", { name: f.name }), path: `${base}/photos`,
                                                    body: f, contentType: f.type || "application/octet-stream" }));
    const json = { action, note };
    if (action === "complete_milestone") json.milestone = next.code;
    const what = action === "complete_milestone" ? next.name : t(`phone.action.${action}`);
    const { done } = outbox.write({ label: `${what} · ${task.model_name || task.model_id}`, path: `${base}/transitions`,
                                    json, cite: uploads.map((u) => u.id) });
    for (const u of uploads) u.done.catch((exc) => setError(exc));
    setNote("");
    setFiles([]);
    onQueued(done.catch((exc) => { setError(exc); }));
  }
  return html`<form class="step" onSubmit=${go} data-testid="step" data-action=${action}>
    <h3>${action === "complete_milestone" ? t("phone.milestone_next", { name: next.name }) : t(`phone.action.${action}`)}</h3>
    <label>${t("phone.note")}<textarea name="note" rows="2" value=${note} onInput=${(e) => setNote(e.target.value)}></textarea></label>
    ${withPhotos && html`<label class="file">${t("phone.add_photo")}
      <input type="file" name="photo" accept="image/jpeg,image/png,image/heic,image/*" capture="environment" multiple
        onChange=${(e) => setFiles([...e.target.files])} /></label>
      ${files.length ? html`<p class="small muted">${t("phone.photos_chosen", { n: files.length })}</p>` : ""}`}
    <${Problem} error=${error} />
    <button type="submit" class="big" data-testid="act">${t(`phone.action.${action}`)}</button>
  </form>`;
}

export function TaskDetail({ id, tick }) {
  const [bump, setBump] = useState(0);
  const state = useLoad(async () => {
    const base = `tasks/${encodeURIComponent(id)}`;
    const [task, photos] = await Promise.all([api(base), all(`${base}/photos`, {}, 100)]);
    return { task, photos };
  }, [id, tick, bump]);
  const queued = (done) => done.then(() => setBump((n) => n + 1));
  return html`<${Loaded} state=${state}>${({ task, photos }) => {
    const returned = [...task.history].reverse().find((h) => h.action === "return");
    return html`<article class="task" data-testid="task-detail" data-status=${task.status}>
      <a href="#/m/tasks" class="small">← ${t("phone.tab.tasks")}</a>
      <h2>${task.model_name || task.model_id}</h2>
      <p class="small muted">${task.category_label} · <span data-testid="status">${task.status_label || label("task_status", task.status)}</span>
        · ${t("phone.deadline", { at: when(task.deadline_at) })}${task.overdue ? html` · <b class="red">${label("task_status", "overdue")}</b>` : ""}</p>
      ${task.status === "returned" && returned ? html`<div class="problem" data-testid="returned">
        <b>${t("phone.returned")}</b> ${returned.note}</div>` : ""}
      <h3>${t("phone.key_points")}</h3><ul class="lines">${task.key_points.map((k) => html`<li>${k.text}</li>`)}</ul>
      <h3>${t("phone.milestones")}</h3>
      <ol class="milestones">${task.milestones.map((m) => html`<li class=${m.done_at ? "done" : ""} data-testid="milestone"
        data-done=${m.done_at ? "true" : "false"}>${m.name}
        <span class="small muted">${m.done_at ? t("phone.done_at", { at: when(m.done_at) }) : t("phone.due", { at: when(m.due_at) })}</span></li>`)}</ol>
      <h3>${t("phone.measures")}</h3><ul class="lines">${task.measures.map((k) => html`<li>${k.text}</li>`)}</ul>
      ${photos.length ? html`<h3>${t("phone.photos")}</h3><div class="thumbs">${photos.map((p) => html`<${Thumb} photo=${p} key=${p.id} />`)}</div>` : ""}
      <${Step} task=${task} onQueued=${queued} key=${`${task.status}-${task.version}`} />
    </article>`;
  }}<//>`;
}
