// The hash chain: its head, the last verification, and a form that verifies a range now.

import { graphql } from "./api.js";
import { fill, h } from "./dom.js";
import { t } from "./i18n.js";
import { card, facts, list, reading, shortTime, state, view } from "./page.js";

const CHAIN = `query ConsoleChain {
    auditChainStatus { headId headHash maxRange minIntervalSeconds
      lastVerification { at ok fromId toId checked problems byApp } } }`;

const VERIFY = `mutation ConsoleVerify($fromId: ID, $toId: ID) {
    verifyAuditChain(fromId: $fromId, toId: $toId) {
      at ok fromId toId checked problems byApp } }`;

export async function loadChain() {
  const data = await reading(() => graphql(CHAIN));
  if (data) state.chain = data.auditChainStatus;
}

function verificationFacts(verification) {
  return h(
    "div",
    { class: "verification", dataset: { ok: String(verification.ok) } },
    h("p", { class: verification.ok ? "ok" : "bad" }, verification.ok ? t("intact") : t("broken")),
    facts([
      ["verifiedAt", shortTime(verification.at)],
      ["fromSeq", verification.fromId ?? "—"],
      ["toSeq", verification.toId ?? "—"],
      ["checked", String(verification.checked)],
      ["caller", verification.byApp, "mono"],
    ]),
    verification.problems.length ? list(verification.problems, "problems") : null,
  );
}

export function chainView() {
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
    const data = await reading(() =>
      graphql(VERIFY, { fromId: from.value.trim() || null, toId: to.value.trim() || null }),
    );
    button.disabled = false;
    if (!data) return;
    state.chain = { ...state.chain, lastVerification: data.verifyAuditChain };
    chainView();
  });
  fill(
    view(),
    card(
      t("chain"),
      facts([
        ["head", chain.headId ?? "—"],
        ["headHash", chain.headHash ?? "—", "mono"],
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
