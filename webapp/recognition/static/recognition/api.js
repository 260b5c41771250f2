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
  postJSON(url, data) {
    return Api.request(url, { method: "POST", body: JSON.stringify(data), headers: { "Content-Type": "application/json" } });
  },
  sleep(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); },
  /* Wait for a job to finish; onUpdate sees every state. The server holds each request
     until the job has finished (up to 20 s), so this is usually two requests, not a poll loop. */
  async waitForJob(url, onUpdate) {
    const held = url + (url.includes("?") ? "&" : "?") + "wait=20";
    for (let first = true; ; first = false) {
      const job = await Api.request(first ? url : held);
      onUpdate(job);
      if (job.status === "succeeded" || job.status === "failed") return job;
      if (!first) await Api.sleep(250);  // answered early (the server had no waiting slot free)
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
