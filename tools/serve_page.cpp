// The chat page `tessera serve` answers at /: one static page, no external resources, that keeps the
// conversation in the browser and streams each answer from /v1/chat/completions.
#include "tools/serve_routes.h"

namespace tessera::cli::serve {

const char* const kChatPage = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tessera chat</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; display: flex; flex-direction: column; height: 100vh; }
  header { padding: 8px 14px; background: #263238; color: #eceff1; display: flex; gap: 12px; align-items: center; }
  header input { width: 14em; }
  #log { flex: 1; overflow-y: auto; padding: 14px; }
  .msg { max-width: 48em; margin: 0 0 10px; padding: 8px 12px; border-radius: 8px; white-space: pre-wrap; }
  .user { background: #e3f2fd; margin-left: auto; }
  .assistant { background: #f1f8e9; }
  .error { background: #ffebee; color: #b71c1c; }
  form { display: flex; gap: 8px; padding: 10px 14px; border-top: 1px solid #cfd8dc; }
  #input { flex: 1; font: inherit; padding: 6px; }
</style>
</head>
<body>
<header>
  <strong>tessera</strong> <span id="model">…</span>
  <label>API key <input id="key" type="password" autocomplete="off"></label>
  <label>max tokens <input id="maxTokens" type="number" value="200" min="1" style="width: 5em"></label>
  <button id="reset" type="button">New chat</button>
</header>
<div id="log"></div>
<form id="form">
  <input id="input" autocomplete="off" placeholder="Type a message and press Enter">
  <button id="send" type="submit">Send</button>
</form>
<script>
"use strict";
const log = document.getElementById("log"), input = document.getElementById("input");
const sendButton = document.getElementById("send"), keyInput = document.getElementById("key");
let messages = [], model = "";

function headers() {
  const h = { "Content-Type": "application/json" };
  if (keyInput.value) h["Authorization"] = "Bearer " + keyInput.value;
  return h;
}

function bubble(cls, text) {
  const div = document.createElement("div");
  div.className = "msg " + cls;
  div.textContent = text;  // text, never HTML: answers cannot inject markup
  log.appendChild(div);
  log.scrollTop = log.scrollHeight;
  return div;
}

async function loadModel() {
  try {
    const r = await fetch("/v1/models", { headers: headers() });
    const j = await r.json();
    if (!r.ok) throw new Error(j.error ? j.error.message : r.statusText);
    model = j.data[0].id;
    document.getElementById("model").textContent = model;
  } catch (e) {
    document.getElementById("model").textContent = "(" + e.message + ")";
  }
}

async function send(text) {
  if (!model) await loadModel();
  messages.push({ role: "user", content: text });
  bubble("user", text);
  const answer = bubble("assistant", "");
  answer.id = "answer-" + messages.length;
  sendButton.disabled = true;
  let reply = "";
  try {
    const r = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(),
      body: JSON.stringify({ model: model, messages: messages, stream: true,
                             max_tokens: Number(document.getElementById("maxTokens").value) || undefined })
    });
    if (!r.ok) {
      const j = await r.json().catch(() => ({}));
      throw new Error(j.error ? j.error.message : r.status + " " + r.statusText);
    }
    const reader = r.body.getReader(), decoder = new TextDecoder();
    let buffered = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffered.indexOf("\n\n")) >= 0) {
        const event = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        const delta = chunk.choices.length ? chunk.choices[0].delta : {};
        if (delta.content) {
          reply += delta.content;
          answer.textContent = reply;
          log.scrollTop = log.scrollHeight;
        }
      }
    }
    messages.push({ role: "assistant", content: reply });
    answer.dataset.done = "1";
  } catch (e) {
    answer.className = "msg error";
    answer.textContent = e.message;
    answer.dataset.done = "1";
    messages.pop();
  } finally {
    sendButton.disabled = false;
  }
}

document.getElementById("form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = input.value.trim();
  if (!text || sendButton.disabled) return;
  input.value = "";
  send(text);
});
document.getElementById("reset").addEventListener("click", () => { messages = []; log.textContent = ""; });
loadModel();
</script>
</body>
</html>
)html";

}  // namespace tessera::cli::serve
