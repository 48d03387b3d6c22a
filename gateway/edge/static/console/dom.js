// Building the page: elements from data, text always through textContent (a value the API
// returned is never parsed as HTML), styles only through classes or the DOM (the CSP allows no
// inline style markup).

/**
 * An element: `h("td", { class: "mono", dataset: { column: "Time" } }, "2024-06-01", child)`.
 * `on*` attributes take functions; null, undefined and false children are skipped.
 */
export function h(tag, attributes = {}, ...children) {
  const namespace = SVG_TAGS.has(tag) ? "http://www.w3.org/2000/svg" : null;
  const element = namespace
    ? document.createElementNS(namespace, tag)
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "style") {
      throw new Error("styles go through classes or element.style, never style markup");
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else if (child instanceof Node) element.appendChild(child);
    else element.appendChild(document.createTextNode(String(child)));
  }
}

const SVG_TAGS = new Set(["svg", "rect", "line", "text", "g", "title"]);

/** Replace everything inside `element` with `children`. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/**
 * A table with a caption, column headers (`scope="col"`), and on narrow screens one card per
 * row (each cell carries its column's name in `data-column` for the CSS to show).
 */
export function table(caption, columns, rows, className = "") {
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      { class: `cards ${className}`.trim() },
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((column) => h("th", { scope: "col" }, column)))),
      h(
        "tbody",
        {},
        rows.map((cells) =>
          h(
            "tr",
            {},
            cells.map((cell, index) => {
              const content = cell && cell.content !== undefined ? cell.content : cell;
              const className = cell && cell.class ? cell.class : null;
              // One child, so that on narrow screens the cell is two columns: its name, it.
              return h(
                "td",
                { class: className, dataset: { column: columns[index] } },
                h("div", { class: "cell" }, content),
              );
            }),
          ),
        ),
      ),
    ),
  );
}
