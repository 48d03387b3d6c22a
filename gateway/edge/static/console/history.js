// A citizen's own access history: who read their data, when, for which matter, what was
// released. Asked for the token's own ID number only (the gateway refuses any other).

import { graphql } from "./api.js";
import { fill, h, table } from "./dom.js";
import { t } from "./i18n.js";
import {
  PAGE_SIZE,
  card,
  decisionPill,
  matter,
  reading,
  refresh,
  shortTime,
  state,
  view,
} from "./page.js";

const HISTORY = `query ConsoleHistory($idNumber: ID!, $first: Int!, $after: String) {
    accessHistory(idNumber: $idNumber, first: $first, after: $after) {
      cursor at callerApp callerRegion matterCode matterName
      released { field decision owner } } }`;

export async function loadHistory() {
  const data = await reading(() =>
    graphql(HISTORY, {
      idNumber: state.session.subject,
      first: PAGE_SIZE,
      after: state.historyCursors[state.historyPage],
    }),
  );
  if (data) state.history = data.accessHistory;
}

export function historyView() {
  const records = state.history;
  if (!records) return fill(view());
  const rows = records.map((record) => [
    { content: shortTime(record.at), class: "nowrap" },
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
              refresh();
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
              refresh();
            },
          },
          t("next"),
        ),
      ),
    ),
  );
}
