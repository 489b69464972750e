// Tuning job page: keep the log scrolled to its newest line (last) as the live region refreshes,
// unless the reader has scrolled up to read older lines.
"use strict";

function scrollLogToEnd(force) {
  const log = document.getElementById("tune-log");
  if (!log) return;
  if (force || log.dataset.follow !== "no") log.scrollTop = log.scrollHeight;
}

document.addEventListener("DOMContentLoaded", () => {
  scrollLogToEnd(true);
  const live = document.getElementById("tune-live");
  if (!live) return;
  let follow = true;
  live.addEventListener("scroll", (event) => {
    const log = event.target;
    if (log.id === "tune-log") follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
  }, true);
  live.addEventListener("refreshed", () => {
    const log = document.getElementById("tune-log");
    if (log) log.dataset.follow = follow ? "yes" : "no";
    scrollLogToEnd(false);
  });
});
