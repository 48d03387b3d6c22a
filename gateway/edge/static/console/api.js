// The gateway's API as the console uses it: GraphQL at /graphql and the CSV export, both with
// the bearer token in the Authorization header. URLs are relative to the page (/console), so
// the console still works behind a proxy that mounts the gateway under a path.
//
// The token lives in this tab's sessionStorage (it survives a reload, not the tab): never in a
// cookie, never in localStorage, never in a URL.

const TOKEN_KEY = "deltagate.console.token";

export class ApiError extends Error {
  constructor(message, code, status) {
    super(message);
    this.code = code || "ERROR";
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

function headers() {
  const value = token();
  return value ? { Authorization: `Bearer ${value}` } : {};
}

function failure(body, status) {
  const first = body && Array.isArray(body.errors) ? body.errors[0] : null;
  if (first) {
    return new ApiError(first.message, first.extensions && first.extensions.code, status);
  }
  return new ApiError(`HTTP ${status}`, status === 401 ? "UNAUTHENTICATED" : "ERROR", status);
}

/** Run one GraphQL operation; its `data`, or an ApiError carrying the first error's code. */
export async function graphql(query, variables = {}) {
  const response = await fetch("graphql", {
    method: "POST",
    headers: { ...headers(), "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ query, variables }),
    credentials: "omit",
    cache: "no-store",
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    throw failure(null, response.status);
  }
  if (!response.ok || (body.errors && body.errors.length) || !body.data) {
    throw failure(body, response.status);
  }
  return body.data;
}

/** The CSV export of the events a filter selects: { blob, filename, truncated, rows }. */
export async function exportCsv(filter) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(filter)) {
    if (value !== null && value !== undefined && value !== "" && value !== false) {
      params.set(name, String(value));
    }
  }
  const response = await fetch(`console/export.csv?${params}`, {
    headers: headers(),
    credentials: "omit",
    cache: "no-store",
  });
  if (!response.ok) {
    let body = null;
    try {
      body = await response.json();
    } catch {
      // not JSON: the status says enough
    }
    throw failure(body, response.status);
  }
  const blob = await response.blob();
  const disposition = response.headers.get("Content-Disposition") || "";
  const named = /filename="?([^";]+)"?/.exec(disposition);
  const truncated = response.headers.get("X-Deltagate-Truncated") === "true";
  const records = countRecords(await blob.text());
  return {
    blob,
    filename: named ? named[1] : "audit-events.csv",
    truncated,
    // Less the header, and the "# truncated at" line when there is one.
    rows: Math.max(0, records - 1 - (truncated ? 1 : 0)),
  };
}

/** Records in a CSV text: line ends outside quoted cells (a cell may hold a line end). */
function countRecords(text) {
  let records = 0;
  let quoted = false;
  let empty = true;
  for (const char of text) {
    if (char === '"') quoted = !quoted;
    if (char === "\n" && !quoted) {
      if (!empty) records += 1;
      empty = true;
    } else if (char !== "\r" && char !== "\ufeff") {
      empty = false;
    }
  }
  return empty ? records : records + 1;
}
