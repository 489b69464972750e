// Evaluation run page: when the live status box reports that the run has ended,
// load the page again so that its gates, aggregates and samples appear.
"use strict";

document.addEventListener("refreshed", (event) => {
  const box = event.target;
  if (box && box.id === "run-live" && box.querySelector("[data-run-finished]")) {
    location.reload();
  }
});
