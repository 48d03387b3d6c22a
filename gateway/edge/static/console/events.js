// The event list: filters, paging (cursors kept here, newest page first) and the CSV export of
// the filtered list, downloaded through fetch with the token (the export is itself audited).

import { exportCsv, graphql } from "./api.js";
import { fill, h, table } from "./dom.js";
import { t } from "./i18n.js";
import {
  $,
  DECISIONS,
  PAGE_SIZE,
  card,
  decisionSummary,
  list,
  matter,
  reading,
  refresh,
  shortTime,
  state,
  view,
} from "./page.js";

const EVENT_FIELDS = `
  id at traceId callerApp callerRegion actingGateway roles matterCode matterName
  operationName operationType documentHash subjects
  decisions { field owner decision count }`;

const EVENTS = `query ConsoleEvents($filter: AuditEventFilter, $first: Int!, $after: String) {
    auditEvents(filter: $filter, first: $first, after: $after) {
      edges { cursor node { ${EVENT_FIELDS} } }
      pageInfo { hasNextPage endCursor } } }`;

const FILTER_FIELDS = ["subjectId", "callerApp", "matterCode", "region", "decision", "from", "to"];
// Suggestions only: a region is data (a fifth province, a city platform), so any code is taken.
const REGIONS = ["SH", "JS", "ZJ", "AH"];

export function setFilter(filter) {
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

export async function loadEvents() {
  const data = await reading(() =>
    graphql(EVENTS, {
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
    input("region", "region", { list: "regions", placeholder: REGIONS.join(" / ") }),
    h("datalist", { id: "regions" }, REGIONS.map((region) => h("option", { value: region }))),
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
            refresh();
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
    refresh();
  });
  return form;
}

async function download() {
  const done = await reading(() => exportCsv(givenFilter()));
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
    { content: shortTime(node.at), class: "nowrap" },
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

export function eventsView() {
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
          refresh();
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
          refresh();
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
