// The public API, called with the signed-in key. The key lives in sessionStorage only
// (gone when the tab closes) and travels in the Authorization header, never in a URL.
const KEY = "vidgate.key";

export function getKey() {
  return sessionStorage.getItem(KEY);
}

export function setKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function clearKey() {
  sessionStorage.removeItem(KEY);
}

// An error answer of the API (the OpenAI shape), or a failure to reach it.
export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `the gateway answered HTTP ${status}`);
    this.status = status;
    this.param = err.param || null;
    this.code = err.code || null;
    this.type = err.type || null;
  }
}

// Sends a request; answers the parsed JSON (and the Response) or throws ApiError.
// body: a plain object (sent as JSON), a FormData (multipart), or undefined.
export async function call(method, path, body, { raw = false } = {}) {
  const headers = { Authorization: `Bearer ${getKey() || ""}` };
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body: payload, cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, { error: { message: "the gateway could not be reached; check that it is running" } });
  }
  let data = null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) {
    data = await response.json();
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    // A key revoked or expired while signed in: the console asks for another.
    if (response.status === 401) window.dispatchEvent(new CustomEvent("vidgate:unauthorized", { detail: error }));
    throw error;
  }
  return raw ? { data, response } : data;
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body);
export const del = (path) => call("DELETE", path);

export function query(params) {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") q.set(name, String(value));
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Reads a video until it is completed or failed, waiting between reads as the gateway
// says in openai-poll-after-ms (the SDK's own rule). onUpdate sees every read.
export async function pollVideo(id, onUpdate, { isCancelled = () => false } = {}) {
  for (;;) {
    const { data, response } = await call("GET", `/v1/videos/${encodeURIComponent(id)}`, undefined, { raw: true });
    onUpdate(data);
    if (data.status === "completed" || data.status === "failed" || isCancelled()) return data;
    const after = Number(response.headers.get("openai-poll-after-ms"));
    await sleep(Number.isFinite(after) && after > 0 ? after : 1000);
  }
}

// GET /v1/videos/{id}/details: the video, its request, history, deployment, links.
export function videoDetails(id) {
  return get(`/v1/videos/${encodeURIComponent(id)}/details`);
}
