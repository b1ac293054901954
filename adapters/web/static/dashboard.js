// Progressive enhancement only: every page works without this file.
"use strict";
(function () {
  // A job page polls its state and updates the bar, the figures and the message.
  const job = document.querySelector("[data-job]");
  if (job) {
    const bar = job.querySelector("progress");
    const percent = job.querySelector("[data-job-percent]");
    const message = job.querySelector("[data-job-message]");
    const state = job.querySelector("[data-job-state]");
    const poll = async () => {
      try {
        const response = await fetch(job.dataset.job, { credentials: "same-origin" });
        if (!response.ok) throw new Error(String(response.status));
        const data = await response.json();
        bar.value = data.percent;
        percent.textContent = data.percent + "%";
        message.textContent = data.message;
        if (data.state === "running") {
          setTimeout(poll, 500);
        } else {
          state.className = "state-" + data.state;
          state.textContent = data.state === "done" ? "Done." : "Failed.";
        }
      } catch (err) {
        setTimeout(poll, 2000);
      }
    };
    if (state.className === "state-running") setTimeout(poll, 300);
  }
  // Selects marked data-autosubmit submit their form when changed.
  document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    select.addEventListener("change", () => select.form.submit());
  });
  // Forms with data-confirm ask first; forms with data-busy say they are working.
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
  document.querySelectorAll("form[data-busy]").forEach((form) => {
    form.addEventListener("submit", () => {
      const button = form.querySelector("button[type=submit]");
      if (button) { button.disabled = true; button.textContent = form.dataset.busy; }
    });
  });
})();
