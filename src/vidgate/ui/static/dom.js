// Building the page from data: every value from the API goes in as text (textContent
// or an attribute), never as HTML.

// h("p", {class: "x", onclick: f}, "text", child, ...)
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      el.className = value;
    } else if (name in el && typeof el[name] === "boolean") {
      el[name] = Boolean(value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let counter = 0;
export function uid(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}

// A control with its <label>; answers [wrapper, control].
export function field(labelText, control, hint) {
  if (!control.id) control.id = uid("f");
  const wrap = h("div", { class: "field" }, h("label", { for: control.id }, labelText), control);
  if (hint) wrap.append(h("small", { class: "hint" }, hint));
  return wrap;
}

export function select(name, options, value) {
  const el = h("select", { name });
  for (const opt of options) {
    const [v, text] = Array.isArray(opt) ? opt : [opt, opt];
    el.append(h("option", { value: String(v), selected: String(v) === String(value) }, text));
  }
  return el;
}

// An API error in words, with the parameter that was wrong.
export function errorBox(error) {
  const box = h("div", { class: "error", role: "alert" });
  showError(box, error);
  return box;
}

export function showError(box, error) {
  if (!error) {
    clear(box);
    box.hidden = true;
    return;
  }
  box.hidden = false;
  const parts = [h("strong", {}, error.status === 0 ? "Cannot reach the gateway: " : "Error: "), error.message];
  if (error.param) parts.push(h("span", { class: "param" }, ` (parameter: ${error.param})`));
  clear(box, ...parts);
}

export function money(value, currency = "USD") {
  if (value === null || value === undefined) return "—";
  const n = Number(value);
  // Sub-dollar prices keep their cents' fractions ($0.125), others two places.
  const text = n === 0 || n >= 1 ? n.toFixed(2) : n.toFixed(3);
  return currency === "USD" ? `$${text}` : `${text} ${currency}`;
}

export function when(unix) {
  if (!unix) return "—";
  return new Date(unix * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

export function seconds(value) {
  if (value === null || value === undefined) return "—";
  return `${Number(value).toFixed(1)} s`;
}

// A box of the video's aspect ratio, sized before the media loads (no layout jump).
export function aspectBox(size, ...children) {
  const box = h("div", { class: "frame" }, ...children);
  const [w, hgt] = String(size || "16x9").split("x").map(Number);
  if (w > 0 && hgt > 0) box.style.aspectRatio = `${w} / ${hgt}`;
  return box;
}

export function table(headers, rows, caption) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))),
    ),
  );
}
