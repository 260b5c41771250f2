/* Calls to the job API with the session cookie and Django's CSRF token. */
"use strict";
const Api = {
  csrf() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  },
  async request(url, options = {}) {
    const headers = Object.assign({ "X-CSRFToken": Api.csrf(), Accept: "application/json" }, options.headers || {});
    const response = await fetch(url, Object.assign({ credentials: "same-origin" }, options, { headers }));
    if (response.status === 204) return null;
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error((body.error && body.error.message) || `HTTP ${response.status}`);
      error.code = body.error && body.error.code;
      error.retryAfter = Number(response.headers.get("Retry-After")) || null;
      throw error;
    }
    return body;
  },
  postJSON(url, data, headers = {}) {
    return Api.request(url, { method: "POST", body: JSON.stringify(data), headers: Object.assign({ "Content-Type": "application/json" }, headers) });
  },
  sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); },
  /* A GET that rides out what passes: a dropped connection, a 5xx, a 429 (after its Retry-After).
     It waits 1, 2, 4 ... 30 s between tries and gives up after MAX_TRIES; other errors throw at once. */
  MAX_TRIES: 8,
  async getPatiently(url, onRetry) {
    for (let tries = 1; ; tries++) {
      try {
        return await Api.request(url);
      } catch (error) {
        const passing = !error.code || error.code === "throttled" || error.code === "database_unavailable" || error.code === "internal_error";
        if (!passing || tries >= Api.MAX_TRIES) throw error;
        if (onRetry) onRetry(error);
        await Api.sleep(error.retryAfter ? error.retryAfter * 1000 : Math.min(30000, 1000 * 2 ** (tries - 1)));
      }
    }
  },
  /* Wait for a job to finish; onUpdate sees every state. The server holds each request
     until the job has finished (up to 20 s), so this is usually two requests, not a poll loop.
     A server with no waiting slot free answers at once: then ask less often, up to every 5 s. */
  async waitForJob(url, onUpdate, onRetry) {
    const held = url + (url.includes("?") ? "&" : "?") + "wait=20";
    for (let round = 0; ; round++) {
      const job = await Api.getPatiently(round === 0 ? url : held, onRetry);
      onUpdate(job);
      if (job.status === "succeeded" || job.status === "failed") return job;
      if (round > 0) await Api.sleep(Math.min(5000, 250 * 2 ** (round - 1)));
    }
  },
};
const SHOWN = { "*": "×", "-": "−" };
function shown(text) { return Array.from(text || "").map((c) => SHOWN[c] || c).join(""); }
// The right-hand side as written ("56", "4×9"); results stored before it existed carry only the value.
function written(line) { return shown(line.answer_expression ?? String(line.answer)); }
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}
