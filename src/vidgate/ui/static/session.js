// Who is signed in (GET /v1/me) and what the key's role allows: a reader sees no
// button that would fail, admin pages are for admin and operator keys.
const WRITERS = new Set(["member", "admin", "operator"]);
const ADMINS = new Set(["admin", "operator"]);

export const session = { me: null };

export function canWrite() {
  return Boolean(session.me && WRITERS.has(session.me.role));
}

export function isAdmin() {
  return Boolean(session.me && ADMINS.has(session.me.role));
}

// GET /v1/models, read once per sign-in (the catalogue changes only with a restart).
let models = null;
export async function loadModels(get) {
  if (!models) models = (await get("/v1/models")).data;
  return models;
}

export function forget() {
  session.me = null;
  models = null;
}
