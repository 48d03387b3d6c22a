// The front page: misuse signals over the configured window, each with a button that lists the
// events behind it (the signal's own filter, as the gateway gave it).

import { graphql } from "./api.js";
import { fill, h } from "./dom.js";
import { language, t } from "./i18n.js";
import { setFilter } from "./events.js";
import { card, facts, go, reading, shortTime, state, view } from "./page.js";

const SIGNALS = `query ConsoleSignals {
    misuseSignals { kind description callerApp subjectId count threshold from to
      filter { callerApp subjectId outsideWorkingHours from to } } }`;

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

export async function loadSignals() {
  const data = await reading(() => graphql(SIGNALS));
  if (data) state.signals = data.misuseSignals;
}

export function signalsView() {
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
        ["signalWindow", `${shortTime(signal.from)} – ${shortTime(signal.to)}`],
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
