"""B9 in a real browser: the console's gallery of the 10,000-video project, opened by
headless chromium (Debian's, through /usr/bin/chromedriver) at 1280x800.

The key goes into the tab's sessionStorage as the console's sign-in puts it; then each
load navigates away (about:blank) and back to ``/ui/#/gallery``, a new document each
time. Times come from the page itself (the Performance API, relative to the
navigation's start): the gallery's ``gallery:first-page`` mark (its first page of tiles
in the DOM) and the resource timings of the thumbnails of the tiles in the viewport
(the last one's ``responseEnd``); the last load's resources and marks are written to
``bench/out/b9-browser-timeline.txt``. After each load it counts the thumbnails requested
(resource timings whose URL is a tile's thumbnail link) against the tiles in the DOM
and those in the viewport. Then it scrolls to the end of the grid page after page and
times each next page from the scroll to its ``gallery:page`` mark (the tiles appended).
"""

from __future__ import annotations

from typing import Any

from tests.chromium import chromium_installed, headless_chromium

from bench.harness import ApiKey, Gateway, percentile
from bench.report import Row, fmt_ms
from bench.suites import Bench

WIDTH, HEIGHT = 1280, 800
GOAL_MS = 300.0
KEY_STORAGE = "vidgate.key"  # ui/static/api.js
TIMEOUT_S = 30

# What a load measures, read in the page once the first page's tiles are in the DOM and
# the thumbnails of those in the viewport have loaded, and no thumbnail was requested
# for SETTLE_MS (so that late requests, lazy or not, are counted).
_FIRST_LOAD = """
const done = arguments[arguments.length - 1];
const SETTLE_MS = 500;
const inView = (el) => {
  const r = el.getBoundingClientRect();
  return r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth;
};
let seen = -1, since = 0;
function check() {
  const mark = performance.getEntriesByName("gallery:first-page")[0];
  if (!mark) return setTimeout(check, 10);
  const tiles = [...document.querySelectorAll(".gallery .tile")];
  const urls = new Set();
  const visible = [];
  for (const tile of tiles) {
    const img = tile.querySelector("img");
    if (!img) continue;
    urls.add(img.dataset.src || img.src);
    if (inView(tile)) visible.push(img);
  }
  if (visible.some((img) => !img.src || !img.complete)) return setTimeout(check, 10);
  const entries = performance.getEntriesByType("resource").filter((e) => urls.has(e.name));
  const now = performance.now();
  if (entries.length !== seen) { seen = entries.length; since = now; }
  if (now - since < SETTLE_MS) return setTimeout(check, 25);
  const byName = new Map(entries.map((e) => [e.name, e]));
  const thumbsEnd = Math.max(mark.startTime,
    ...visible.map((img) => (byName.get(img.src) || { responseEnd: 0 }).responseEnd));
  done({
    dom_ms: mark.startTime,
    thumbs_ms: thumbsEnd,
    requested: new Set(entries.map((e) => e.name)).size,
    tiles: tiles.length,
    in_view: tiles.filter(inView).length,
    with_thumbnail_in_view: visible.length,
  });
}
performance.setResourceTimingBufferSize(10000);
check();
"""

# The last load's timeline: every resource and mark, by start time.
_TIMELINE = """
const short = (name) => {
  const url = new URL(name);
  return url.pathname + url.search.slice(0, 40);
};
const rows = performance.getEntriesByType("resource")
  .map((e) => [e.startTime, e.responseEnd, e.initiatorType, short(e.name)]);
const nav = performance.getEntriesByType("navigation")[0];
rows.push([0, nav.responseEnd, "navigation", "document"]);
for (const m of performance.getEntriesByType("mark")) {
  rows.push([m.startTime, m.startTime, "mark", m.name]);
}
rows.sort((a, b) => a[0] - b[0]);
return rows;
"""

# One more page: scroll to the end of the grid, wait for the grid's count to grow, and
# answer the time from the scroll to the page's mark, once the thumbnails now in view
# have loaded.
_NEXT_PAGE = """
const done = arguments[arguments.length - 1];
const grid = document.querySelector(".gallery");
const before = Number(grid.dataset.loadedCount || 0);
const inView = (el) => {
  const r = el.getBoundingClientRect();
  return r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth;
};
const started = performance.now();
document.querySelector(".more").scrollIntoView({ block: "end" });
function check() {
  if (Number(grid.dataset.loadedCount || 0) <= before) return setTimeout(check, 5);
  const marks = performance.getEntriesByName("gallery:page");
  const appended = marks[marks.length - 1].startTime;
  const tiles = [...grid.querySelectorAll(".tile")];
  const visible = tiles.filter(inView).map((t) => t.querySelector("img")).filter(Boolean);
  if (visible.some((img) => !img.src || !img.complete)) return setTimeout(check, 10);
  const urls = new Set(tiles.map((t) => t.querySelector("img")).filter(Boolean)
    .map((img) => img.dataset.src || img.src));
  const requested = new Set(performance.getEntriesByType("resource")
    .filter((e) => urls.has(e.name)).map((e) => e.name)).size;
  done({ ms: appended - started, tiles: tiles.length, requested: requested });
}
check();
"""


def browser_missing() -> str | None:
    """Why the browser part cannot run here, or None."""
    if not chromium_installed():
        return "Debian's chromium and chromium-driver are not installed"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium (the dev extra) is not installed"
    return None


class GalleryBrowser:
    def __init__(self, bench: Bench, *, loads: int = 10, pages: int = 5) -> None:
        self.bench = bench
        self.loads = loads
        self.pages = pages

    def run(self, gw: Gateway, key: ApiKey) -> None:
        why = browser_missing()
        if why is not None:
            self.bench.results.note(f"B9: no browser measurement ({why})")
            return
        driver = _chromium()
        try:
            driver.get(f"{gw.base_url}/ui/")
            driver.execute_script(
                "sessionStorage.setItem(arguments[0], arguments[1])", KEY_STORAGE, key.secret
            )
            self._load(driver, gw)  # warm: the browser's cache of the console's files
            loads = [self._load(driver, gw) for _ in range(self.loads)]
            self._timeline(driver.execute_script(_TIMELINE))
            pages = [driver.execute_async_script(_NEXT_PAGE) for _ in range(self.pages)]
        finally:
            driver.quit()
        self._report(loads, pages)

    def _load(self, driver: Any, gw: Gateway) -> dict[str, Any]:
        driver.get("about:blank")
        driver.get(f"{gw.base_url}/ui/#/gallery")
        return dict(driver.execute_async_script(_FIRST_LOAD))

    def _timeline(self, rows: list[list[Any]]) -> None:
        out = self.bench.cfg.out / "b9-browser-timeline.txt"
        lines = [f"{'start ms':>9} {'end ms':>9}  {'kind':<11} what"]
        lines += [f"{r[0]:9.1f} {r[1]:9.1f}  {r[2]:<11} {r[3]}" for r in rows]
        out.write_text("\n".join(lines) + "\n")
        self.bench.results.note(f"B9: the last browser load's timeline in bench/out/{out.name}")

    def _report(self, loads: list[dict[str, Any]], pages: list[dict[str, Any]]) -> None:
        add = self.bench.add
        where = f"chromium {WIDTH}x{HEIGHT}, {len(loads)} loads"
        dom = [float(x["dom_ms"]) for x in loads]
        thumbs = [float(x["thumbs_ms"]) for x in loads]
        add(
            Row(
                "B9",
                f"browser ({where}): navigation -> first page of tiles in the DOM: p50 / p99",
                f"{fmt_ms(percentile(dom, 50))} / {fmt_ms(percentile(dom, 99))}",
            )
        )
        worst = percentile(thumbs, 99)
        add(
            Row(
                "B9",
                "  ... and the thumbnails in the viewport loaded: p50 / p99",
                f"{fmt_ms(percentile(thumbs, 50))} / {fmt_ms(worst)}",
                goal=f"p99 < {GOAL_MS:.0f} ms",
                ok=worst < GOAL_MS,
            )
        )
        last = loads[-1]
        add(
            Row(
                "B9",
                "  thumbnails requested / tiles in the DOM / tiles in the viewport (first load)",
                f"{last['requested']} / {last['tiles']} / {last['in_view']}",
                goal="requested <= tiles in the viewport",
                ok=all(x["requested"] <= x["in_view"] for x in loads),
            )
        )
        if pages:
            times = ", ".join(fmt_ms(float(p["ms"])) for p in pages)
            add(
                Row(
                    "B9",
                    f"  next page appended after scrolling to the end, pages 2-{len(pages) + 1}",
                    times,
                )
            )
            end = pages[-1]
            add(
                Row(
                    "B9",
                    f"  after {len(pages)} more pages: thumbnails requested / tiles in the DOM",
                    f"{end['requested']} / {end['tiles']}",
                )
            )


def _chromium() -> Any:
    driver = headless_chromium(WIDTH, HEIGHT, script_timeout_s=TIMEOUT_S)
    # --window-size is the window's, not the page's: the viewport is set exactly.
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
    )
    return driver
