/* Worksheet upload, batch progress, and one marked table per page. */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("upload");
  const section = document.getElementById("batch");

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const problem = document.getElementById("upload-error");
    problem.hidden = true;
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const data = new FormData();
      for (const file of document.getElementById("files").files) data.append("files", file);
      const name = document.getElementById("name").value.trim();
      if (name) data.append("name", name);
      const batch = await Api.request("/api/v1/batches/", { method: "POST", body: data });
      form.reset();  // a second click must not upload the same files again
      // replace, not push: Back would change the address but leave this batch on screen
      window.history.replaceState(null, "", `/worksheets/${batch.id}/`);
      section.dataset.url = batch.url;
      follow(batch.url);
    } catch (error) {
      problem.hidden = false;
      problem.textContent = error.message;
    } finally {
      button.disabled = false;
    }
  });

  let following = 0;  // which upload the page follows: a newer one stops the older loop
  let shownPages = new Map();  // page id -> { signature, element } of what is on screen
  async function follow(url) {
    const mine = ++following;
    shownPages = new Map();
    section.hidden = false;
    const problem = document.getElementById("upload-error");
    for (let round = 0; mine === following; round++) {
      let batch;
      try {
        batch = await Api.getPatiently(url, () => { problem.hidden = false; problem.textContent = "The server is not answering; trying again…"; });
      } catch (error) {
        problem.hidden = false;
        problem.textContent = `Progress stopped: ${error.message}. Reload the page to try again.`;
        return;
      }
      if (mine !== following) return;
      problem.hidden = true;
      render(batch);
      if (batch.finished) return;
      await Api.sleep(Math.min(5000, 800 + 200 * round));  // a large batch takes minutes: ask less often as it goes
      if (document.hidden) await new Promise((resume) => document.addEventListener("visibilitychange", resume, { once: true }));  // no polling from a hidden tab
    }
  }

  function render(batch) {
    document.getElementById("batch-title").textContent = batch.name || "Batch";
    const bar = document.getElementById("batch-progress");
    bar.max = Math.max(1, batch.progress.total);
    bar.value = batch.progress.done;
    document.getElementById("batch-progress-text").textContent =
      `${batch.progress.done} of ${batch.progress.total} pages marked` + (batch.progress.failed ? `, ${batch.progress.failed} could not be read` : "");
    document.getElementById("batch-score").textContent = batch.finished
      ? `Score: ${batch.score.correct} right of ${batch.score.answered} answered (${batch.score.total} lines)` : "";
    const csv = document.getElementById("batch-csv");
    csv.href = batch.results_csv;
    csv.hidden = !batch.finished;
    // Only the pages that changed are drawn again: rebuilding all of them on every poll closed
    // the panel a reader had open and took the keyboard focus away.
    const list = document.getElementById("pages");
    const elements = batch.pages.map((summary) => {
      const key = String(summary.id || summary.page_number);
      const signature = JSON.stringify(Object.assign({}, summary, { boxes: undefined }));  // its link is signed anew each time
      const known = shownPages.get(key);
      if (known && known.signature === signature) return known.element;
      const element = page(summary);
      shownPages.set(key, { signature, element });
      return element;
    });
    elements.forEach((element, index) => {
      const there = list.children[index];
      if (there !== element) (there ? there.replaceWith(element) : list.append(element));
    });
    while (list.children.length > elements.length) list.lastElementChild.remove();
  }

  function page(summary) {
    const box = el("article", { class: "page", "aria-label": `Page ${summary.page_number}` });
    box.append(el("h3", { text: `Page ${summary.page_number}: ${summary.source_name}` }));
    if (summary.status !== "succeeded" && summary.status !== "failed") {
      box.append(el("p", { class: "hint", text: summary.status === "running" ? "Reading…" : "Waiting…" }));
      return box;
    }
    if (summary.error && !summary.lines.length) {
      box.append(el("p", { class: "error", text: summary.error.message }));
      return box;
    }
    const table = el("table", { class: "marks" });
    table.append(el("caption", { text: `Score ${summary.score.correct} / ${summary.score.answered}` }));
    const head = el("tr");
    for (const title of ["Line", "Expression", "Written answer", "Correct value", "Mark"]) head.append(el("th", { scope: "col", text: title }));
    table.append(el("thead", {}, head));
    const body = el("tbody");
    for (const line of summary.lines) {
      const row = el("tr");
      row.append(el("td", { text: String(line.line) }), el("td", { class: "expr", text: line.expression ? shown(line.expression) : "?" }),
                 el("td", { text: line.answer === null && !line.answer_expression ? "—" : written(line) }),
                 el("td", { text: line.value === null ? "—" : String(line.value) }));
      const mark = el("td", { class: "mark-cell" });
      if (line.correct === true) mark.append(el("span", { class: "mark good", "aria-label": "right", text: "✓" }));
      else if (line.correct === false) mark.append(el("span", { class: "mark bad", "aria-label": "wrong", text: "✗" }));
      else mark.append(el("span", { class: "hint", text: line.error ? "unreadable" : "no answer" }));
      row.append(mark);
      body.append(row);
    }
    table.append(body);
    box.append(el("div", { class: "table-wrap" }, table));
    if (summary.boxes) {  // a signed link: no session or token work on the server
      const overlay = el("img", { class: "overlay", src: summary.boxes, alt: `Page ${summary.page_number} with each symbol boxed`, loading: "lazy" });
      box.append(el("details", {}, el("summary", { text: "Show how the page was read" }), overlay));
    }
    return box;
  }

  if (section.dataset.url) follow(section.dataset.url);
});
