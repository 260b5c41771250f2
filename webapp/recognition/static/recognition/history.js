/* Delete a job or a batch from the history (through the API, which removes its files too). */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("button.delete").forEach((button) => {
    button.addEventListener("click", async () => {
      const row = button.closest("tr");
      if (!window.confirm("Delete it and everything stored for it?")) return;
      button.disabled = true;
      try {
        await Api.request(row.dataset.url, { method: "DELETE" });
        row.remove();
      } catch (error) {
        button.disabled = false;
        // Said in an alert beside the button: its label would still read "Delete …" to a screen reader.
        let alert = row.querySelector(".delete-error");
        if (!alert) {
          alert = el("span", { class: "delete-error error", role: "alert" });
          button.after(alert);
        }
        alert.textContent = ` Not deleted: ${error.message}`;
      }
    });
  });
});
