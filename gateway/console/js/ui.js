// Small pieces every screen uses: loading and error states, colour chips, filters, the chart frame.
import { html, useEffect, useRef } from "./lib.js";
import { label, options, t } from "./i18n.js";

export function Loading() {
  return html`<p class="muted" role="status">${t("common.loading")}</p>`;
}

export function Problem({ error }) {
  if (!error) return null;
  const title = error.problem?.title || t("common.error");
  return html`<div class="problem" role="alert"><b>${title}</b> ${error.problem?.detail || error.message}</div>`;
}

/** Loading, an error, or the content. */
export function Loaded({ state, children }) {
  if (state.error) return html`<${Problem} error=${state.error} />`;
  if (state.loading && !state.data) return html`<${Loading} />`;
  return children(state.data);
}

export function Chip({ colour, text }) {
  return html`<span class=${`chip ${colour || "none"}`}>${text ?? label("colour", colour)}</span>`;
}

/** A <select> over a label group (or given [value, text] pairs) with an "all" choice. */
export function Filter({ name, value, onChange, group, choices, all = true }) {
  const list = choices || options(group);
  return html`<label class="filter">${t(`filter.${name}`)}
    <select name=${name} value=${value ?? ""} onChange=${(e) => onChange(e.target.value || null)}>
      ${all && html`<option value="">${t("filter.all")}</option>`}
      ${list.map(([v, text]) => html`<option value=${v}>${text}</option>`)}
    </select></label>`;
}

export function Section({ title, children, actions }) {
  return html`<section class="panel"><header><h2>${title}</h2>${actions}</header>${children}</section>`;
}

let echartsModule = null;
/** Apache ECharts, loaded on first use (the board does not need it). */
export async function echarts() {
  echartsModule ||= import("../vendor/echarts.esm.min.js");
  return echartsModule;
}

/** An ECharts chart; `setup(echarts, chart)` runs once the library is there, again when `deps` change. */
export function Chart({ option, height = 320, onClick, setup, testid }) {
  const box = useRef(null);
  const chart = useRef(null);
  useEffect(() => {
    let gone = false;
    (async () => {
      const lib = await echarts();
      if (gone) return;
      if (setup) setup(lib);
      chart.current ||= lib.init(box.current, null, { renderer: "svg" });
      chart.current.setOption(option, true);
      chart.current.off("click");
      if (onClick) chart.current.on("click", onClick);
      box.current.dataset.drawn = "true";
    })();
    return () => { gone = true; };
  }, [option]);
  useEffect(() => {
    const resize = () => chart.current?.resize();
    addEventListener("resize", resize);
    return () => { removeEventListener("resize", resize); chart.current?.dispose(); chart.current = null; };
  }, []);
  return html`<div class="chart" ref=${box} data-testid=${testid} style=${{ height: `${height}px` }}></div>`;
}
