// Writes from a phone on a poor network: each write is queued with its own Idempotency-Key and sent in order;
// one that fails for the network (no answer, a 5xx, 429, or its first try still in flight) stays queued and is
// retried (backoff, and at once when the browser comes back online). The gateway replays the kept answer to a
// retry with the same key, so a write whose answer was lost is never applied twice. A refusal (a 4xx problem)
// leaves the queue and is reported. The queue lives in the page's memory; its JSON writes that cite no photo are
// also kept in sessionStorage (this tab, this officer), so a reload sends them on with the same keys. Photos
// (and the steps citing them) are not: they survive a lost network, not a reload (docs/CONSOLE.md). Logging out
// forgets the queue.
import { ApiError, request } from "../api.js";
import * as auth from "../auth.js";

const KEY = "jiaozhi.outbox";

let queue = []; // {id, key, label, path, method, json, body, contentType, cite, resolve, reject, tries, error}
let listeners = [];
let running = false;
let timer = null;
let wait = 1000;
const results = new Map(); // queue id → the JSON answer (an upload's answer gives later writes their evidence)
const refused = new Map(); // queue id → the ApiError it was refused with (a write citing it is not sent)

function save() {
  const who = auth.current()?.username;
  const kept = queue.filter((i) => i.json !== undefined && !i.cite.length)
    .map(({ id, key, label, path, method, json }) => ({ id, key, label, path, method, json }));
  if (who && kept.length) sessionStorage.setItem(KEY, JSON.stringify({ who, items: kept }));
  else sessionStorage.removeItem(KEY);
}

function changed() { save(); listeners.forEach((fn) => fn(pending())); }
export function onChange(fn) { listeners.push(fn); return () => { listeners = listeners.filter((f) => f !== fn); }; }

/** What is waiting to be sent: [{id, label, tries, error}]. */
export function pending() {
  return queue.map(({ id, label, tries, error }) => ({ id, label, tries, error }));
}

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Queue a write; the promise settles when it lands (its JSON answer) or is refused (ApiError). `cite`: ids of
 * earlier queued uploads whose `evidence_ref` goes into this write's `json.evidence` when it is sent.
 */
export function write({ label, path, method = "POST", json, body, contentType, cite = [] }) {
  const id = newKey();
  const item = { id, key: newKey(), label, path, method, json, body, contentType, cite, tries: 0, error: null };
  const done = new Promise((resolve, reject) => { item.resolve = resolve; item.reject = reject; });
  queue.push(item);
  changed();
  pump();
  return { id, done };
}

function retryable(exc) {
  if (!(exc instanceof ApiError)) return true; // fetch itself failed: no network
  const kind = exc.problem?.type || "";
  return exc.status >= 500 || exc.status === 429 || kind.endsWith("/idempotency-key-in-flight");
}

async function sendOne(item) {
  const headers = { "idempotency-key": item.key };
  let json = item.json;
  const lost = item.cite.map((c) => refused.get(c)).find(Boolean);
  if (lost) throw lost; // a photo this step cites was refused: the step waits for the officer, not without it
  if (item.cite.length) {
    const refs = item.cite.map((c) => results.get(c)?.evidence_ref).filter(Boolean);
    json = { ...json, evidence: [...(json.evidence || []), ...refs] };
  }
  const options = { method: item.method, headers };
  if (json !== undefined) options.json = json;
  else { options.body = item.body; headers["content-type"] = item.contentType || "application/octet-stream"; }
  const r = await request(item.path, options);
  return r.status === 204 ? null : r.json();
}

async function pump() {
  if (running) return;
  running = true;
  clearTimeout(timer);
  try {
    while (queue.length) {
      const item = queue[0];
      item.tries += 1;
      try {
        const answer = await sendOne(item);
        results.set(item.id, answer);
        queue.shift();
        wait = 1000;
        changed();
        item.resolve(answer);
      } catch (exc) {
        if (retryable(exc)) {
          item.error = exc.message || String(exc);
          changed();
          timer = setTimeout(pump, wait);
          wait = Math.min(wait * 2, 30000);
          return;
        }
        queue.shift();
        refused.set(item.id, exc);
        changed();
        item.reject(exc);
      }
    }
  } finally {
    running = false;
  }
}

/** Try the queue again now (a tap on "retry", or the network is back). */
export function retry() { wait = 1000; pump(); }

/** After a reload: the same officer's kept writes go on (same keys: one that had landed is replayed). */
function restore() {
  let saved = null;
  try { saved = JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch { /* unreadable: dropped */ }
  if (!saved || saved.who !== auth.current()?.username) { sessionStorage.removeItem(KEY); return; }
  for (const item of saved.items) {
    queue.push({ ...item, cite: [], tries: 0, error: null, resolve: () => {}, reject: () => {} });
  }
  if (queue.length) { changed(); pump(); }
}

auth.onChange((who) => {
  if (who) return;
  queue = []; // logged out: nothing of this officer's is sent under another's name
  sessionStorage.removeItem(KEY);
  listeners.forEach((fn) => fn(pending()));
});
addEventListener("online", retry);
restore();
