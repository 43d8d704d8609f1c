// 辖区地图 The district map: station areas (from GET /units/areas, no tile server) coloured by integration mode,
// the last week's incidents and open hazard points on top; a click on an area opens the station.
import { all, api } from "../api.js";
import { label, shortName as short, t } from "../i18n.js";
import { addDays, dayStart, html, localDay, useLoad, useMemo } from "../lib.js";
import { Chart, Loaded } from "../ui.js";

export const MODE_COLOURS = { basic: "#5b8ff9", deep: "#5ad8a6", full: "#f6bd16" };
const NONE = "#d9d9d9";
const DAYS = 7;

async function areas() {
  const features = [];
  let cursor = null;
  do {
    const page = await api("units/areas", { query: { cursor } });
    features.push(...page.features);
    cursor = page.next_cursor;
  } while (cursor);
  return { type: "FeatureCollection", features };
}

async function load() {
  const today = localDay();
  const [map, incidents, hazards] = await Promise.all([
    areas(),
    all("incidents", { since: dayStart(addDays(today, 1 - DAYS)) }, 2000),
    all("hazards", {}, 2000).catch(() => []), // a registry a role may not read: the map still draws
  ]);
  return { map, incidents, hazards: hazards.filter((h) => h.status !== "remediated" && h.status !== "closed") };
}

export function DistrictMap({ navigate }) {
  const state = useLoad(load, []);
  return html`<div class="map-screen">
    <div class="toolbar"><span class="legend">${Object.entries(MODE_COLOURS).map(([m, c]) => html`<span class="key">
      <i class="swatch" style=${{ background: c }}></i>${label("mode", m)}</span>`)}
      <span class="key"><i class="dot incident"></i>${t("map.incidents", { n: DAYS })}</span>
      <span class="key"><i class="dot hazard"></i>${t("map.hazards")}</span></span></div>
    <${Loaded} state=${state}>${(d) => html`<${Drawn} data=${d} navigate=${navigate} />`}<//>
  </div>`;
}

function Drawn({ data, navigate }) {
  const names = Object.fromEntries(data.map.features.map((f) => [f.id, f.properties.name]));
  const modes = Object.fromEntries(data.map.features.map((f) => [f.id, f.properties.mode]));
  const option = useMemo(() => ({
    tooltip: { trigger: "item", formatter: (p) => p.componentType === "geo"
      ? `${names[p.name] || p.name}<br/>${label("mode", modes[p.name])}` : p.seriesName },
    geo: {
      map: "district", roam: true, nameProperty: "id", aspectScale: 0.86, top: 10, bottom: 10,
      label: { show: true, fontSize: 11, color: "#1f2328", formatter: (p) => short(names[p.name] || p.name) },
      itemStyle: { borderColor: "#ffffff", borderWidth: 1.2 },
      emphasis: { itemStyle: { areaColor: "#ffd8bf" }, label: { show: true } },
      regions: data.map.features.map((f) => ({
        name: f.id, itemStyle: { areaColor: MODE_COLOURS[f.properties.mode] || NONE } })),
    },
    series: [
      { name: t("map.incidents", { n: DAYS }), type: "scatter", coordinateSystem: "geo", symbolSize: 4,
        itemStyle: { color: "#cf1322", opacity: 0.55 }, silent: true,
        data: data.incidents.filter((i) => i.location).map((i) => [i.location.lon, i.location.lat]) },
      { name: t("map.hazards"), type: "scatter", coordinateSystem: "geo", symbol: "triangle", symbolSize: 9,
        itemStyle: { color: "#722ed1" },
        data: data.hazards.map((h) => [h.location.lon, h.location.lat]) },
    ],
  }), [data]);
  return html`<div data-testid="map" data-areas=${data.map.features.length}>
    <${Chart} testid="map-chart" height=${760} option=${option}
      setup=${(echarts) => echarts.registerMap("district", data.map)}
      onClick=${(p) => p.componentType === "geo" && navigate("assessment", p.name)} /></div>`;
}
