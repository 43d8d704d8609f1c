// Texts: the console's own messages (messages.js) and the API's labels for codes (GET /api/v1/labels),
// Chinese (zh-CN) by default, English on request. No code is ever shown to a person where a label exists.
import { setLanguage } from "./api.js";
import MESSAGES from "./messages.js";

export const LANGS = ["zh-CN", "en"];
const KEY = "jiaozhi.lang"; // a preference, not a secret
let lang = LANGS.includes(localStorage.getItem(KEY)) ? localStorage.getItem(KEY) : "zh-CN";
let groups = {};

export function current() { return lang; }

/** Load the labels for a language (and make it the language of every API call). */
export async function use(next) {
  lang = LANGS.includes(next) ? next : "zh-CN";
  localStorage.setItem(KEY, lang);
  setLanguage(lang);
  document.documentElement.lang = lang;
  const r = await fetch("/api/v1/labels", { headers: { "accept-language": lang }, credentials: "omit" });
  groups = r.ok ? (await r.json()).groups : {}; // (no labels: codes show, the console still works)
  document.title = t("app.title");
  return lang;
}

/** A console message, with {name} placeholders filled. */
export function t(key, params = {}) {
  const text = MESSAGES[lang]?.[key] ?? MESSAGES["zh-CN"][key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (params[name] ?? `{${name}}`));
}

/** The label of a code in a group (`mode`, `category`, `board_theme`…); the code itself if none. */
export function label(group, code) {
  if (code === null || code === undefined || code === "") return "—";
  return groups[group]?.[code] ?? code;
}

/** Every code of a group with its label, for filters. */
export function options(group) {
  return Object.entries(groups[group] || {});
}

/** A text the API gives in one language or as {"zh-CN": …, "en": …}, in the reader's language. */
export function pick(value) {
  if (value === null || value === undefined) return "";
  if (typeof value !== "object") return String(value);
  return value[lang] ?? value["zh-CN"] ?? Object.values(value)[0] ?? "";
}

/** A tracing model's short name in the reader's language (older catalogues: name_zh, else the description). */
export function modelName(model) {
  if (!model) return "";
  if (model.name) return pick(model.name);
  return lang === "zh-CN" && model.name_zh ? model.name_zh : pick(model.description);
}

/** A name given in both scripts ("瓜沥派出所（一站式） (Guali one-stop station)") in the reader's script: the last
 * half-width "( … )" at the end is the other script's; a name without one is shown whole. */
export function shortName(name) {
  const m = /^(.*\S)\s+\(([^()]+)\)$/.exec(name || "");
  if (!m) return name;
  const cjk = (x) => /[\u4e00-\u9fff]/.test(x);
  const [zh, en] = cjk(m[1]) ? [m[1], m[2]] : [m[2], m[1]];
  return lang === "zh-CN" ? zh : en;
}
