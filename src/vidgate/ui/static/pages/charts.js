// Stacked bar charts in SVG, drawn here (a few dozen lines rather than a library).
// Labels are SVG text nodes: data goes in as text, never markup.
const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#2f6fde", "#e0803a", "#2e9e6a", "#b04fc4", "#c9a227", "#d2455b", "#3aa6b8", "#7a7f8c"];

function el(tag, attrs, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

export function colorOf(index) {
  return COLORS[index % COLORS.length];
}

// days: x labels; series: [{name, values: {day: number}}]; format: a value as text.
export function stackedBars(title, days, series, format) {
  const width = 640;
  const height = 240;
  const pad = { left: 56, right: 8, top: 12, bottom: 36 };
  const totals = days.map((d) => series.reduce((sum, s) => sum + (s.values[d] || 0), 0));
  const max = Math.max(...totals, 0) || 1;
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart" });
  svg.append(el("title", {}, title));
  const plotH = height - pad.top - pad.bottom;
  const step = (width - pad.left - pad.right) / Math.max(days.length, 1);
  const barW = Math.max(4, Math.min(48, step * 0.7));
  for (const share of [0, 0.5, 1]) {
    const y = pad.top + plotH * (1 - share);
    svg.append(el("line", { x1: pad.left, x2: width - pad.right, y1: y, y2: y, class: "grid" }));
    svg.append(el("text", { x: pad.left - 6, y: y + 4, "text-anchor": "end", class: "axis" }, format(max * share)));
  }
  days.forEach((day, i) => {
    const x = pad.left + step * i + (step - barW) / 2;
    let y = pad.top + plotH;
    series.forEach((s, k) => {
      const value = s.values[day] || 0;
      if (!value) return;
      const barH = (value / max) * plotH;
      y -= barH;
      const rect = el("rect", { x, y, width: barW, height: barH, fill: colorOf(k) });
      rect.append(el("title", {}, `${day} · ${s.name}: ${format(value)}`));
      svg.append(rect);
    });
    // At most about a dozen day labels, whatever the range.
    if (i % Math.ceil(days.length / 12) === 0) {
      svg.append(el("text", { x: x + barW / 2, y: height - pad.bottom + 16, "text-anchor": "middle", class: "axis" }, day.slice(5)));
    }
  });
  return svg;
}
