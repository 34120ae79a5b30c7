// GET /: the playground, one small page that talks to this Worker's own OpenAI-compatible API
// from the browser (fetch, server-sent events read from the response stream). Plain HTML, CSS
// and JavaScript in one string, no framework; its script avoids backticks so it can live here.

import type { Context } from "hono";
import type { AppContext } from "./app";

const SCRIPT = String.raw`
"use strict";
const $ = (id) => document.getElementById(id);
const form = $("form");
let controller = null;
let conversation = [];

function headers() {
  const h = { "content-type": "application/json" };
  const key = $("key").value.trim();
  if (key) h.authorization = "Bearer " + key;
  return h;
}

function apiError(res, body) {
  const e = body && body.error;
  const err = new Error(e && e.message ? e.message : (res.statusText || "request failed"));
  err.detail = "HTTP " + res.status + (e && (e.code || e.type) ? " " + (e.code || e.type) : "") + (e && e.param ? " (" + e.param + ")" : "");
  return err;
}

function showError(e) {
  const box = $("error");
  box.replaceChildren();
  box.hidden = !e;
  if (!e) return;
  const head = document.createElement("strong");
  head.textContent = e.detail || "Error";
  box.append(head, document.createTextNode(": " + e.message));
}

async function loadModels() {
  showError(null);
  const select = $("model");
  const keep = select.value;
  try {
    const res = await fetch("/v1/models", { headers: headers() });
    const body = await res.json().catch(() => null);
    if (!res.ok) throw apiError(res, body);
    select.replaceChildren(...body.data.map((m) => new Option(m.id, m.id)));
    if (body.data.some((m) => m.id === keep)) select.value = keep;
    $("stats").textContent = body.data.length + " model(s) available";
  } catch (e) {
    showError(e);
  }
}

function mode() {
  return form.elements.mode.value;
}

function setMode() {
  const chat = mode() === "chat";
  $("input-label").textContent = chat ? "Message" : "Prompt";
  $("clear").hidden = !chat;
  conversation = [];
  $("output").replaceChildren();
}

function turn(role, text) {
  const div = document.createElement("div");
  div.className = "turn " + role;
  const who = document.createElement("span");
  who.className = "role";
  who.textContent = role;
  const body = document.createElement("span");
  body.textContent = text;
  div.append(who, body);
  $("output").append(div);
  return body;
}

function request() {
  const body = { model: $("model").value, max_tokens: Number($("max-tokens").value), temperature: Number($("temperature").value), stream: true, return_token_ids: true };
  const schema = $("schema").value.trim();
  if (schema) {
    let parsed;
    try {
      parsed = JSON.parse(schema);
    } catch (e) {
      const err = new Error(e.message);
      err.detail = "The JSON schema is not valid JSON";
      throw err;
    }
    body.response_format = { type: "json_schema", json_schema: { name: (parsed && typeof parsed.title === "string" && parsed.title) || "response", schema: parsed } };
  }
  return body;
}

async function generate(event) {
  event.preventDefault();
  if (controller) return controller.abort();
  showError(null);
  $("stats").textContent = "";
  const chat = mode() === "chat";
  const input = $("input").value;
  let body, out;
  try {
    body = request();
  } catch (e) {
    return showError(e);
  }
  if (chat) {
    if (!input.trim()) return;
    conversation.push({ role: "user", content: input });
    body.messages = conversation.slice();
    turn("user", input);
    $("input").value = "";
    out = turn("assistant", "");
  } else {
    body.prompt = input;
    $("output").replaceChildren();
    const p = document.createElement("span");
    p.className = "prompt";
    p.textContent = input;
    out = document.createElement("span");
    $("output").append(p, out);
  }
  controller = new AbortController();
  $("go").textContent = "Stop";
  const started = performance.now();
  let first = 0, tokens = 0, text = "", finish = "", failed = false;
  const stats = () => {
    const now = performance.now();
    const rate = tokens > 1 && now > first ? ((tokens - 1) * 1000) / (now - first) : 0;
    $("stats").textContent = tokens + " tokens" + (first ? " \u00b7 first token " + Math.round(first - started) + " ms" : "") + (rate ? " \u00b7 " + rate.toFixed(1) + " tokens/s" : "") + (finish ? " \u00b7 finish: " + finish : "");
  };
  const onEvent = (data) => {
    if (data === "[DONE]") return;
    const chunk = JSON.parse(data);
    if (chunk.error) throw apiError({ status: 200, statusText: "" }, chunk);
    const choice = chunk.choices && chunk.choices[0];
    if (!choice) return;
    const ids = choice.token_ids || [];
    if (ids.length && !first) first = performance.now();
    tokens += ids.length;
    text += (chat ? choice.delta && choice.delta.content : choice.text) || "";
    if (choice.finish_reason) finish = choice.finish_reason;
    out.textContent = text;
    stats();
  };
  $("output").setAttribute("aria-busy", "true");
  try {
    const res = await fetch(chat ? "/v1/chat/completions" : "/v1/completions", { method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal });
    if (!res.ok) throw apiError(res, await res.json().catch(() => null));
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        for (const line of buffer.slice(0, end).split("\n")) if (line.startsWith("data: ")) onEvent(line.slice(6));
        buffer = buffer.slice(end + 2);
      }
    }
  } catch (e) {
    failed = !text;
    if (e.name !== "AbortError") showError(e);
  } finally {
    controller = null;
    $("go").textContent = "Generate";
    $("output").setAttribute("aria-busy", "false");
  }
  if (chat) {
    if (!failed) conversation.push({ role: "assistant", content: text });
    else {
      // Nothing came back: the turn is taken back so it can be sent again.
      conversation.pop();
      $("output").lastChild.remove();
      $("output").lastChild.remove();
      $("input").value = input;
    }
  }
}

form.addEventListener("submit", generate);
form.elements.mode.forEach((r) => r.addEventListener("change", setMode));
$("key").addEventListener("change", loadModels);
$("clear").addEventListener("click", () => {
  conversation = [];
  $("output").replaceChildren();
});
setMode();
loadModels();
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edgeinfer playground</title>
<style>
:root { font: 15px/1.45 system-ui, sans-serif; color: #1d2327; background: #f6f7f8; }
body { margin: 0 auto; max-width: 60rem; padding: 1rem 1.25rem; }
h1 { font-size: 1.25rem; margin: 0 0 .75rem; }
form { display: grid; grid-template-columns: 16rem 1fr; gap: 1rem; }
fieldset { border: 1px solid #cfd4d9; border-radius: 6px; padding: .5rem .75rem .75rem; margin: 0; background: #fff; }
legend { font-weight: 600; padding: 0 .25rem; }
label { display: block; margin-top: .5rem; font-size: .9rem; }
label.inline { display: inline; margin-right: .75rem; }
input, select, textarea, button { font: inherit; box-sizing: border-box; }
input:not([type=radio]), select, textarea { width: 100%; padding: .3rem .4rem; border: 1px solid #b9c0c7; border-radius: 4px; }
textarea { resize: vertical; }
#schema { font-family: ui-monospace, monospace; font-size: .8rem; }
.main { display: flex; flex-direction: column; gap: .5rem; min-width: 0; }
#output { min-height: 12rem; padding: .75rem; background: #fff; border: 1px solid #cfd4d9; border-radius: 6px; white-space: pre-wrap; overflow-wrap: anywhere; }
.prompt { color: #69737d; }
.turn { margin-bottom: .5rem; }
.role { display: inline-block; min-width: 5.5rem; font-weight: 600; color: #3b5f8a; }
.buttons { display: flex; gap: .5rem; align-items: center; }
button { padding: .35rem 1rem; border: 1px solid #2d5c8f; border-radius: 4px; background: #2d6db5; color: #fff; cursor: pointer; }
button.plain { background: #fff; color: #2d5c8f; }
button { white-space: nowrap; }
#stats { color: #4d5760; font-size: .9rem; font-variant-numeric: tabular-nums; }
#error { padding: .5rem .75rem; border: 1px solid #c9302c; border-radius: 6px; background: #fdecea; color: #8a1f11; white-space: pre-wrap; }
@media (max-width: 40rem) { form { grid-template-columns: 1fr; } }
</style>
</head>
<body>
<h1>edgeinfer playground</h1>
<form id="form">
<fieldset>
<legend>Settings</legend>
<label for="key">API key (when the deployment needs one)</label>
<input id="key" type="password" autocomplete="off" placeholder="sk-...">
<label for="model">Model</label>
<select id="model"></select>
<div role="radiogroup" aria-label="Mode" style="margin-top:.5rem">
<label class="inline"><input type="radio" name="mode" value="chat" checked> Chat</label>
<label class="inline"><input type="radio" name="mode" value="complete"> Complete</label>
</div>
<label for="temperature">Temperature</label>
<input id="temperature" type="number" min="0" max="2" step="0.1" value="0.7">
<label for="max-tokens">Max tokens</label>
<input id="max-tokens" type="number" min="0" step="1" value="128">
<label for="schema">JSON schema (optional)</label>
<textarea id="schema" rows="5" placeholder='{"type": "object", ...}'></textarea>
</fieldset>
<div class="main">
<div id="output" aria-live="polite" aria-label="Output"></div>
<div id="error" role="alert" hidden></div>
<label for="input" id="input-label">Message</label>
<textarea id="input" rows="4"></textarea>
<div class="buttons">
<button id="go" type="submit">Generate</button>
<button id="clear" type="button" class="plain">New chat</button>
<span id="stats" aria-live="polite"></span>
</div>
</div>
</form>
<script>${SCRIPT}</script>
</body>
</html>
`;

/** The script's hash, for a Content-Security-Policy that runs this script and nothing else. */
let scriptHash: Promise<string> | null = null;

async function sha256Base64(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return btoa(String.fromCharCode(...digest));
}

export async function playground(c: Context<AppContext>): Promise<Response> {
  scriptHash ??= sha256Base64(SCRIPT);
  return c.html(PAGE, 200, {
    "content-security-policy": `default-src 'none'; script-src 'sha256-${await scriptHash}'; style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
  });
}
