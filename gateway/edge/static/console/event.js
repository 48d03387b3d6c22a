// One event: who, for which matter, which operation, whose data, per field and owning region
// what was decided and why, and the request's trace as a waterfall.

import { graphql } from "./api.js";
import { fill, h, table } from "./dom.js";
import { language, t } from "./i18n.js";
import { card, decisionPill, facts, labelOf, list, matter, reading, state, view } from "./page.js";
import { waterfall } from "./waterfall.js";

const EVENT = `query ConsoleEvent($id: ID!) {
    auditEvent(id: $id) {
      id at traceId callerApp callerRegion actingGateway roles matterCode matterName
      operationName operationType documentHash policyVersion subjects hash
      decisions { field owner decision count grade clearance rule reason }
      trace { traceId durationMs externalUrl
        spans { spanId parentId name kind region startMs durationMs error
          attributes { key value } } } } }`;

export async function loadEvent(id) {
  state.event = null;
  const data = await reading(() => graphql(EVENT, { id }));
  if (data) state.event = data.auditEvent || { missing: id };
}

export function eventView() {
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
