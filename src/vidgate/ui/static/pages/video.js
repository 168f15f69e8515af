// What several pages show of a video: its model's price and modes, a progress line
// while it runs, and the player once it has completed.
import { pollVideo, videoDetails } from "../api.js";
import { aspectBox, clear, h, money, showError } from "../dom.js";

export function priceText(model) {
  const p = model.pricing;
  if (!p) return "no list price";
  const rates = Object.entries(p.per_second || {});
  if (rates.length) {
    return rates.map(([res, rate]) => `${money(rate)}/s at ${res}`).join(", ");
  }
  const points = Object.entries(p.points || {});
  if (points.length) {
    return points
      .map(([res, list]) => `${res}: ${list.map(([s, price]) => `${s} s ${money(price)}`).join(", ")}`)
      .join("; ");
  }
  if (p.default_per_second !== undefined) {
    return p.default_per_second ? `${money(p.default_per_second)}/s` : "free";
  }
  return "no list price";
}

export function durationsText(caps) {
  const d = caps.durations;
  return d.allowed ? `${d.allowed.join(", ")} s` : `${d.min}–${d.max} s`;
}

export function modes(caps) {
  const list = [];
  if (caps.text_to_video) list.push("text-to-video");
  if (caps.image_to_video) list.push("image-to-video");
  if (caps.last_frame) list.push("last frame");
  if (caps.max_reference_images) list.push(`references (${caps.max_reference_images})`);
  if (caps.extend) list.push("extend");
  if (caps.remix) list.push("remix");
  return list;
}

// A live line for a running video: status, progress bar, errors in words.
export function progressView() {
  const bar = h("progress", { max: "100", value: "0", "aria-label": "progress" });
  const label = h("span", { class: "status" }, "queued");
  const view = h("div", { class: "progress", role: "status", "aria-live": "polite" }, label, bar);
  view.update = (video) => {
    bar.value = video.progress || 0;
    label.textContent = video.status === "failed" && video.error
      ? `failed: ${video.error.message}`
      : `${video.status} · ${video.progress || 0}%`;
    view.dataset.status = video.status;
  };
  return view;
}

// Reads the video until it ends, showing progress in `slot`, then the player.
export async function watchVideo(id, slot, { isCurrent = () => true, onDone } = {}) {
  const progress = progressView();
  const errorLine = h("div", { class: "error", role: "alert", hidden: true });
  clear(slot, progress, errorLine);
  let video;
  try {
    video = await pollVideo(id, (v) => progress.update(v), { isCancelled: () => !isCurrent() });
  } catch (e) {
    showError(errorLine, e);
    return null;
  }
  if (!isCurrent()) return video;
  if (video.status === "completed") {
    const details = await videoDetails(id);
    clear(slot, player(details.video, details.links));
    if (onDone) onDone(video, details);
  } else if (onDone) {
    onDone(video, null);
  }
  return video;
}

// The player in a box of the video's aspect ratio (no jump while it loads). Seeking
// works through the signed link's Range answers.
export function player(video, links) {
  if (!links) {
    return aspectBox(video.size, h("p", { class: "placeholder" }, "The media is not available (expired or deleted)."));
  }
  return aspectBox(
    video.size,
    h("video", {
      src: links.video,
      poster: links.thumbnail,
      controls: true,
      preload: "metadata",
      playsinline: true,
      "aria-label": `video ${video.id}`,
    }),
  );
}
