// What the console's views share: the page's state, its status line and error box, moving
// between views, and the small pieces every view draws with (facts, cards, decision pills).
//
// Each auditor read is itself an audited access: a view keeps what it last read in `state`, so
// switching the language re-draws what is here without asking the gateway again.

import { ApiError } from "./api.js";
import { fill, h } from "./dom.js";
import { t } from "./i18n.js";

export const PAGE_SIZE = 20;
export const DECISIONS = ["CLEAR", "MASKED", "WITHHELD"];

// What the page holds: the session, and per view what was last read.
export const state = {
  session: null,
  filter: {},
  cursors: [null], // the `after` of each page seen, newest page first
  page: 0,
  events: null, // { edges, pageInfo }
  exported: null,
  event: null,
  signals: null,
  chain: null,
  history: null,
  historyCursors: [null],
  historyPage: 0,
};

export const $ = (id) => document.getElementById(id);
export const labelOf = (key) => t(key);

// console.js connects these: reading the route again, and signing out when the token expired.
const hooks = { show: () => {}, signOut: () => {} };

export function connect(show, signOut) {
  hooks.show = show;
  hooks.signOut = signOut;
}

/** Read what the current view needs again and draw it. */
export function refresh() {
  return hooks.show();
}

export function say(text) {
  $("status").textContent = text || "";
}

export function alarm(error) {
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

export function view() {
  return $("view");
}

export function go(path) {
  if (window.location.hash === `#/${path}`) refresh();
  else window.location.hash = `#/${path}`;
}

/** A time as the API gave it (China Standard Time), to the second: "2024-06-01 09:30:00". */
export function shortTime(iso) {
  return iso ? iso.replace("T", " ").slice(0, 19) : "—";
}

export function decisionPill(decision, count) {
  const text = count === undefined ? t(decision) : `${t(decision)} ${count}`;
  return h("span", { class: `pill ${decision}`, dataset: { decision } }, text);
}

export function decisionSummary(decisions) {
  const totals = {};
  for (const entry of decisions) totals[entry.decision] = (totals[entry.decision] || 0) + 1;
  return DECISIONS.filter((d) => totals[d]).map((d) => decisionPill(d, totals[d]));
}

/** A matter as code (monospace) and registered name, or a dash for none. */
export function matter(holder) {
  if (!holder.matterCode) return "—";
  return [
    h("span", { class: "mono" }, holder.matterCode),
    holder.matterName ? h("div", {}, holder.matterName) : null,
  ];
}

export function list(values, className = "mono") {
  if (!values.length) return "—";
  return h("ul", { class: `plain ${className}` }, values.map((value) => h("li", {}, value)));
}

export function facts(pairs) {
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

export function card(title, ...children) {
  return h("section", { class: "card" }, title ? h("h2", {}, title) : null, children);
}

/** Run `work` (a read of the gateway) with a status line; its result, or undefined after an
 * error was shown (an expired or unknown token signs out). */
export async function reading(work) {
  alarm(null);
  say(t("loading"));
  try {
    const result = await work();
    say("");
    return result;
  } catch (error) {
    say("");
    if (error instanceof ApiError && error.code === "UNAUTHENTICATED") {
      hooks.signOut();
    }
    alarm(error);
    return undefined;
  }
}
