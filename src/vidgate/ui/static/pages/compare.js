// Compare: one prompt on several models at once (each at its own defaults), side by
// side, with each one's cost and the time it took.
import { get, post } from "../api.js";
import { clear, errorBox, field, h, money, showError } from "../dom.js";
import { loadModels } from "../session.js";
import { priceText, watchVideo } from "./video.js";

const MAX = 4;

export async function render(target, ctx) {
  const models = (await loadModels(get)).filter((m) => m.capabilities.text_to_video && !m.alias_of);
  const prompt = h("textarea", { name: "prompt", rows: "2", required: true });
  const boxes = h(
    "fieldset",
    { class: "models" },
    h("legend", {}, `Models (up to ${MAX})`),
    models.map((m, i) => {
      const input = h("input", { type: "checkbox", name: "model", value: m.id, id: `cmp-${i}`, checked: i < 2 });
      return h("div", { class: "check" }, input, h("label", { for: input.id }, m.id, h("small", {}, ` ${priceText(m)}`)));
    }),
  );
  const errors = errorBox(null);
  const submit = h("button", { type: "submit", class: "primary" }, "Compare");
  const form = h("form", { class: "card", "aria-label": "compare models" }, field("Prompt", prompt), boxes, errors, submit);
  const columns = h("div", { class: "compare" });
  clear(target, h("h1", {}, "Compare"), form, columns);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(errors, null);
    const chosen = [...form.querySelectorAll("input[name=model]:checked")].map((el) => el.value);
    if (chosen.length < 1 || chosen.length > MAX) {
      showError(errors, { message: `choose 1 to ${MAX} models`, param: "model" });
      return;
    }
    submit.disabled = true;
    clear(columns);
    await Promise.all(chosen.map((model) => one(model, prompt.value.trim(), columns, ctx)));
    submit.disabled = false;
  });
}

async function one(model, prompt, columns, ctx) {
  const slot = h("div", { class: "slot" });
  const stats = h("p", { class: "stats" }, "…");
  const errors = errorBox(null);
  columns.append(h("section", { class: "column", "data-model": model }, h("h2", {}, model), slot, stats, errors));
  const started = performance.now();
  try {
    const video = await post("/v1/videos", { model, prompt });
    stats.textContent = `estimated ${money(video.estimated_cost)}`;
    await watchVideo(video.id, slot, {
      isCurrent: ctx.isCurrent,
      onDone: (done, details) => {
        const took = ((performance.now() - started) / 1000).toFixed(1);
        const total = details && details.timings && details.timings.total_s;
        clear(
          stats,
          `${done.status} · cost ${money(done.cost ?? done.estimated_cost)} · ${total ? `${Number(total).toFixed(1)} s` : `${took} s`} · `,
          h("a", { href: `#/video/${encodeURIComponent(done.id)}` }, "details"),
        );
      },
    });
  } catch (err) {
    showError(errors, err);
    stats.textContent = "";
  }
}
