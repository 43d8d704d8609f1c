// The console's shell: login, the layout (navigation, language, user, logout) and the hash routes to screens.
import * as auth from "./auth.js";
import * as i18n from "./i18n.js";
import { html, render, useEffect, useState } from "./lib.js";
import { Loading, Problem } from "./ui.js";
import { SCREENS } from "./screens/index.js";

const t = i18n.t;

function parseRoute() {
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  return { name: name || "board", arg: rest.length ? decodeURIComponent(rest.join("/")) : null };
}

export function navigate(name, arg) {
  location.hash = `#/${name}${arg ? `/${encodeURIComponent(arg)}` : ""}`;
}

function Login() {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function submit(event) {
    event.preventDefault();
    const form = new FormData(event.target);
    setBusy(true);
    setError(null);
    try {
      await auth.login(form.get("username"), form.get("password"));
    } catch (exc) {
      setError(exc);
    } finally {
      setBusy(false);
    }
  }
  return html`<main class="login">
    <form onSubmit=${submit} aria-label=${t("login.title")}>
      <h1>${t("app.title")}</h1>
      <p class="muted">${t("app.subtitle")}</p>
      <label>${t("login.username")}<input name="username" autocomplete="username" required /></label>
      <label>${t("login.password")}<input name="password" type="password" autocomplete="current-password" required /></label>
      <${Problem} error=${error} />
      <button type="submit" disabled=${busy}>${t("login.submit")}</button>
      <${LangSwitch} />
    </form></main>`;
}

function LangSwitch() {
  const other = i18n.current() === "zh-CN" ? "en" : "zh-CN";
  return html`<button type="button" class="link lang" data-testid="lang" onClick=${() => switchLang(other)}>
    ${t(`lang.${other}`)}</button>`;
}

function Shell({ who }) {
  const [route, setRoute] = useState(parseRoute());
  useEffect(() => {
    const changed = () => setRoute(parseRoute());
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  const allowed = SCREENS.filter((s) => s.roles.includes(who.role));
  const screen = allowed.find((s) => s.name === route.name) || allowed[0];
  const [loaded, setLoaded] = useState(null); // {name, view}
  useEffect(() => {
    let gone = false;
    screen.load().then((view) => !gone && setLoaded({ name: screen.name, view }));
    return () => { gone = true; };
  }, [screen.name]);
  const Screen = loaded?.name === screen.name ? loaded.view : Loading;
  return html`<div class="shell">
    <header class="top">
      <h1>${t("app.title")}</h1>
      <nav>${allowed.map((s) => html`<a href=${`#/${s.name}`} class=${s === screen ? "on" : ""}
        aria-current=${s === screen ? "page" : undefined}>${t(`screen.${s.name}`)}</a>`)}</nav>
      <div class="who">
        <span>${who.username} · ${t(`role.${who.role}`)}</span>
        <${LangSwitch} />
        <button type="button" class="link" data-testid="logout" onClick=${() => { auth.logout(); }}>
          ${t("login.logout")}</button>
      </div>
    </header>
    <main class="screen" data-screen=${screen.name}><${Screen} arg=${route.arg} who=${who} navigate=${navigate} /></main>
  </div>`;
}

/** The officer's phone (#/m/…, js/phone/): loaded when first opened; no console navigation around it. */
function PhoneRoot({ who }) {
  const [route, setRoute] = useState(parseRoute());
  const [view, setView] = useState(null);
  useEffect(() => {
    const changed = () => setRoute(parseRoute());
    addEventListener("hashchange", changed);
    import("./phone/index.js").then((m) => setView(() => m.Phone));
    return () => removeEventListener("hashchange", changed);
  }, []);
  return view ? html`<${view} who=${who} arg=${route.arg} />` : html`<${Loading} />`;
}

function usePhoneRoute() {
  const phone = () => /^#\/m(\/|$)/.test(location.hash);
  const [on, setOn] = useState(phone());
  useEffect(() => {
    const changed = () => setOn(phone());
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return on;
}

function App({ who }) {
  const phone = usePhoneRoute();
  if (!who) return html`<${Login} key=${i18n.current()} />`;
  if (phone) return html`<${PhoneRoot} who=${who} key=${i18n.current()} />`;
  return html`<${Shell} who=${who} key=${i18n.current()} />`;
}

const root = document.getElementById("app");
const draw = () => render(html`<${App} who=${auth.current()} />`, root);

async function switchLang(lang) {
  await i18n.use(lang);
  draw();
}

// an officer opening the console on a phone-sized screen starts on the phone screens (#/m)
if (!location.hash && matchMedia("(max-width: 600px)").matches) history.replaceState(null, "", "#/m");
auth.onChange(draw);
await Promise.all([i18n.use(i18n.current()), auth.restore().catch(() => null)]);
draw();
