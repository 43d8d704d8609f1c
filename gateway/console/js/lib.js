// The reactive layer, one import for every screen: Preact + hooks, with htm for templates (no build step).
import { h, render } from "../vendor/preact.module.js";
import { useEffect, useMemo, useRef, useState, useCallback } from "../vendor/preact-hooks.module.js";
import htm from "../vendor/htm.module.js";

export const html = htm.bind(h);
export { h, render, useEffect, useMemo, useRef, useState, useCallback };

/** Run an async loader whenever `deps` change; {data, error, loading, reload}. A newer load wins over an older one. */
export function useLoad(loader, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const seq = useRef(0);
  const run = useCallback(async (quiet) => {
    const mine = ++seq.current;
    if (!quiet) setState((s) => ({ ...s, loading: true, error: null }));
    try {
      const data = await loader();
      if (mine === seq.current) setState({ data, error: null, loading: false });
    } catch (error) {
      if (mine === seq.current) setState({ data: null, error, loading: false });
    }
  }, deps);
  useEffect(() => { run(false); }, [run]);
  return { ...state, reload: () => run(true) };
}

/** YYYY-MM-DD of a date in the district's time zone (Asia/Shanghai). */
export function localDay(date = new Date()) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai" }).format(date);
}

/** YYYY-MM of a date in the district's time zone, `back` months earlier. */
export function localMonth(date = new Date(), back = 0) {
  const [y, m] = localDay(date).split("-").map(Number);
  const d = new Date(Date.UTC(y, m - 1 - back, 1));
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, "0")}`;
}

/** ISO instant of local midnight starting `day` (YYYY-MM-DD) in Asia/Shanghai (UTC+8, no DST). */
export function dayStart(day) {
  return `${day}T00:00:00+08:00`;
}

export function addDays(day, n) {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

export function pct(x, digits = 0) {
  return x === null || x === undefined ? "—" : `${(x * 100).toFixed(digits)}%`;
}

export function num(x, digits = 1) {
  return x === null || x === undefined ? "—" : Number(x).toFixed(digits).replace(/\.0+$/, "");
}
