// The console's shell: sign-in, the key's identity (GET /v1/me), the navigation its
// role allows, and hash routing (#/gallery, #/video/ID, ...) to one module per page.
import { clearKey, get, getKey, setKey } from "./api.js";
import { clear, errorBox, field, h } from "./dom.js";
import * as admin from "./pages/admin.js";
import * as compare from "./pages/compare.js";
import * as create from "./pages/create.js";
import * as detail from "./pages/detail.js";
import * as gallery from "./pages/gallery.js";
import * as usage from "./pages/usage.js";
import { canWrite, forget, isAdmin, session } from "./session.js";


const PAGES = [
  { path: "create", title: "Create", page: create, allowed: canWrite },
  { path: "gallery", title: "Gallery", page: gallery, allowed: () => true },
  { path: "compare", title: "Compare", page: compare, allowed: canWrite },
  { path: "usage", title: "Usage", page: usage, allowed: isAdmin },
  { path: "admin", title: "Admin", page: admin, allowed: isAdmin },
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
  if (!getKey()) {
    renderNav(null);
    signInPage(target);
    return;
  }
  if (!session.me) {
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
    entry = { path: "gallery", page: detail, allowed: () => true };
  } else if (!entry || !entry.allowed()) {
    entry = PAGES.find((p) => p.path === "gallery");
    args = [];
  }
  renderNav(entry.path);
  clear(target);
  document.title = `${entry.title || "Video"} · vidgate console`;
  await entry.page.render(target, { args, isCurrent: () => mine === generation });
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
