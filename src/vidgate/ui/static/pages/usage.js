// Usage: GET /v1/usage?group_by=day,model for a date range, as two SVG charts (spend
// and seconds by day, stacked by model) and the table behind them.
import { get, query } from "../api.js";
import { clear, errorBox, field, h, money, showError, table } from "../dom.js";
import { colorOf, stackedBars } from "./charts.js";

export async function render(target, ctx) {
  const today = new Date().toISOString().slice(0, 10);
  const monthStart = `${today.slice(0, 8)}01`;
  const start = h("input", { type: "date", name: "start", value: monthStart });
  const end = h("input", { type: "date", name: "end", value: today });
  const mode = h("select", { name: "mode" }, h("option", { value: "all" }, "test and live"), h("option", { value: "live" }, "live"), h("option", { value: "test" }, "test"));
  const form = h("form", { class: "filters", "aria-label": "usage range" }, field("From", start), field("To", end), field("Mode", mode));
  const errors = errorBox(null);
  const out = h("div", { class: "usage" });
  clear(target, h("h1", {}, "Usage"), form, errors, out);

  async function load() {
    try {
      const usage = await get(`/v1/usage${query({ group_by: "day,model", start: start.value, end: end.value })}`);
      if (!ctx.isCurrent()) return;
      showError(errors, null);
      draw(out, usage, mode.value);
    } catch (err) {
      showError(errors, err);
      clear(out);
    }
  }
  form.addEventListener("change", load);
  await load();
}

function draw(out, usage, mode) {
  const rows = usage.data.filter((r) => mode === "all" || r.mode === mode);
  const days = daysBetween(usage.start, usage.end, rows);
  const names = [...new Set(rows.map((r) => `${r.model} (${r.mode})`))].sort();
  const series = (field) =>
    names.map((name) => ({
      name,
      values: Object.fromEntries(rows.filter((r) => `${r.model} (${r.mode})` === name).map((r) => [r.day, Number(r[field] || 0)])),
    }));
  const legend = h("ul", { class: "legend" }, names.map((n, i) => {
    const swatch = h("span", { class: "swatch" });
    swatch.style.background = colorOf(i);
    return h("li", {}, swatch, n);
  }));
  const totals = (t) => (t ? `${t.count} videos, ${t.seconds} s, ${money(t.cost)}` : "—");
  clear(
    out,
    h("p", {}, `Live: ${totals(usage.total)} · Test (priced, not charged): ${totals(usage.test_total)}`),
    rows.length ? null : h("p", {}, "No completed videos in this range."),
    h("div", { class: "charts" },
      h("figure", {}, h("figcaption", {}, "Spend by day (USD)"), stackedBars("Spend by day and model", days, series("cost"), (v) => money(v))),
      h("figure", {}, h("figcaption", {}, "Seconds by day"), stackedBars("Seconds by day and model", days, series("seconds"), (v) => `${Math.round(v)} s`)),
    ),
    legend,
    table(
      ["Day", "Model", "Mode", "Videos", "Seconds", "Cost"],
      rows.map((r) => [r.day, r.model, r.mode, r.count, r.seconds, money(r.cost)]),
      "Usage by day and model",
    ),
  );
}

// Every day of the range (a day without videos is a gap in the chart, not left out),
// or only the days with rows when the range is long.
function daysBetween(start, end, rows) {
  const out = [];
  const last = Date.parse(`${end}T00:00:00Z`);
  for (let t = Date.parse(`${start}T00:00:00Z`); t <= last && out.length <= 62; t += 86400000) {
    out.push(new Date(t).toISOString().slice(0, 10));
  }
  return out.length > 62 ? [...new Set(rows.map((r) => r.day))].sort() : out;
}
