// A request's trace as a waterfall: one row per span (the operation, its loader batches per
// region, their backend queries, the audit write), indented under its parent, with a bar placed
// on the request's own time line. Bars are positioned through element.style (the CSSOM, which
// the page's CSP allows), never through style markup.

import { fill, h } from "./dom.js";
import { t } from "./i18n.js";

const KIND_CLASS = {
  OPERATION: "operation",
  LOADER_BATCH: "loader",
  BACKEND_QUERY: "query",
  AUDIT_WRITE: "audit",
  UPSTREAM: "query",
  OTHER: "other",
};

const KIND_LABEL = {
  en: {
    OPERATION: "operation",
    LOADER_BATCH: "loader batch",
    BACKEND_QUERY: "backend query",
    AUDIT_WRITE: "audit write",
    UPSTREAM: "upstream gateway",
    OTHER: "other",
  },
  zh: {
    OPERATION: "操作",
    LOADER_BATCH: "加载批次",
    BACKEND_QUERY: "后端查询",
    AUDIT_WRITE: "审计写入",
    UPSTREAM: "上游网关",
    OTHER: "其他",
  },
};

export function kindLabel(kind, lang) {
  return (KIND_LABEL[lang] || KIND_LABEL.en)[kind] || kind;
}

export function milliseconds(value) {
  if (value >= 100) return `${Math.round(value)} ms`;
  if (value >= 10) return `${value.toFixed(1)} ms`;
  return `${value.toFixed(2)} ms`;
}

function depths(spans) {
  const byId = new Map(spans.map((span) => [span.spanId, span]));
  const depth = new Map();
  const of = (span, seen = new Set()) => {
    if (depth.has(span.spanId)) return depth.get(span.spanId);
    const parent = span.parentId ? byId.get(span.parentId) : null;
    const value = parent && !seen.has(parent.spanId) ? of(parent, seen.add(span.spanId)) + 1 : 0;
    depth.set(span.spanId, value);
    return value;
  };
  spans.forEach((span) => of(span));
  return depth;
}

/** The waterfall of `trace` ({ durationMs, spans }) in language `lang`. */
export function waterfall(trace, lang) {
  const spans = trace.spans;
  const total = Math.max(
    trace.durationMs || 0,
    ...spans.map((span) => span.startMs + span.durationMs),
    0.001,
  );
  const depth = depths(spans);
  const rows = [];
  for (const span of spans) {
    const kind = KIND_CLASS[span.kind] || "other";
    const where = span.region ? ` · ${span.region}` : "";
    const rowsAttribute = span.attributes.find((a) => a.key === "deltagate.rows");
    const detail = span.attributes.map((a) => `${a.key}=${a.value}`).join("\n");
    const label = h(
      "div",
      { class: "label", role: "rowheader", title: detail || null },
      h("span", { class: "kind" }, `${kindLabel(span.kind, lang)}: `),
      `${span.name}${where}`,
      rowsAttribute ? ` (${rowsAttribute.value})` : "",
      span.error ? h("span", { class: "bad" }, ` ${span.error}`) : null,
    );
    label.style.paddingLeft = `${depth.get(span.spanId) * 0.9}rem`;
    const bar = h("div", { class: `bar ${kind}`, "aria-hidden": "true" });
    const left = (span.startMs / total) * 100;
    const width = (span.durationMs / total) * 100;
    bar.style.left = `${left}%`;
    bar.style.width = `${width}%`;
    const time = h(
      "span",
      { class: "time", role: "cell" },
      `${milliseconds(span.startMs)} + ${milliseconds(span.durationMs)}`,
    );
    // The time reads beside its bar, on whichever side has room, else inside it.
    if (left + width <= 70) time.style.left = `${left + width + 0.5}%`;
    else if (left >= 30) time.style.right = `${100 - left + 0.5}%`;
    else {
      time.classList.add("inside");
      time.style.right = `${100 - left - width + 0.5}%`;
    }
    const track = h("div", { class: "track" }, bar, time);
    const row = h("div", { class: "span-row", role: "row", dataset: { kind: span.kind } });
    rows.push(fill(row, label, track));
  }
  return h(
    "div",
    {},
    h(
      "div",
      { class: "waterfall", role: "table", "aria-label": t("waterfall") },
      rows,
    ),
    h(
      "div",
      { class: "legend" },
      ["OPERATION", "LOADER_BATCH", "BACKEND_QUERY", "AUDIT_WRITE"].map((kind) =>
        h("span", { class: KIND_CLASS[kind] }, kindLabel(kind, lang)),
      ),
      h("span", { class: "total" }, `${t("duration")}: ${milliseconds(total)}`),
    ),
  );
}
