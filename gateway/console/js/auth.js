// Logging in and staying logged in. The access token lives only in memory (api.js). The refresh token is
// kept in sessionStorage (this tab only, gone when the tab closes) so a reload trades it for a new access
// token instead of asking for the password again; nothing goes to localStorage. Logout forgets both.
import { ApiError, api, configure, setAccess } from "./api.js";

const KEY = "jiaozhi.refresh";
let timer = null;
let listeners = [];
let identity = null;

export function onChange(fn) { listeners.push(fn); return () => { listeners = listeners.filter((f) => f !== fn); }; }
function changed() { listeners.forEach((fn) => fn(identity)); }
export function current() { return identity; }

async function grant(form) {
  const r = await fetch("/api/v1/auth/token", {
    method: "POST", body: new URLSearchParams(form), credentials: "omit",
    headers: { "content-type": "application/x-www-form-urlencoded" },
  });
  if (!r.ok) {
    let problem = null;
    try { problem = await r.json(); } catch { /* not JSON */ }
    throw new ApiError(r.status, problem);
  }
  return r.json();
}

async function adopt(tokens) {
  setAccess(tokens.access_token);
  if (tokens.refresh_token) sessionStorage.setItem(KEY, tokens.refresh_token);
  clearTimeout(timer);
  // renew a minute before the access token expires (at least after 10 s)
  timer = setTimeout(refresh, Math.max(10, tokens.expires_in - 60) * 1000);
}

/** Trade the stored refresh token for a new access token; the token, or null (then logged out). */
export async function refresh() {
  const token = sessionStorage.getItem(KEY);
  if (!token) return null;
  try {
    const tokens = await grant({ grant_type: "refresh_token", refresh_token: token });
    await adopt(tokens);
    return tokens.access_token;
  } catch {
    forget();
    return null;
  }
}

function forget() {
  clearTimeout(timer);
  setAccess(null);
  sessionStorage.removeItem(KEY);
  identity = null;
  changed();
}

export async function login(username, password) {
  await adopt(await grant({ grant_type: "password", username, password }));
  identity = await api("me");
  changed();
  return identity;
}

/** After a reload: log back in from the tab's refresh token, if any. */
export async function restore() {
  if (!(await refresh())) return null;
  identity = await api("me");
  changed();
  return identity;
}

export function logout() { forget(); }

configure({ refresh, expired: forget });
