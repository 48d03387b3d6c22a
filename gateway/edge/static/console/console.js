// The audit console: sign-in, then the auditor's views (misuse signals, the event list with its
// filters, paging and CSV export, an event's detail with its decisions and waterfall, the
// chain's status) or a citizen's own access history. Plain ES modules, no build step.
//
// Every personal value shown is one the API returned, as it returned it: the gateway masks and
// decides; this page never reconstructs, joins or unmasks anything. Which view a token gets is
// the gateway's answer (consoleSession), and every field behind a view checks the token again.

import { ApiError, forgetToken, graphql, setToken, token } from "./api.js";
import { fill, h } from "./dom.js";
import { chainView, loadChain } from "./chain.js";
import { eventView, loadEvent } from "./event.js";
import { eventsView, loadEvents } from "./events.js";
import { historyView, loadHistory } from "./history.js";
import { language, setLanguage, t } from "./i18n.js";
import { $, alarm, connect, go, reading, state, view } from "./page.js";
import { loadSignals, signalsView } from "./signals.js";

const SESSION = `query ConsoleSession {
    consoleSession { view callerApp callerRegion roles subject traceUrlTemplate } }`;

function applyLabels() {
  const lang = language();
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = `deltagate · ${t("title")}`;
  for (const element of document.querySelectorAll("[data-label]")) {
    element.textContent = t(element.dataset.label);
  }
  for (const element of document.querySelectorAll("[data-aria-label]")) {
    element.setAttribute("aria-label", t(element.dataset.ariaLabel));
  }
  const switcher = $("language");
  switcher.textContent = t("language");
  switcher.lang = lang === "zh" ? "en" : "zh-CN";
}

function route() {
  const hash = window.location.hash.replace(/^#\/?/, "");
  const [name, ...rest] = hash.split("/");
  return { name: name || "", arg: rest.join("/") ? decodeURIComponent(rest.join("/")) : null };
}

function markNav(name) {
  const nav = $("nav");
  const auditor = state.session && state.session.view === "AUDITOR";
  const citizen = state.session && state.session.view === "CITIZEN";
  nav.hidden = !(auditor || citizen);
  for (const link of nav.querySelectorAll("a")) {
    const isHistory = link.dataset.view === "history";
    link.hidden = isHistory ? !citizen : !auditor;
    if (link.dataset.view === name || (name === "event" && link.dataset.view === "events")) {
      link.setAttribute("aria-current", "page");
    } else {
      link.removeAttribute("aria-current");
    }
  }
  $("sign-out").hidden = !state.session;
}

// -- sign-in ----------------------------------------------------------------------------------

function signInView() {
  const field = h("textarea", {
    id: "token",
    name: "token",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": "token-hint",
  });
  const form = h(
    "form",
    { class: "card sign-in", "aria-labelledby": "sign-in-title" },
    h("h2", { id: "sign-in-title" }, t("signIn")),
    h("label", { for: "token" }, t("token")),
    field,
    h("p", { id: "token-hint" }, t("tokenHint")),
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("signIn"))),
  );
  // form-action 'none': the form is never submitted, only read here.
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = field.value.trim().replace(/^Bearer\s+/i, "");
    if (value) signIn(value);
  });
  fill(view(), form);
  field.focus();
}

async function signIn(value) {
  setToken(value);
  const data = await reading(() => graphql(SESSION));
  if (!data) {
    forgetToken();
    return;
  }
  const session = data.consoleSession;
  if (session.view === "NONE") {
    forgetToken();
    state.session = null;
    alarm(new ApiError(t("notAuditor"), "FORBIDDEN"));
    signInView();
    return;
  }
  state.session = session;
  go(session.view === "CITIZEN" ? "history" : "signals");
}

function signOut() {
  forgetToken();
  Object.assign(state, {
    session: null,
    events: null,
    event: null,
    signals: null,
    chain: null,
    history: null,
    exported: null,
    filter: {},
  });
  markNav("");
  if (window.location.hash && window.location.hash !== "#/") window.location.hash = "#/";
  else show();
}

// -- routing ----------------------------------------------------------------------------------

const VIEWS = {
  signals: { auditor: true, load: loadSignals, draw: signalsView },
  events: { auditor: true, load: loadEvents, draw: eventsView },
  event: { auditor: true, load: (id) => loadEvent(id), draw: eventView },
  chain: { auditor: true, load: loadChain, draw: chainView },
  history: { auditor: false, load: loadHistory, draw: historyView },
};

let showing = 0;

/** Read what the current route needs from the gateway, then draw it. */
async function show() {
  const { name, arg } = route();
  applyLabels();
  if (!state.session) {
    markNav("");
    signInView();
    return;
  }
  const home = state.session.view === "CITIZEN" ? "history" : "signals";
  const chosen = VIEWS[name];
  if (!chosen || chosen.auditor !== (state.session.view === "AUDITOR")) {
    go(home);
    return;
  }
  markNav(name);
  const mine = ++showing;
  fill(view());
  await chosen.load(arg);
  if (mine === showing && state.session) chosen.draw();
}

/** Draw the current view again from what is already here (a language switch). */
function redraw() {
  applyLabels();
  const { name } = route();
  const chosen = VIEWS[name];
  if (!state.session) {
    const typed = $("token") ? $("token").value : "";
    signInView();
    $("token").value = typed; // a token pasted before the switch stays
  } else if (chosen) chosen.draw();
  markNav(name);
}

async function start() {
  $("language").addEventListener("click", () => {
    setLanguage(language() === "zh" ? "en" : "zh");
    redraw();
  });
  $("sign-out").addEventListener("click", signOut);
  window.addEventListener("hashchange", show);
  connect(show, signOut);
  applyLabels();
  if (token()) {
    // A reload within the tab: the token is still in sessionStorage; ask who it is again.
    const data = await reading(() => graphql(SESSION));
    if (data && data.consoleSession.view !== "NONE") state.session = data.consoleSession;
    else forgetToken();
  }
  show();
}

start();
