// Detail: one video (GET /v1/videos/{id}/details): the player, the request as the
// gateway stored it, its status history with timings, the deployment that served it,
// cost, webhook deliveries; remix, extend, download and delete for keys that may.
import { del, get, post, videoDetails } from "../api.js";
import { clear, errorBox, field, h, money, seconds, showError, table, when } from "../dom.js";
import { canWrite, loadModels } from "../session.js";
import { player, watchVideo } from "./video.js";

export async function render(target, ctx) {
  const id = ctx.args[0];
  const errors = errorBox(null);
  let details;
  try {
    details = await videoDetails(id);
  } catch (err) {
    showError(errors, err);
    clear(target, h("h1", {}, "Video"), errors);
    return;
  }
  const video = details.video;
  const stage = h("div", { class: "stage" });
  clear(
    target,
    h("h1", {}, "Video ", h("code", {}, video.id)),
    h("p", { class: "prompt" }, video.prompt),
    h("div", { class: "two-col" }, stage, h("div", {}, facts(details), errors, await actions(details, errors))),
    h("h2", {}, "Request as sent"),
    h("pre", { class: "json", tabindex: "0" }, JSON.stringify(details.request, null, 2)),
    h("h2", {}, "Status history"),
    table(["Status", "At"], (details.history || []).map((e) => [e.status, when(e.at)])),
    h("h2", {}, "Webhook deliveries"),
    (details.webhook_deliveries || []).length
      ? table(
          ["Event", "URL", "Status", "Attempts", "Last HTTP status", "Created"],
          details.webhook_deliveries.map((d) => [d.event_type, d.url, d.status, d.attempts, d.last_status_code ?? "—", when(d.created_at)]),
        )
      : h("p", {}, "None."),
  );
  if (video.status === "completed") {
    clear(stage, player(video, details.links));
  } else if (video.status === "failed") {
    clear(stage, h("p", { class: "placeholder" }, "Failed: ", video.error ? video.error.message : ""));
  } else {
    // Still running: watch it, then show the page again with everything it now knows.
    watchVideo(video.id, stage, {
      isCurrent: ctx.isCurrent,
      onDone: () => ctx.isCurrent() && render(target, ctx),
    });
  }
}

function facts(details) {
  const v = details.video;
  const dep = details.deployment || {};
  const t = details.timings || {};
  return h(
    "dl",
    { class: "facts" },
    h("dt", {}, "Status"), h("dd", { "data-field": "status" }, v.status),
    h("dt", {}, "Model"), h("dd", {}, v.model),
    h("dt", {}, "Kind"), h("dd", {}, v.kind, v.remixed_from_video_id ? ` of ${v.remixed_from_video_id}` : ""),
    h("dt", {}, "Mode"), h("dd", {}, v.mode || "—"),
    h("dt", {}, "Size"), h("dd", {}, `${v.size} · ${v.seconds} s · ${v.fps} fps`),
    h("dt", {}, "Deployment"), h("dd", {}, `${dep.provider || "—"}${dep.upstream_model ? ` (${dep.upstream_model})` : ""}`),
    h("dt", {}, "Tried"), h("dd", {}, (dep.tried || []).join(", ") || "—"),
    h("dt", {}, "Cost"), h("dd", { "data-field": "cost" }, `${money(details.cost)} (estimated ${money(details.estimated_cost)})`),
    h("dt", {}, "Queued"), h("dd", {}, seconds(t.queued_s)),
    h("dt", {}, "Generating"), h("dd", {}, seconds(t.generating_s)),
    h("dt", {}, "Total"), h("dd", {}, seconds(t.total_s)),
  );
}

async function actions(details, errors) {
  const v = details.video;
  const box = h("div", { class: "actions" });
  if (details.links) {
    box.append(h("a", { class: "button", href: details.links.video, download: `${v.id}.mp4` }, "Download"));
  }
  if (!canWrite()) return box;
  const models = await loadModels(get);
  const model = models.find((m) => m.id === v.model);
  const caps = model ? model.capabilities : {};
  const done = v.status === "completed";
  if (done && caps.remix) {
    box.append(promptForm("Remix", "remix", async (prompt) => post(`/v1/videos/${encodeURIComponent(v.id)}/remix`, { prompt }), errors));
  }
  if (done && caps.extend) {
    const secondsInput = h("input", { type: "number", name: "seconds", min: "1", value: String(caps.defaults.seconds) });
    box.append(
      promptForm("Extend", "extend", async (prompt) =>
        post("/v1/videos/extensions", { prompt, video: { id: v.id }, seconds: Number(secondsInput.value) }), errors,
        field("Seconds to add", secondsInput)),
    );
  }
  const confirm = h("button", { type: "button", class: "danger", hidden: true }, "Yes, delete it");
  const remove = h("button", { type: "button", class: "danger" }, "Delete");
  remove.addEventListener("click", () => {
    confirm.hidden = false;
    confirm.focus();
  });
  confirm.addEventListener("click", async () => {
    try {
      await del(`/v1/videos/${encodeURIComponent(v.id)}`);
      location.hash = "#/gallery";
    } catch (err) {
      showError(errors, err);
    }
  });
  box.append(h("div", { class: "row" }, remove, confirm));
  return box;
}

// A prompt and a button that makes a new video from this one, then opens it.
function promptForm(title, name, send, errors, ...extra) {
  const input = h("input", { type: "text", name: `${name}_prompt`, required: true });
  const form = h(
    "form",
    { class: "inline", "aria-label": title },
    field(`${title} prompt`, input),
    ...extra,
    h("button", { type: "submit" }, title),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const made = await send(input.value.trim());
      location.hash = `#/video/${encodeURIComponent(made.id)}`;
    } catch (err) {
      showError(errors, err);
    }
  });
  return form;
}
