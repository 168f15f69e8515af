// Gallery: the project's videos as a grid of thumbnails, newest first. Filters (model,
// status, dates, test/live) go to GET /v1/videos as query parameters; the next cursor
// page loads when the end of the grid scrolls into view; thumbnails load only when
// visible (loading=lazy), and hovering one scrubs through its spritesheet.
//
// Hooks for tests and bench B9 (no behaviour hangs on them): the grid's
// `data-loaded-count` is the number of tiles in it after each page, and each page
// appended sets the performance marks "gallery:page" (detail: that count) and, for the
// first page of the gallery or of a filter, "gallery:first-page".
import { get, query } from "../api.js";
import { aspectBox, clear, errorBox, field, h, money, select, showError } from "../dom.js";
import { loadModels } from "../session.js";

const PAGE = 24;

export async function render(target, ctx) {
  const models = await loadModels(get);
  const filters = h(
    "form",
    { class: "filters", "aria-label": "filters" },
    field("Model", select("model", [["", "any"], ...models.map((m) => m.id)], "")),
    field("Status", select("status", [["", "any"], "queued", "in_progress", "completed", "failed"], "")),
    field("Mode", select("mode", [["", "any"], "test", "live"], "")),
    field("Created from", h("input", { type: "date", name: "from" })),
    field("Created before", h("input", { type: "date", name: "to" })),
  );
  const grid = h("ul", { class: "gallery", "aria-label": "videos" });
  const more = h("p", { class: "more", "aria-live": "polite" });
  const errors = errorBox(null);
  clear(target, h("h1", {}, "Gallery"), filters, errors, grid, more);

  let cursor = null;
  let first = true;
  let hasMore = true;
  let loading = false;
  let run = 0;

  function params() {
    const f = filters.elements;
    const day = (value) => (value ? Math.floor(Date.parse(`${value}T00:00:00Z`) / 1000) : "");
    return {
      model: f.model.value,
      status: f.status.value,
      mode: f.mode.value,
      created_after: day(f.from.value),
      created_before: day(f.to.value),
    };
  }

  async function loadMore() {
    if (loading || !hasMore || !ctx.isCurrent()) return;
    loading = true;
    const mine = run;
    more.textContent = "Loading…";
    try {
      const page = await get(`/v1/videos${query({ ...params(), limit: PAGE, after: cursor, links: "true" })}`);
      if (mine !== run) return;
      showError(errors, null);
      for (const video of page.data) grid.append(tile(video));
      grid.dataset.loadedCount = String(grid.children.length);
      performance.mark("gallery:page", { detail: grid.children.length });
      if (first) performance.mark("gallery:first-page", { detail: grid.children.length });
      first = false;
      cursor = page.last_id;
      hasMore = page.has_more;
      more.textContent = hasMore ? "" : grid.children.length ? "The end." : "No videos yet.";
    } catch (err) {
      showError(errors, err);
      more.textContent = "";
      hasMore = false;
    } finally {
      loading = false;
    }
    // A short first page may not fill the screen: the sentinel is still in view.
    if (hasMore && mine === run && visible(more)) loadMore();
  }

  filters.addEventListener("change", () => {
    run += 1;
    cursor = null;
    first = true;
    hasMore = true;
    loading = false;
    clear(grid);
    loadMore();
  });
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore();
  }, { rootMargin: "400px" });
  observer.observe(more);
  await loadMore();
}

function visible(el) {
  const rect = el.getBoundingClientRect();
  return rect.top < window.innerHeight + 400;
}

function tile(video) {
  const links = video.links || null;
  const picture = links
    ? h("img", { src: links.thumbnail, alt: "", loading: "lazy", decoding: "async" })
    : h("span", { class: "placeholder" }, video.status);
  const frame = aspectBox("16x9", picture);
  frame.classList.add("thumb");
  if (links && links.spritesheet && links.spritesheet_grid) scrubber(frame, links);
  const link = h(
    "a",
    { href: `#/video/${encodeURIComponent(video.id)}`, class: "tile", "data-id": video.id, "data-status": video.status },
    frame,
    h("span", { class: "caption" }, video.prompt),
    h("span", { class: "meta" }, `${video.model} · ${video.seconds} s · ${video.status} · ${video.mode || ""} · ${money(video.cost ?? video.estimated_cost)}`),
  );
  return h("li", {}, link);
}

// On hover, the frame shows the spritesheet's tile under the pointer's x: the sheet is
// loaded only then (a background image set on the first hover).
function scrubber(frame, links) {
  const grid = links.spritesheet_grid;
  const layer = h("span", { class: "sprite", "aria-hidden": "true" });
  frame.append(layer);
  let loaded = false;
  frame.addEventListener("pointermove", (event) => {
    if (!loaded) {
      layer.style.backgroundImage = `url("${links.spritesheet.replace(/["\\]/g, "\\$&")}")`;
      layer.style.backgroundSize = `${grid.columns * 100}% ${grid.rows * 100}%`;
      loaded = true;
    }
    const rect = frame.getBoundingClientRect();
    const share = Math.min(0.999, Math.max(0, (event.clientX - rect.left) / rect.width));
    const index = Math.floor(share * grid.frames);
    const col = index % grid.columns;
    const row = Math.floor(index / grid.columns);
    const x = grid.columns > 1 ? (col / (grid.columns - 1)) * 100 : 0;
    const y = grid.rows > 1 ? (row / (grid.rows - 1)) * 100 : 0;
    layer.style.backgroundPosition = `${x}% ${y}%`;
    frame.classList.add("scrubbing");
  });
  frame.addEventListener("pointerleave", () => frame.classList.remove("scrubbing"));
}
