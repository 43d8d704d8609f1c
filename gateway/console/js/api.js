// The API client: bearer token in memory, one refresh on a 401, problem+json as ApiError, the live SSE stream.
let access = null;
let language = "zh-CN";
let refresher = null; // async () => new access token or null (set by auth.js)
let onExpired = () => {};

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

export function setAccess(token) { access = token; }
export function hasAccess() { return access !== null; }
export function setLanguage(lang) { language = lang; }
export function configure({ refresh, expired }) { refresher = refresh; onExpired = expired; }

function url(path, query) {
  const u = new URL(path.startsWith("/") ? path : `/api/v1/${path}`, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v === undefined || v === null || v === "") continue;
    for (const one of Array.isArray(v) ? v : [v]) u.searchParams.append(k, one);
  }
  return u;
}

async function send(path, { method = "GET", query, json, body, headers = {} } = {}) {
  const h = { "accept-language": language, ...headers };
  if (access) h.authorization = `Bearer ${access}`;
  if (json !== undefined) { h["content-type"] = "application/json"; body = JSON.stringify(json); }
  return fetch(url(path, query), { method, headers: h, body, credentials: "omit" });
}

/** A response, after one token refresh if the first answer was 401. */
export async function request(path, options = {}) {
  let r = await send(path, options);
  if (r.status === 401 && access && refresher) {
    const renewed = await refresher();
    if (renewed) r = await send(path, options);
    else onExpired();
  }
  if (!r.ok) {
    let problem = null;
    try { problem = await r.json(); } catch { /* not JSON */ }
    throw new ApiError(r.status, problem);
  }
  return r;
}

/** JSON from a call (null for 204). */
export async function api(path, options) {
  const r = await request(path, options);
  return r.status === 204 ? null : r.json();
}

/** Every item of a paginated list (following next_cursor), at most `max`. */
export async function all(path, query = {}, max = 2000) {
  const items = [];
  let cursor = null;
  do {
    const page = await api(path, { query: { ...query, limit: 500, cursor } });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items.slice(0, max);
}

/** Download a response body as a file (reports: CSV, XLSX). */
export async function download(path, query, fallbackName) {
  const r = await request(path, { query });
  const disposition = r.headers.get("content-disposition") || "";
  const name = /filename="([^"]+)"/.exec(disposition)?.[1] || fallbackName;
  const a = document.createElement("a");
  a.href = URL.createObjectURL(await r.blob());
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  return name;
}

/**
 * Follow a server-sent-event stream with the bearer token in a header (EventSource cannot send one, and a
 * token in the URL would be logged): calls onEvent(name, data, id) per event and reconnects with backoff
 * until `signal` aborts, sending `Last-Event-ID` so the server replays what was missed meanwhile (it sends
 * `stream.reset` when that is too far back: reload then). onState(true|false) says whether it is connected.
 */
export async function follow(path, { onEvent, onState = () => {}, signal }) {
  let wait = 1000;
  let lastId = null;
  while (!signal.aborted) {
    try {
      const headers = { authorization: `Bearer ${access}`, accept: "text/event-stream", "accept-language": language };
      if (lastId !== null) headers["last-event-id"] = lastId;
      const r = await fetch(url(path), { headers, signal, credentials: "omit" });
      if (r.status === 401 && refresher && await refresher()) continue;
      if (!r.ok || !r.body) throw new ApiError(r.status, null);
      onState(true);
      wait = 1000;
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let name = "message";
          let id = null;
          const data = [];
          for (const line of frame.split("\n")) {
            if (line.startsWith("event:")) name = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
            else if (line.startsWith("id:")) id = line.slice(3).trim();
          }
          if (id !== null) lastId = id;
          if (data.length) {
            let parsed = data.join("\n");
            try { parsed = JSON.parse(parsed); } catch { /* plain text */ }
            onEvent(name, parsed, id);
          }
        }
      }
    } catch (exc) {
      if (signal.aborted) break;
    }
    onState(false);
    await new Promise((ok) => setTimeout(ok, wait));
    wait = Math.min(wait * 2, 30000);
  }
}
