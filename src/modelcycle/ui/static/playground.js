// Playground: stream each target's answer into its pane (the form works without this script).
// Model output is only ever inserted as text (textContent / text nodes), never as HTML.
"use strict";

(() => {
  const STREAM_URL = "/playground/stream";

  function part(pane, selector) {
    return pane.querySelector(selector);
  }

  function setError(pane, message) {
    const error = part(pane, ".pg-error");
    error.textContent = message;
    error.hidden = false;
    const answer = part(pane, ".pg-answer");
    if (!answer.textContent) answer.hidden = true; // nothing came: the error says why
  }

  function resetPane(pane, target) {
    part(pane, ".pg-target").textContent = target;
    const answer = part(pane, ".pg-answer");
    answer.textContent = "";
    answer.hidden = false;
    part(pane, ".pg-served").textContent = "waiting for the first token…";
    const trace = part(pane, ".pg-trace");
    trace.hidden = true;
    trace.textContent = "";
    const error = part(pane, ".pg-error");
    error.hidden = true;
    error.textContent = "";
    const dataset = part(pane, ".pg-dataset");
    if (dataset) dataset.hidden = true;
    pane.hidden = false;
  }

  // The message of a dashboard error page (CSRF refused, signed out...), as text.
  async function pageMessage(response) {
    let detail = response.statusText || "the request failed";
    try {
      const html = await response.text();
      const found = new DOMParser().parseFromString(html, "text/html").querySelector("p.error");
      if (found && found.textContent) detail = found.textContent;
    } catch (_) { /* keep the status text */ }
    return `HTTP ${response.status}: ${detail}`;
  }

  function describeDone(data, served) {
    const bits = [];
    if (served) bits.push(`served by ${served}`);
    if (typeof data.latency_ms === "number") bits.push(`${Math.round(data.latency_ms)} ms`);
    if (typeof data.tokens_out === "number") bits.push(`${data.tokens_out} tokens`);
    if (data.finish_reason) bits.push(data.finish_reason);
    return bits.join(" · ");
  }

  function showTrace(pane, traceId) {
    if (!traceId) return;
    const trace = part(pane, ".pg-trace");
    trace.href = "/traces/" + encodeURIComponent(traceId);
    trace.textContent = "trace " + String(traceId).slice(0, 12);
    trace.hidden = false;
  }

  function offerDataset(pane, fields, target, traceId) {
    const form = part(pane, ".pg-dataset");
    if (!form) return; // only maintainers get the form
    form.elements.target.value = target;
    form.elements.system.value = fields.get("system") || "";
    form.elements.message.value = fields.get("message") || "";
    form.elements.answer.value = part(pane, ".pg-answer").textContent;
    form.elements.trace_id.value = traceId || "";
    form.hidden = false;
  }

  // One server-sent event ("event:" and "data:" lines) applied to the pane.
  function apply(pane, block, state) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (!data.length) return;
    const payload = JSON.parse(data.join("\n"));
    if (name === "message") {
      part(pane, ".pg-answer").append(document.createTextNode(payload.text || ""));
    } else if (name === "meta") {
      state.served = payload.served_by;
      part(pane, ".pg-served").textContent = `served by ${payload.served_by} · streaming…`;
    } else if (name === "done") {
      state.ended = true;
      const empty = part(pane, ".pg-answer").textContent ? "" : " · the answer is empty";
      part(pane, ".pg-served").textContent = describeDone(payload, state.served) + empty;
      showTrace(pane, payload.trace_id);
      offerDataset(pane, state.fields, state.target, payload.trace_id);
    } else if (name === "error") {
      state.ended = true;
      part(pane, ".pg-served").textContent = "";
      setError(pane, `${payload.message} (HTTP ${payload.status}, ${payload.code})`);
    }
  }

  async function readEvents(response, pane, state) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
      buffer = buffer.replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        apply(pane, buffer.slice(0, end), state);
        buffer = buffer.slice(end + 2);
      }
      if (done) break;
    }
  }

  async function streamInto(pane, target, fields, csrf) {
    resetPane(pane, target);
    const body = new URLSearchParams();
    for (const [key, value] of fields) if (typeof value === "string") body.append(key, value);
    body.set("target", target);
    const state = { ended: false, served: null, fields, target };
    try {
      const response = await fetch(STREAM_URL, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf, Accept: "text/event-stream" },
        body,
      });
      const type = response.headers.get("content-type") || "";
      if (!type.startsWith("text/event-stream")) {
        part(pane, ".pg-served").textContent = "";
        setError(pane, await pageMessage(response));
        return;
      }
      await readEvents(response, pane, state);
      if (!state.ended) setError(pane, "The answer stopped before it was complete; send again.");
    } catch (error) {
      part(pane, ".pg-served").textContent = "";
      setError(pane, `The answer could not be read: ${error.message}`);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("playground-form");
    if (!form || !window.fetch || !window.TextDecoder || !window.ReadableStream) return;
    const button = document.getElementById("pg-send");
    const status = document.getElementById("pg-status");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const fields = new FormData(form);
      const csrf = fields.get("csrf");
      const jobs = [];
      for (const slot of ["a", "b"]) {
        const pane = document.getElementById(`pane-${slot}`);
        const target = String(fields.get(`target_${slot}`) || "").trim();
        if (target) jobs.push(streamInto(pane, target, fields, csrf));
        else pane.hidden = true;
      }
      button.disabled = true;
      status.textContent = "Answering…";
      try {
        await Promise.all(jobs);
      } finally {
        status.textContent = "";
        // app.js disables a submitted form's buttons on the next tick: enable after it.
        setTimeout(() => { button.disabled = false; }, 0);
      }
    });
  });
})();
