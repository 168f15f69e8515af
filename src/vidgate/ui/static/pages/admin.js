// Admin (admin and operator keys): the project's keys (create, the secret shown once;
// revoke), budgets, webhook endpoints with their deliveries, and the deployments of
// every model with their health and circuit-breaker state (GET /v1/models).
import { del, get, post, query } from "../api.js";
import { clear, errorBox, field, h, money, select, showError, table, when } from "../dom.js";

export async function render(target) {
  const sections = [
    ["keys", "Keys", keys],
    ["budgets", "Budgets", budgets],
    ["webhooks", "Webhook endpoints", endpoints],
    ["deployments", "Deployments", deployments],
  ];
  clear(target, h("h1", {}, "Admin"));
  for (const [id, title, fill] of sections) {
    const body = h("div", {});
    target.append(h("section", { class: "card", id: `admin-${id}`, "aria-labelledby": `admin-${id}-title` }, h("h2", { id: `admin-${id}-title` }, title), body));
    fill(body);
  }
}

// Runs `load` into `body` with an error line above it; answers a function that reloads.
function section(body, build) {
  const errors = errorBox(null);
  const content = h("div", {});
  clear(body, errors, content);
  const reload = async () => {
    try {
      await build(content, reload, errors);
    } catch (err) {
      showError(errors, err);
    }
  };
  reload();
  return reload;
}

function keys(body) {
  section(body, async (content, reload, errors) => {
    const list = await get("/v1/admin/keys?limit=100");
    const name = h("input", { type: "text", name: "name", required: true });
    const role = select("role", ["member", "reader", "admin"], "member");
    const mode = select("mode", ["test", "live"], "test");
    const models = h("input", { type: "text", name: "models", placeholder: "all" });
    const expires = h("input", { type: "text", name: "expires_in", placeholder: "never, or 30d" });
    const secret = h("div", { class: "secret", hidden: true, role: "status" });
    const form = h("form", { class: "inline", "aria-label": "create a key" },
      field("Name", name), field("Role", role), field("Mode", mode),
      field("Models (comma-separated)", models), field("Expires in", expires),
      h("button", { type: "submit", class: "primary" }, "Create key"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const payload = { name: name.value.trim(), role: role.value, mode: mode.value };
      if (models.value.trim()) payload.models = models.value.split(",").map((m) => m.trim()).filter(Boolean);
      if (expires.value.trim()) payload.expires_in = expires.value.trim();
      try {
        const made = await post("/v1/admin/keys", payload);
        showError(errors, null);
        await reload();
        // Shown this once: the gateway keeps only a hash.
        const shown = content.querySelector(".secret");
        shown.hidden = false;
        clear(shown, h("p", {}, `Key ${made.id} created. Copy its secret now; it is not shown again:`), h("code", { class: "secret-value" }, made.secret));
      } catch (err) {
        showError(errors, err);
      }
    });
    const rows = list.data.map((k) => [
      k.name, k.id, k.role, k.mode, k.prefix, (k.models || ["all"]).join(", "), when(k.created_at),
      k.revoked_at ? `revoked ${when(k.revoked_at)}` : revokeButton(k, reload, errors),
    ]);
    clear(content, form, secret, table(["Name", "Id", "Role", "Mode", "Prefix", "Models", "Created", "State"], rows));
  });
}

function revokeButton(key, reload, errors) {
  return h("button", {
    type: "button", class: "danger", "data-key": key.id, "aria-label": `Revoke ${key.name}`,
    onclick: async () => {
      try {
        await del(`/v1/admin/keys/${encodeURIComponent(key.id)}`);
        await reload();
      } catch (err) {
        showError(errors, err);
      }
    },
  }, "Revoke");
}

function budgets(body) {
  section(body, async (content, reload, errors) => {
    const list = await get("/v1/admin/budgets");
    const usd = h("input", { type: "number", name: "usd", min: "0", step: "0.01", required: true });
    const period = select("period", ["day", "month", "total"], "month");
    const key = h("input", { type: "text", name: "key_id", placeholder: "the whole project" });
    const form = h("form", { class: "inline", "aria-label": "set a budget" },
      field("USD", usd), field("Period", period), field("Key id (optional)", key),
      h("button", { type: "submit", class: "primary" }, "Set budget"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await post("/v1/admin/budgets", { usd: usd.value, period: period.value, key_id: key.value.trim() || null });
        await reload();
      } catch (err) {
        showError(errors, err);
      }
    });
    const rows = list.data.map((b) => [
      b.key_id || "project", b.period, money(b.usd), money(b.spent), money(b.remaining),
      h("button", { type: "button", class: "danger", onclick: async () => {
        try {
          await del(`/v1/admin/budgets/${encodeURIComponent(b.id)}`);
          await reload();
        } catch (err) {
          showError(errors, err);
        }
      } }, "Delete"),
    ]);
    clear(content, form, rows.length ? table(["Scope", "Period", "Budget", "Spent", "Remaining", ""], rows) : h("p", {}, "No budgets: spending is not capped."));
  });
}

function endpoints(body) {
  section(body, async (content, reload, errors) => {
    const list = await get("/v1/webhook_endpoints");
    const url = h("input", { type: "url", name: "url", required: true, placeholder: "https://…" });
    const events = h("input", { type: "text", name: "events", value: "video.completed,video.failed" });
    const secret = h("div", { class: "secret", hidden: true, role: "status" });
    const form = h("form", { class: "inline", "aria-label": "add a webhook endpoint" },
      field("URL", url), field("Events (comma-separated)", events),
      h("button", { type: "submit", class: "primary" }, "Add endpoint"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const made = await post("/v1/webhook_endpoints", { url: url.value.trim(), events: events.value.split(",").map((e) => e.trim()).filter(Boolean) });
        await reload();
        const shown = content.querySelector(".secret");
        shown.hidden = false;
        clear(shown, h("p", {}, `Endpoint ${made.id} added. Its signing secret, shown once:`), h("code", { class: "secret-value" }, made.secret));
      } catch (err) {
        showError(errors, err);
      }
    });
    const deliveries = h("div", { class: "deliveries" });
    const rows = list.data.map((e) => [
      e.url, e.events.join(", "), e.status, e.failing_since ? when(e.failing_since) : "—",
      h("div", { class: "row" },
        h("button", { type: "button", onclick: () => showDeliveries(e, deliveries) }, "Deliveries"),
        h("button", { type: "button", class: "danger", onclick: async () => {
          try {
            await del(`/v1/webhook_endpoints/${encodeURIComponent(e.id)}`);
            await reload();
          } catch (err) {
            showError(errors, err);
          }
        } }, "Delete")),
    ]);
    clear(content, form, secret, rows.length ? table(["URL", "Events", "Status", "Failing since", ""], rows) : h("p", {}, "No endpoints."), deliveries);
  });
}

async function showDeliveries(endpoint, slot) {
  const errors = errorBox(null);
  clear(slot, h("h3", {}, `Deliveries to ${endpoint.url}`), errors);
  try {
    const list = await get(`/v1/webhook_endpoints/${encodeURIComponent(endpoint.id)}/deliveries${query({ limit: 50 })}`);
    const rows = list.data.map((d) => {
      const last = d.attempts && d.attempts.length ? d.attempts[d.attempts.length - 1] : null;
      return [d.event_type, d.video_id, d.status, d.attempt_count, last ? (last.status_code ?? last.error ?? "—") : "—", when(d.created_at)];
    });
    slot.append(rows.length ? table(["Event", "Video", "Status", "Attempts", "Last answer", "Created"], rows) : h("p", {}, "No deliveries yet."));
  } catch (err) {
    showError(errors, err);
  }
}

function deployments(body) {
  section(body, async (content) => {
    const models = (await get("/v1/models")).data.filter((m) => !m.alias_of);
    const rows = [];
    for (const m of models) {
      for (const d of m.deployments) {
        const state = !d.configured ? "not configured" : d.circuit_open_until ? `circuit open until ${when(d.circuit_open_until)}` : d.healthy ? "healthy" : "unhealthy";
        const badge = h("span", { class: `state ${d.configured && d.healthy && !d.circuit_open_until ? "ok" : "bad"}` }, state);
        rows.push([m.id, d.provider, d.upstream_model || "—", d.priority, badge, d.last_error || "—"]);
      }
    }
    clear(content, table(["Model", "Deployment", "Upstream model", "Priority", "Health / breaker", "Last error"], rows));
  });
}
