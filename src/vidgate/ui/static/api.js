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
    throw new ApiError(response.status, data);
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

// GET /v1/videos/{id}/details. On a gateway without that route (code "not_found", not
// "video_not_found"), what the video and task-shape reads tell: the video, its links
// (the task shape's signed output links) and no history beyond its times.
export async function videoDetails(id) {
  const path = `/v1/videos/${encodeURIComponent(id)}`;
  try {
    return await get(`${path}/details`);
  } catch (err) {
    if (!(err instanceof ApiError) || err.code !== "not_found") throw err;
  }
  const video = await get(path);
  const task = await get(`/v1/videos/generations/${encodeURIComponent(id)}`);
  const out = task.data && task.data[0];
  const history = [{ status: "queued", at: video.created_at }];
  if (video.completed_at) history.push({ status: video.status, at: video.completed_at });
  return {
    object: "video.details",
    video,
    request: { prompt: video.prompt, seconds: video.seconds, size: video.size, metadata: video.metadata },
    deployment: null,
    history,
    timings: { total_s: video.completed_at ? video.completed_at - video.created_at : null },
    cost: video.cost,
    estimated_cost: video.estimated_cost,
    currency: video.currency,
    links: out ? { video: out.url, thumbnail: out.thumbnail_url, spritesheet: out.spritesheet_url, expires_at: out.expires_at } : null,
    outputs: task.data || [],
    webhook_deliveries: [],
  };
}
