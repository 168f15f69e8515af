// Create: pick a model (its durations, resolutions, aspect ratios, modes and price),
// fill a form that offers only what that model accepts, see the estimate change as
// the form does (POST /v1/videos/estimate), submit, watch it run until the player.
import { get, post } from "../api.js";
import { aspectBox, clear, errorBox, field, h, money, select, showError } from "../dom.js";
import { loadModels } from "../session.js";
import { durationsText, modes, priceText, watchVideo } from "./video.js";

export async function render(target, ctx) {
  const models = await loadModels(get);
  const modelSelect = select(
    "model",
    models.map((m) => [m.id, `${m.id}${m.alias_of ? ` (alias of ${m.alias_of})` : ""} · ${durationsText(m.capabilities)} · ${priceText(m)}`]),
    "sandbox",
  );
  const card = h("div", { class: "model-card" });
  const prompt = h("textarea", { name: "prompt", rows: "3", required: true });
  const options = h("div", { class: "grid-fields" });
  const images = h("div", { class: "grid-fields" });
  const estimate = h("p", { class: "estimate", "aria-live": "polite" }, "Write a prompt to see the estimate.");
  const errors = errorBox(null);
  const submit = h("button", { type: "submit", class: "primary" }, "Create video");
  const result = h(
    "section",
    { class: "result", "aria-label": "result" },
    h("h2", {}, "Result"),
    aspectBox("16x9", h("p", { class: "placeholder" }, "Your video plays here once it is made.")),
  );
  const form = h(
    "form",
    { class: "card", "aria-label": "create a video" },
    field("Model", modelSelect),
    card,
    field("Prompt", prompt),
    options,
    images,
    estimate,
    errors,
    submit,
  );
  clear(target, h("h1", {}, "Create"), h("div", { class: "two-col" }, form, result));

  const current = () => models.find((m) => m.id === modelSelect.value) || models[0];

  function fillModel() {
    const m = current();
    const caps = m.capabilities;
    const d = caps.defaults;
    prompt.maxLength = caps.max_prompt_chars;
    clear(
      card,
      h("p", {}, m.description || ""),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Durations"), h("dd", {}, durationsText(caps)),
        h("dt", {}, "Resolutions"), h("dd", {}, caps.resolutions.join(", ")),
        h("dt", {}, "Aspect ratios"), h("dd", {}, caps.aspect_ratios.join(", ")),
        h("dt", {}, "Modes"), h("dd", {}, modes(caps).join(", ")),
        h("dt", {}, "Price"), h("dd", {}, priceText(m)),
      ),
    );
    const seconds = caps.durations.allowed
      ? select("seconds", caps.durations.allowed, d.seconds)
      : h("input", { type: "number", name: "seconds", min: caps.durations.min, max: caps.durations.max, step: "1", value: d.seconds });
    const controls = [
      field("Seconds", seconds),
      field("Resolution", select("resolution", caps.resolutions, d.resolution)),
      field("Aspect ratio", select("aspect_ratio", caps.aspect_ratios, d.aspect_ratio)),
      field("Frames per second", select("fps", caps.fps, d.fps)),
    ];
    if (caps.max_n > 1) {
      controls.push(field("Videos (n)", h("input", { type: "number", name: "n", min: "1", max: caps.max_n, value: "1" })));
    }
    controls.push(field("Seed (optional)", h("input", { type: "number", name: "seed", min: "0", max: "4294967295" })));
    controls.push(field("Negative prompt (optional)", h("input", { type: "text", name: "negative_prompt" })));
    clear(options, ...controls);
    const uploads = [];
    if (caps.image_to_video) {
      uploads.push(field(caps.text_to_video ? "First frame (optional)" : "First frame (required)",
        h("input", { type: "file", name: "input_reference", accept: "image/*", required: !caps.text_to_video })));
    }
    if (caps.last_frame) {
      uploads.push(field("Last frame (optional, with a first frame)", h("input", { type: "file", name: "last_frame", accept: "image/*" })));
    }
    if (caps.max_reference_images) {
      uploads.push(field(`Reference images (up to ${caps.max_reference_images})`,
        h("input", { type: "file", name: "reference_images", accept: "image/*", multiple: true })));
    }
    clear(images, ...uploads);
  }

  // The form as the create route reads it: multipart, empty fields left out.
  function body() {
    const data = new FormData();
    for (const el of form.elements) {
      if (!el.name) continue;
      if (el.type === "file") {
        for (const file of el.files) data.append(el.name, file);
      } else if (el.value.trim() !== "") {
        data.append(el.name, el.value.trim());
      }
    }
    return data;
  }

  let pending = 0;
  let timer = null;
  async function updateEstimate() {
    const mine = ++pending;
    if (!prompt.value.trim()) {
      estimate.textContent = "Write a prompt to see the estimate.";
      showError(errors, null);
      return;
    }
    estimate.textContent = "Estimating…";
    try {
      const e = await post("/v1/videos/estimate", body());
      if (mine !== pending) return;
      showError(errors, null);
      estimate.textContent = `Estimate: ${money(e.estimated_cost)} for ${e.n} × ${e.seconds} s at ${e.size} (${e.mode}, on ${e.deployment})`;
    } catch (err) {
      if (mine !== pending) return;
      estimate.textContent = "No estimate.";
      showError(errors, err);
    }
  }
  const later = () => {
    clearTimeout(timer);
    timer = setTimeout(updateEstimate, 250);
  };

  modelSelect.addEventListener("change", () => {
    fillModel();
    later();
  });
  form.addEventListener("input", later);
  form.addEventListener("change", later);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    showError(errors, null);
    try {
      const video = await post("/v1/videos", body());
      const slot = h("div", { class: "slot" });
      clear(
        result,
        h("h2", {}, "Result"),
        h("p", {}, h("a", { href: `#/video/${encodeURIComponent(video.id)}` }, video.id)),
        slot,
      );
      await watchVideo(video.id, slot, { isCurrent: ctx.isCurrent });
    } catch (err) {
      showError(errors, err);
    } finally {
      submit.disabled = false;
    }
  });
  fillModel();
}
