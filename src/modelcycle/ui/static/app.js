// modelcycle dashboard: progressive enhancement only; every page works without it.
"use strict";

// Live regions: an element with data-refresh="N" is re-fetched every N seconds
// (the same URL; the element with the same id is swapped in), while the tab is visible.
function startRefresh(element) {
  const seconds = Math.max(2, parseInt(element.dataset.refresh, 10) || 15);
  setInterval(async () => {
    if (document.hidden || !element.id) return;
    try {
      const response = await fetch(location.href, { headers: { "X-Requested-With": "fetch" } });
      if (!response.ok) return;
      const html = await response.text();
      const fresh = new DOMParser().parseFromString(html, "text/html").getElementById(element.id);
      if (fresh) {
        element.replaceChildren(...fresh.childNodes);
        element.dispatchEvent(new CustomEvent("refreshed", { bubbles: true }));
      }
    } catch (_) { /* offline for a moment: try again at the next tick */ }
  }, seconds * 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-refresh]").forEach(startRefresh);
  // <select data-autosubmit> submits its form on change (the button stays for keyboards).
  document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    select.addEventListener("change", () => select.form && select.form.requestSubmit());
  });
  // A form that is being sent cannot be sent twice.
  document.querySelectorAll("form[method=post]").forEach((form) => {
    form.addEventListener("submit", () => {
      setTimeout(() => form.querySelectorAll("button[type=submit]").forEach((b) => { b.disabled = true; }), 0);
    });
  });
});
