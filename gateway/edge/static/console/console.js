// The audit console: sign-in, the auditor's views (misuse signals, the event list with its
// filters, paging and CSV export, an event's detail with its decisions and waterfall, the
// chain's status) and a citizen's own access history. Plain ES modules, no build step.
//
// Every personal value shown is one the API returned, as it returned it: the gateway masks and
// decides; this page never reconstructs, joins or unmasks anything. Each auditor read is itself
// an audited access, so switching the language re-draws what is already here without asking
// the gateway again.

import { ApiError, exportCsv, forgetToken, graphql, setToken, token } from "./api.js";
import { fill, h, table } from "./dom.js";
import { language, setLanguage, t } from "./i18n.js";
import { milliseconds, waterfall } from "./waterfall.js";

const PAGE_SIZE = 20;

const EVENT_FIELDS = `
  id at traceId callerApp callerRegion actingGateway roles matterCode matterName
  operationName operationType documentHash subjects
  decisions { field owner decision count }`;

const Q = {
  session: `query ConsoleSession {
    consoleSession { view callerApp callerRegion roles subject traceUrlTemplate } }`,
  events: `query ConsoleEvents($filter: AuditEventFilter, $first: Int!, $after: String) {
    auditEvents(filter: $filter, first: $first, after: $after) {
      edges { cursor node { ${EVENT_FIELDS} } }
      pageInfo { hasNextPage endCursor } } }`,
  event: `query ConsoleEvent($id: ID!) {
    auditEvent(id: $id) {
      id at traceId callerApp callerRegion actingGateway roles matterCode matterName
      operationName operationType documentHash policyVersion subjects hash
      decisions { field owner decision count grade clearance rule reason }
      trace { traceId durationMs externalUrl
        spans { spanId parentId name kind region startMs durationMs error
          attributes { key value } } } } }`,
  signals: `query ConsoleSignals {
    misuseSignals { kind description callerApp subjectId count threshold from to
      filter { callerApp subjectId outsideWorkingHours from to } } }`,
  chain: `query ConsoleChain {
    auditChainStatus { headId headHash maxRange minIntervalSeconds
      lastVerification { at ok fromId toId checked problems byApp } } }`,
  verify: `mutation ConsoleVerify($fromId: ID, $toId: ID) {
    verifyAuditChain(fromId: $fromId, toId: $toId) {
      at ok fromId toId checked problems byApp } }`,
  history: `query ConsoleHistory($idNumber: ID!, $first: Int!, $after: String) {
    accessHistory(idNumber: $idNumber, first: $first, after: $after) {
      cursor at callerApp callerRegion matterCode matterName
      released { field decision owner } } }`,
};

const FILTER_FIELDS = ["subjectId", "callerApp", "matterCode", "region", "decision", "from", "to"];
const REGIONS = ["SH", "JS", "ZJ", "AH"];
const DECISIONS = ["CLEAR", "MASKED", "WITHHELD"];

// What the page holds: the session, and per view what was last read (so a language switch
// re-draws without reading the audit log again).
const state = {
  session: null,
  filter: {},
  cursors: [null], // the `after` of each page seen, newest page first
  page: 0,
  events: null, // { edges, pageInfo }
  exported: null,
  event: null,
  signals: null,
  chain: null,
  verification: null,
  history: null,
  historyCursors: [null],
  historyPage: 0,
};

const $ = (id) => document.getElementById(id);
const labelOf = (key) => t(key);

// -- chrome: labels, language, status, errors -------------------------------------------------

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

function say(text) {
  $("status").textContent = text || "";
}

function alarm(error) {
  const box = $("alert");
  if (!error) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  const code = error instanceof ApiError ? error.code : "ERROR";
  box.hidden = false;
  fill(box, h("strong", {}, `${t("error")} ${code}: `), error.message);
  box.dataset.code = code;
}

function view() {
  return $("view");
}

function route() {
  const hash = window.location.hash.replace(/^#\/?/, "");
  const [name, ...rest] = hash.split("/");
  return { name: name || "", arg: rest.join("/") ? decodeURIComponent(rest.join("/")) : null };
}

function go(path) {
  if (window.location.hash === `#/${path}`) show();
  else window.location.hash = `#/${path}`;
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

// -- small pieces -----------------------------------------------------------------------------

function decisionPill(decision, count) {
  const text = count === undefined ? t(decision) : `${t(decision)} ${count}`;
  return h("span", { class: `pill ${decision}`, dataset: { decision } }, text);
}

function decisionSummary(decisions) {
  const totals = {};
  for (const entry of decisions) totals[entry.decision] = (totals[entry.decision] || 0) + 1;
  return DECISIONS.filter((d) => totals[d]).map((d) => decisionPill(d, totals[d]));
}

/** A matter as code (monospace) and registered name, or a dash for none. */
function matter(holder) {
  if (!holder.matterCode) return "—";
  return [
    h("span", { class: "mono" }, holder.matterCode),
    holder.matterName ? h("div", {}, holder.matterName) : null,
  ];
}

function list(values, className = "mono") {
  if (!values.length) return "—";
  return h("ul", { class: `plain ${className}` }, values.map((value) => h("li", {}, value)));
}

function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs
      .filter(([, value]) => value !== undefined)
      .map(([label, value, className]) => [
        h("dt", {}, t(label)),
        h("dd", { class: className || null, dataset: { fact: label } }, value ?? "—"),
      ]),
  );
}

function card(title, ...children) {
  return h("section", { class: "card" }, title ? h("h2", {}, title) : null, children);
}

async function reading(what, work) {
  alarm(null);
  say(t("loading"));
  try {
    const result = await work();
    say("");
    return result;
  } catch (error) {
    say("");
    if (error instanceof ApiError && error.code === "UNAUTHENTICATED") {
      signOut();
    }
    alarm(error);
    return undefined;
  }
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
  const data = await reading("session", () => graphql(Q.session));
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
    verification: null,
    history: null,
    exported: null,
    filter: {},
  });
  markNav("");
  if (window.location.hash && window.location.hash !== "#/") window.location.hash = "#/";
  else show();
}

// -- signals ----------------------------------------------------------------------------------

const SIGNAL_LABEL = {
  en: {
    DISTINCT_SUBJECTS: "Many distinct subjects read by one app",
    OUTSIDE_HOURS: "Reads outside working hours",
    SUBJECT_MANY_APPS: "One subject read by many apps",
  },
  zh: {
    DISTINCT_SUBJECTS: "单个应用查询了大量不同主体",
    OUTSIDE_HOURS: "非工作时间查询",
    SUBJECT_MANY_APPS: "同一主体被多个应用查询",
  },
};

async function loadSignals() {
  const data = await reading("signals", () => graphql(Q.signals));
  if (data) state.signals = data.misuseSignals;
}

function signalsView() {
  const signals = state.signals;
  if (!signals) return fill(view());
  const lang = language();
  const cards = signals.map((signal) => {
    const show = h(
      "button",
      {
        type: "button",
        class: "show-events",
        onclick: () => {
          const filter = {};
          for (const [key, value] of Object.entries(signal.filter)) {
            if (value !== null && value !== false && key !== "__typename") filter[key] = value;
          }
          setFilter(filter);
          go("events");
        },
      },
      t("signalShow"),
    );
    return h(
      "article",
      { class: "card signal", dataset: { kind: signal.kind } },
      h("h3", {}, (SIGNAL_LABEL[lang] || SIGNAL_LABEL.en)[signal.kind] || signal.kind),
      facts([
        ["signalApp", signal.callerApp ?? undefined, "mono"],
        ["subject", signal.subjectId ?? undefined, "mono"],
        ["signalValue", String(signal.count)],
        ["signalThreshold", String(signal.threshold)],
        ["signalWindow", `${signal.from} – ${signal.to}`],
      ]),
      h("p", { class: "description", lang: "en" }, signal.description),
      h("div", { class: "actions" }, show),
    );
  });
  fill(
    view(),
    card(
      t("signals"),
      signals.length ? cards : h("p", { class: "ok", id: "no-signals" }, t("signalsNone")),
    ),
  );
}

// -- the event list ---------------------------------------------------------------------------

function setFilter(filter) {
  state.filter = filter;
  state.cursors = [null];
  state.page = 0;
  state.events = null;
  state.exported = null;
}

function givenFilter() {
  const filter = {};
  for (const [key, value] of Object.entries(state.filter)) {
    if (value !== null && value !== undefined && value !== "" && value !== false) {
      filter[key] = value;
    }
  }
  return filter;
}

async function loadEvents() {
  const data = await reading("events", () =>
    graphql(Q.events, {
      filter: givenFilter(),
      first: PAGE_SIZE,
      after: state.cursors[state.page],
    }),
  );
  if (data) state.events = data.auditEvents;
}

function filterForm() {
  const input = (name, label, attributes = {}) =>
    h(
      "label",
      { class: attributes.wide ? "wide" : null },
      t(label),
      h("input", {
        name,
        id: `filter-${name}`,
        value: state.filter[name] || "",
        autocomplete: "off",
        spellcheck: "false",
        placeholder: attributes.placeholder || null,
        list: attributes.list || null,
      }),
    );
  const select = (name, label, options) =>
    h(
      "label",
      {},
      t(label),
      h(
        "select",
        { name, id: `filter-${name}` },
        h("option", { value: "" }, t("any")),
        options.map(([value, text]) =>
          h("option", { value, selected: state.filter[name] === value }, text),
        ),
      ),
    );
  const outside = h("input", {
    type: "checkbox",
    name: "outsideWorkingHours",
    id: "filter-outsideWorkingHours",
    checked: state.filter.outsideWorkingHours === true,
  });
  const form = h(
    "form",
    { class: "filters", "aria-label": t("filters") },
    input("subjectId", "subject", { wide: true }),
    input("callerApp", "callerApp"),
    input("matterCode", "matter"),
    select(
      "region",
      "region",
      REGIONS.map((region) => [region, region]),
    ),
    select(
      "decision",
      "decision",
      DECISIONS.map((decision) => [decision, t(decision)]),
    ),
    input("from", "from", { placeholder: "2024-06-01 / 2024-06-01T09:30" }),
    input("to", "to", { placeholder: "2024-06-01 / 2024-06-01T18:00" }),
    h("label", { class: "check" }, h("span", {}, outside, " ", t("outsideHours"))),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", id: "search" }, t("apply")),
      h(
        "button",
        {
          type: "button",
          class: "secondary",
          onclick: () => {
            setFilter({});
            show();
          },
        },
        t("clear"),
      ),
      h(
        "button",
        { type: "button", class: "secondary", id: "export", onclick: download },
        t("exportCsv"),
      ),
      state.exported
        ? h("span", { id: "exported", role: "status" }, t("exported", state.exported))
        : null,
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const filter = {};
    for (const name of FILTER_FIELDS) {
      const value = form.elements[name].value.trim();
      if (value) filter[name] = value;
    }
    if (form.elements.outsideWorkingHours.checked) filter.outsideWorkingHours = true;
    setFilter(filter);
    show();
  });
  return form;
}

async function download() {
  const done = await reading("export", () => exportCsv(givenFilter()));
  if (!done) return;
  const url = URL.createObjectURL(done.blob);
  const link = h("a", { href: url, download: done.filename, class: "hidden" }, done.filename);
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  state.exported = { count: done.rows, file: done.filename };
  const note = $("exported");
  if (note) note.textContent = t("exported", state.exported);
  else eventsView();
}

function eventRow(node) {
  return [
    { content: h("a", { href: `#/event/${encodeURIComponent(node.id)}` }, node.id), class: "mono" },
    { content: node.at.replace("T", " ").slice(0, 19), class: "nowrap" },
    [
      h("span", { class: "mono" }, node.callerApp),
      ` (${node.callerRegion})`,
      node.actingGateway
        ? h("div", { class: "muted" }, `${t("actingGateway")}: ${node.actingGateway}`)
        : null,
    ],
    matter(node),
    node.operationName || "—",
    list(node.subjects),
    decisionSummary(node.decisions),
  ];
}

function eventsView() {
  const columns = [
    t("seq"),
    t("at"),
    t("caller"),
    t("matterName"),
    t("operation"),
    t("subjects"),
    t("decisions"),
  ];
  const events = state.events;
  const edges = events ? events.edges : [];
  const rows = edges.map((edge) => eventRow(edge.node));
  const pager = h(
    "div",
    { class: "pager" },
    h(
      "button",
      {
        type: "button",
        class: "secondary",
        id: "newest",
        disabled: state.page === 0,
        onclick: () => {
          state.page = 0;
          show();
        },
      },
      t("first"),
    ),
    h("span", { id: "page-number" }, t("page", { n: state.page + 1 })),
    h(
      "button",
      {
        type: "button",
        class: "secondary",
        id: "older",
        disabled: !(events && events.pageInfo.hasNextPage),
        onclick: () => {
          state.cursors[state.page + 1] = events.pageInfo.endCursor;
          state.page += 1;
          show();
        },
      },
      t("next"),
    ),
  );
  fill(
    view(),
    card(t("filters"), filterForm()),
    card(
      t("events"),
      events && !edges.length
        ? h("p", { id: "no-events" }, t("noEvents"))
        : table(null, columns, rows, "events"),
      pager,
    ),
  );
}

// -- one event --------------------------------------------------------------------------------

async function loadEvent(id) {
  state.event = null;
  const data = await reading("event", () => graphql(Q.event, { id }));
  if (data) state.event = data.auditEvent || { missing: id };
}

function eventView() {
  const event = state.event;
  if (!event) return fill(view());
  if (event.missing) {
    return fill(view(), card(t("detail"), h("p", {}, t("noEvents"))));
  }
  const lang = language();
  const trace = event.trace;
  const external = webLink((trace && trace.externalUrl) || externalUrl(event.traceId));
  const decisions = table(
    null,
    ["field", "owner", "decision", "count", "grade", "clearance", "rule", "reason"].map(labelOf),
    event.decisions.map((d) => [
      { content: d.field, class: "mono" },
      d.owner || "—",
      decisionPill(d.decision),
      String(d.count),
      d.grade || "—",
      d.clearance || "—",
      { content: d.rule || "—", class: "mono" },
      { content: d.reason || "—", class: "mono" },
    ]),
    "decisions",
  );
  fill(
    view(),
    h("p", {}, h("a", { href: "#/events", id: "back" }, `← ${t("back")}`)),
    h(
      "div",
      { class: "columns" },
      card(
        `${t("detail")} ${event.id}`,
        facts([
        ["at", event.at],
        ["caller", `${event.callerApp} (${event.callerRegion})`, "mono"],
        ["roles", event.roles.join(", ")],
        ["actingGateway", event.actingGateway || "—"],
        ["matterName", event.matterCode ? matter(event) : "—"],
        ["operationName", event.operationName || "—"],
        ["operationType", event.operationType || "—"],
        ["documentHash", event.documentHash, "mono"],
        ["policyVersion", event.policyVersion || "—"],
        [
          "traceId",
          [
            h("span", { class: "mono" }, event.traceId),
            external
              ? [
                  " ",
                  h(
                    "a",
                    {
                      href: external,
                      id: "external-trace",
                      target: "_blank",
                      rel: "noopener noreferrer",
                    },
                    t("externalTrace"),
                  ),
                ]
              : null,
          ],
        ],
        ["hash", event.hash, "mono"],
        ]),
      ),
      card(t("subjects"), list(event.subjects)),
    ),
    card(t("decisions"), decisions),
    card(
      t("waterfall"),
      trace && trace.spans.length
        ? waterfall(trace, lang)
        : h("p", { id: "no-spans" }, t("noSpans")),
    ),
  );
}

/** `url` if it is an http(s) link, else null: a configured template never runs script here. */
function webLink(url) {
  return url && /^https?:\/\//i.test(url) ? url : null;
}

function externalUrl(traceId) {
  const template = state.session && state.session.traceUrlTemplate;
  return template ? template.replace("{traceId}", encodeURIComponent(traceId)) : null;
}

// -- the chain --------------------------------------------------------------------------------

async function loadChain() {
  const data = await reading("chain", () => graphql(Q.chain));
  if (data) state.chain = data.auditChainStatus;
}

function verificationFacts(verification) {
  return h(
    "div",
    { class: "verification", dataset: { ok: String(verification.ok) } },
    h("p", { class: verification.ok ? "ok" : "bad" }, verification.ok ? t("intact") : t("broken")),
    facts([
      ["verifiedAt", verification.at],
      ["fromSeq", verification.fromId ?? "—"],
      ["toSeq", verification.toId ?? "—"],
      ["checked", String(verification.checked)],
      ["caller", verification.byApp, "mono"],
    ]),
    verification.problems.length ? list(verification.problems, "problems") : null,
  );
}

function chainView() {
  const chain = state.chain;
  if (!chain) return fill(view());
  const bound = (id, name) => h("input", { id, name, inputmode: "numeric", autocomplete: "off" });
  const from = bound("verify-from", "fromId");
  const to = bound("verify-to", "toId");
  const form = h(
    "form",
    { class: "verify", "aria-label": t("verifyRange") },
    h("label", {}, t("fromSeq"), from),
    h("label", {}, t("toSeq"), to),
    h("button", { type: "submit", id: "verify" }, t("verify")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    const data = await reading("verify", () =>
      graphql(Q.verify, { fromId: from.value.trim() || null, toId: to.value.trim() || null }),
    );
    button.disabled = false;
    if (!data) return;
    state.verification = data.verifyAuditChain;
    state.chain = { ...state.chain, lastVerification: data.verifyAuditChain };
    chainView();
  });
  fill(
    view(),
    card(
      t("chain"),
      facts([
        ["head", chain.headId ?? "—"],
        ["hash", chain.headHash ?? "—", "mono"],
      ]),
      h("h3", {}, t("lastVerification")),
      chain.lastVerification
        ? verificationFacts(chain.lastVerification)
        : h("p", { id: "never-verified" }, t("neverVerified")),
      h("h3", {}, t("verifyRange")),
      form,
      h(
        "p",
        { class: "muted" },
        t("verifyLimits", { max: chain.maxRange, seconds: chain.minIntervalSeconds }),
      ),
    ),
  );
}

// -- a citizen's own history ------------------------------------------------------------------

async function loadHistory() {
  const data = await reading("history", () =>
    graphql(Q.history, {
      idNumber: state.session.subject,
      first: PAGE_SIZE,
      after: state.historyCursors[state.historyPage],
    }),
  );
  if (data) state.history = data.accessHistory;
}

function historyView() {
  const records = state.history;
  if (!records) return fill(view());
  const rows = records.map((record) => [
    { content: record.at.replace("T", " ").slice(0, 19), class: "nowrap" },
    [h("span", { class: "mono" }, record.callerApp), ` (${record.callerRegion})`],
    matter(record),
    record.released.map((r) =>
      h(
        "div",
        {},
        h("span", { class: "mono" }, r.field),
        r.owner ? ` @${r.owner} ` : " ",
        decisionPill(r.decision),
      ),
    ),
  ]);
  const last = records.length ? records[records.length - 1].cursor : null;
  fill(
    view(),
    card(
      t("historyFor", { id: state.session.subject }),
      records.length
        ? table(null, [t("at"), t("caller"), t("matterName"), t("released")], rows, "history")
        : h("p", { id: "no-history" }, t("noHistory")),
      h(
        "div",
        { class: "pager" },
        h(
          "button",
          {
            type: "button",
            class: "secondary",
            disabled: state.historyPage === 0,
            onclick: () => {
              state.historyPage = 0;
              show();
            },
          },
          t("first"),
        ),
        h(
          "button",
          {
            type: "button",
            class: "secondary",
            disabled: records.length < PAGE_SIZE,
            onclick: () => {
              state.historyCursors[state.historyPage + 1] = last;
              state.historyPage += 1;
              show();
            },
          },
          t("next"),
        ),
      ),
    ),
  );
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
  if (!state.session) signInView();
  else if (chosen) chosen.draw();
  markNav(name);
}

async function start() {
  $("language").addEventListener("click", () => {
    setLanguage(language() === "zh" ? "en" : "zh");
    redraw();
  });
  $("sign-out").addEventListener("click", signOut);
  window.addEventListener("hashchange", show);
  applyLabels();
  if (token()) {
    // A reload within the tab: the token is still in sessionStorage; ask who it is again.
    const data = await reading("session", () => graphql(Q.session));
    if (data && data.consoleSession.view !== "NONE") state.session = data.consoleSession;
    else forgetToken();
  }
  show();
}

start();
