/* The step-by-step explanation of a job, and corrections from its alternatives. */
"use strict";
const LOW_CONFIDENCE = 0.8;
const STATUS_TEXT = { queued: "Waiting for a worker…", running: "Reading…", succeeded: "Done", failed: "Could not read it" };

const Explain = {
  status(message, busy) {
    // The bar only while something is under way; the status line stays, so that a screen
    // reader hears "Done" (or what went wrong) from its live region.
    const box = document.getElementById("progress");
    if (!box) return;
    box.hidden = false;
    box.querySelector("progress").hidden = !busy;
    document.getElementById("progress-text").textContent = message;
  },

  showProgress(job) {
    const finished = job.status === "succeeded" || job.status === "failed";
    Explain.status(STATUS_TEXT[job.status] || job.status, !finished);
  },

  showFailure(error) {
    // Following the job failed for good (deleted elsewhere, logged out, the server away too
    // long): say so instead of a bar that spins forever.
    Explain.status(error.code === "not_authenticated" ? "Your session has ended: log in again." : error.message, false);
  },

  async follow(url) {
    const job = await Api.waitForJob(url, Explain.showProgress, () => Explain.status("The server is not answering; trying again…", true));
    Explain.render(job);
    return job;
  },

  render(job) {
    const section = document.getElementById("explanation");
    section.hidden = false;
    section.dataset.job = job.url;
    section.querySelector('[data-step="input"]').src = job.url + "image/";
    for (const name of ["binarised", "boxes", "crops"]) {
      const img = section.querySelector(`[data-step="${name}"]`);
      if (job.steps[name]) { img.src = job.steps[name]; img.closest("li").hidden = false; }
      else img.closest("li").hidden = true;
    }
    const problem = document.getElementById("job-error");
    problem.hidden = !job.error;
    if (job.error) {
      problem.textContent = job.error.message + (job.error.best_reading ? ` (read as “${shown(job.error.best_reading)}”)` : "");
    }
    const lines = document.getElementById("lines");
    lines.replaceChildren(...((job.result && job.result.lines) || []).map((line, index) => Explain.line(job, line, index)));
  },

  line(job, line, index) {
    const box = el("div", { class: "line", "data-line": index });
    const symbols = el("div", { class: "symbols", role: "group", "aria-label": `Line ${index + 1} symbols` });
    line.symbols.forEach((symbol, position) => symbols.append(Explain.symbolButton(job, index, symbol, position)));
    if (line.retyped_apart) {
      // Typed with another number of symbols than were read: the crops no longer match it.
      symbols.querySelectorAll("button.symbol").forEach((button) => { button.disabled = true; });
      symbols.append(el("span", { class: "hint", text: " (typed: correct it by typing)" }));
    }
    box.append(symbols);
    const result = el("p", { class: "value", "data-testid": "value" });
    if (line.error) {
      result.append(el("span", { class: "bad", text: `? ${line.error.message}` }));
    } else {
      result.append(el("span", { class: "expr", text: shown(line.expression) }), " = ", el("strong", { text: String(line.value) }));
      if (line.answer !== null && line.answer !== undefined) {
        const right = line.correct === true;
        result.append(el("span", { class: right ? "mark good" : "mark bad", text: ` written ${written(line)} ${right ? "✓" : "✗"}` }),
                      el("span", { class: "sr-only", text: right ? " (right)" : " (wrong)" }));
      }
    }
    if (line.corrected) result.append(el("span", { class: "hint", text: ` (corrected; first read as ${shown(line.read_as)})` }));
    box.append(result);

    const form = el("form", { class: "retype" });
    const inputId = `retype-${index}`;
    // What was read, to be fixed in place: a line that did not evaluate shows its whole best reading.
    const read = line.error && line.error.best_reading ? shown(line.error.best_reading)
      : shown(line.expression || "") + (line.answer !== null && line.answer !== undefined ? "=" + written(line) : "");
    const input = el("input", { id: inputId, type: "text", value: read, autocomplete: "off" });
    form.append(el("label", { for: inputId, text: "Or type it:" }), input, el("button", { type: "submit", text: "Fix" }));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      Explain.correct(job, { line: index, expression: input.value });
    });
    box.append(form, el("p", { class: "error", role: "alert", hidden: "" }));
    return box;
  },

  symbolButton(job, lineIndex, symbol, position) {
    const [best, probability] = symbol.top3[0];
    const sure = symbol.symbol === best ? probability : (symbol.top3.find(([c]) => c === symbol.symbol) || [null, 0])[1];
    const low = sure < LOW_CONFIDENCE;
    const wrap = el("span", { class: "symbol-wrap" });
    const button = el("button", {
      type: "button", class: low ? "symbol low" : "symbol", "aria-expanded": "false",
      "aria-label": `Symbol ${position + 1}: ${shown(symbol.symbol)}, ${Math.round(sure * 100)}% sure${low ? ", low confidence" : ""}. Show alternatives.`,
      "data-symbol": position,
    }, shown(symbol.symbol));
    // A disclosure, not an ARIA menu: a group of plain buttons that Tab walks through, which
    // closes on Escape, on a click elsewhere, or when the focus leaves it.
    const menuId = `alternatives-${lineIndex}-${position}`;
    button.setAttribute("aria-controls", menuId);
    const menu = el("div", { class: "alternatives", id: menuId, role: "group", "aria-label": `Alternatives for symbol ${position + 1}`, hidden: "" });
    for (const [choice, p] of symbol.top3) {
      const option = el("button", { type: "button", "data-choice": choice },
                        el("span", { class: "alt", text: shown(choice) }), ` ${Math.round(p * 100)}%`);
      if (choice === symbol.symbol) option.setAttribute("aria-current", "true");
      option.addEventListener("click", () => Explain.correct(job, { line: lineIndex, symbol: position, choice }));
      menu.append(option);
    }
    button.addEventListener("click", () => {
      const open = menu.hidden;
      document.querySelectorAll(".alternatives").forEach((m) => { m.hidden = true; });
      document.querySelectorAll(".symbol[aria-expanded]").forEach((b) => b.setAttribute("aria-expanded", "false"));
      menu.hidden = !open;
      button.setAttribute("aria-expanded", String(open));
      if (open) menu.querySelector("button").focus();
    });
    const close = () => { menu.hidden = true; button.setAttribute("aria-expanded", "false"); };
    wrap.addEventListener("keydown", (event) => { if (event.key === "Escape" && !menu.hidden) { close(); button.focus(); } });
    // Tabbed away to another control. (A tap elsewhere has no relatedTarget, and Safari blurs on
    // a tap even inside the group: those are left to the page's click handler below.)
    wrap.addEventListener("focusout", (event) => { if (event.relatedTarget && !wrap.contains(event.relatedTarget)) close(); });
    wrap.append(button, menu);
    return wrap;
  },

  async correct(job, correction) {
    const line = document.querySelector(`.line[data-line="${correction.line}"]`);
    const box = line && line.querySelector(".error");
    // One correction of a line at a time: a second click while one is on its way would store
    // a duplicate, and replies arriving out of order would show the older state.
    const controls = line ? [...line.querySelectorAll("button, input")].filter((c) => !c.disabled) : [];  // not those off already
    if (line && line.dataset.busy) return;
    if (line) { line.dataset.busy = "1"; controls.forEach((c) => { c.disabled = true; }); }
    const focused = correction.symbol !== undefined ? `[data-symbol="${correction.symbol}"]` : "input";
    try {
      const updated = await Api.postJSON(job.url + "corrections/", correction);
      Explain.render(updated);
      // The lines were drawn anew: put the keyboard back where it was.
      const again = document.querySelector(`.line[data-line="${correction.line}"] ${focused}`);
      if (again && !again.disabled) again.focus();
    } catch (error) {
      if (line) { delete line.dataset.busy; controls.forEach((c) => { c.disabled = false; }); }
      if (box) { box.hidden = false; box.textContent = error.message; }
    }
  },
};
window.Explain = Explain;
// A click outside a symbol's alternatives closes them (one listener for the page, not one per symbol).
document.addEventListener("click", (event) => {
  for (const wrap of document.querySelectorAll(".symbol-wrap")) {
    const menu = wrap.querySelector(".alternatives");
    if (menu && !menu.hidden && !wrap.contains(event.target)) {
      menu.hidden = true;
      wrap.querySelector(".symbol").setAttribute("aria-expanded", "false");
    }
  }
});
