// Gallery: the project's videos as a grid of thumbnails, newest first. Filters (model,
// status, dates, test/live) go to GET /v1/videos as query parameters; the next cursor
// page loads when the end of the grid scrolls into view; a thumbnail is requested only
// when its tile enters the viewport, and hovering one scrubs through its spritesheet.
//
// Hooks for tests and bench B9 (no behaviour hangs on them): the grid's
// `data-loaded-count` is the number of tiles in it after each page, and each page
// appended sets the performance marks "gallery:page" (detail: that count) and, for the
// first page of the gallery or of a filter, "gallery:first-page".
import { get, query } from "../api.js";
import { aspectBox, clear, errorBox, field, h, money, select, showError } from "../dom.js";
import { loadModels } from "../session.js";

const PAGE = 24;
// The next page is asked for when the end of the grid comes this close to the screen.
const AHEAD_PX = 400;

const pageUrl = (filters, after) => `/v1/videos${query({ ...filters, limit: PAGE, after, links: "true" })}`;

const firstUrl = pageUrl({}, null);

// The first page (no filter) and the models, asked for at once. app.js calls this when
// the route is the gallery while it asks who the key is (every role sees the gallery),
// and hands the answer to render() as ctx.prefetched.
export function prefetch() {
  const page = get(firstUrl);
  const models = loadModels(get);
  page.catch(() => {}); // their errors are shown when render() awaits them
  models.catch(() => {});
  return { page, models };
}

export async function render(target, ctx) {
  const asked = ctx.prefetched || prefetch();
  let early = asked.page;
  const models = await asked.models;
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

  // Created before the thumbnails' observer, so called first when a scroll brings both
  // the end of the grid and new tiles into view: the next page's request goes out
  // ahead of the thumbnails (six connections to the gateway at most, HTTP/1.1).
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) nextPage();
  }, { rootMargin: `${AHEAD_PX}px` });

  // The thumbnails requested and not loaded yet. A next page asked for ahead of the end
  // of the grid (the end is not on the screen yet) waits for them: what is on the
  // screen comes first, the requests of both would share the same connections.
  const pending = new Set();
  let whenLoaded = null;
  const loaded = (img) => {
    if (!pending.delete(img) || pending.size || !whenLoaded) return;
    const next = whenLoaded;
    whenLoaded = null;
    next();
  };
  function nextPage() {
    const top = more.getBoundingClientRect().top;
    if (top < window.innerHeight) return loadMore();
    if (top >= window.innerHeight + AHEAD_PX) return;
    // Two frames: the thumbnails' observer has then seen the tiles just appended.
    const go = () => {
      if (more.getBoundingClientRect().top < window.innerHeight + AHEAD_PX) loadMore();
    };
    requestAnimationFrame(() => requestAnimationFrame(() => {
      if (pending.size) whenLoaded = go;
      else go();
    }));
  }

  // Not loading=lazy: chromium starts lazy images 1250-2500 px before they come into
  // view, which at 24 tiles a page is every thumbnail of the first pages. The src is
  // set when the tile enters the viewport itself, once.
  const thumbs = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) request(entry.target);
    }
  });
  function request(img) {
    thumbs.unobserve(img);
    pending.add(img);
    img.addEventListener("load", () => loaded(img), { once: true });
    img.addEventListener("error", () => loaded(img), { once: true });
    img.src = img.dataset.src;
  }

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
      const url = pageUrl(params(), cursor);
      const asking = early && url === firstUrl ? early : get(url);
      early = null;
      const page = await asking;
      if (mine !== run) return;
      showError(errors, null);
      // One insertion per page: the layout work of a page does not grow with the grid.
      const tiles = document.createDocumentFragment();
      for (const video of page.data) tiles.append(tile(video, thumbs));
      const images = [...tiles.querySelectorAll("img")];
      grid.append(tiles);
      grid.dataset.loadedCount = String(grid.children.length);
      performance.mark("gallery:page", { detail: grid.children.length });
      if (first) performance.mark("gallery:first-page", { detail: grid.children.length });
      first = false;
      // Those on the screen now, not a frame later when the observer would say so.
      for (const img of images) {
        const r = img.getBoundingClientRect();
        if (r.bottom > 0 && r.top < window.innerHeight && r.height) request(img);
      }
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
    // A short page may not reach the end of the screen and its margin: the sentinel is
    // still there (its observer, which saw it there already, says nothing new).
    if (hasMore && mine === run) nextPage();
  }

  filters.addEventListener("change", () => {
    run += 1;
    cursor = null;
    first = true;
    hasMore = true;
    loading = false;
    thumbs.disconnect();
    pending.clear();
    whenLoaded = null;
    clear(grid);
    loadMore();
  });
  observer.observe(more);
  await loadMore();
}

function tile(video, thumbs) {
  const links = video.links || null;
  const picture = links
    ? h("img", { "data-src": links.thumbnail, alt: "", decoding: "async" })
    : h("span", { class: "placeholder" }, video.status);
  if (links) thumbs.observe(picture);
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
