// The console's shell: sign-in, the key's identity (GET /v1/me), the navigation its
// role allows, and hash routing (#/gallery, #/video/ID, ...) to one module per page.
import { clearKey, get, getKey, setKey } from "./api.js";
import { clear, errorBox, field, h } from "./dom.js";
import * as gallery from "./pages/gallery.js";
import { canWrite, forget, isAdmin, session } from "./session.js";

// The gallery, every role's first page, comes with the shell; the other pages' modules
// when first opened (import() loads each once), so that opening the console asks the
// gateway for the gallery's files only (index.html preloads them).
const PAGES = [
  { path: "create", title: "Create", page: () => import("./pages/create.js"), allowed: canWrite },
  { path: "gallery", title: "Gallery", page: async () => gallery, allowed: () => true },
  { path: "compare", title: "Compare", page: () => import("./pages/compare.js"), allowed: canWrite },
  { path: "usage", title: "Usage", page: () => import("./pages/usage.js"), allowed: isAdmin },
  { path: "admin", title: "Admin", page: () => import("./pages/admin.js"), allowed: isAdmin },
];

const main = () => document.getElementById("main");

function renderNav(current) {
  const nav = document.getElementById("nav");
  if (!session.me) {
    clear(nav);
    return;
  }
  const links = PAGES.filter((p) => p.allowed()).map((p) =>
    h("a", { href: `#/${p.path}`, "aria-current": p.path === current ? "page" : null }, p.title),
  );
  clear(nav, ...links);
  const me = session.me;
  clear(
    document.getElementById("who"),
    h("span", { class: "badge", title: "the key's mode" }, me.mode),
    h("span", {}, `${me.name} · ${me.role} · ${me.project ? me.project.name : ""}`),
    h("button", { type: "button", class: "link", onclick: signOut }, "Sign out"),
  );
}

// To a page: by the hash (hashchange routes), or again when the hash is already that.
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function signOut() {
  clearKey();
  forget();
  clear(document.getElementById("who"));
  go("#/signin");
}

function signInPage(target, error) {
  const input = h("input", { type: "password", name: "key", autocomplete: "off", required: true, spellcheck: "false" });
  const box = errorBox(error);
  const form = h(
    "form",
    { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in"),
    h("p", {}, "Paste an API key (vg_test_… or vg_live_…). It stays in this tab only and is sent to this gateway alone."),
    field("API key", input),
    box,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    forget();
    setKey(input.value.trim());
    try {
      session.me = await get("/v1/me");
      go("#/gallery");
    } catch (e) {
      clearKey();
      signInPage(target, e);
    }
  });
  clear(target, form);
  input.focus();
}

let generation = 0;

export async function route() {
  const target = main();
  const [, name = "", ...rest] = (location.hash || "#/").slice(1).split("/");
  generation += 1;
  const mine = generation;
  let prefetched = null;
  if (!getKey()) {
    renderNav(null);
    signInPage(target);
    return;
  }
  if (!session.me) {
    // The gallery is every role's page: its first page need not wait for /v1/me.
    if (name === "gallery" || name === "") prefetched = gallery.prefetch();
    try {
      session.me = await get("/v1/me");
    } catch (e) {
      clearKey();
      renderNav(null);
      signInPage(target, e);
      return;
    }
  }
  if (mine !== generation) return;
  let entry = PAGES.find((p) => p.path === name);
  let args = rest.map(decodeURIComponent);
  if (name === "video" && rest.length) {
    entry = { path: "gallery", page: () => import("./pages/detail.js"), allowed: () => true };
  } else if (!entry || !entry.allowed()) {
    entry = PAGES.find((p) => p.path === "gallery");
    args = [];
  }
  const page = await entry.page();
  if (mine !== generation) return;
  renderNav(entry.path);
  clear(target);
  document.title = `${entry.title || "Video"} · vidgate console`;
  await page.render(target, {
    args,
    isCurrent: () => mine === generation,
    prefetched: page === gallery ? prefetched : null,
  });
}

window.addEventListener("hashchange", route);
window.addEventListener("vidgate:unauthorized", (event) => {
  clearKey();
  forget();
  renderNav(null);
  clear(document.getElementById("who"));
  signInPage(main(), event.detail);
});
route();
