"""The playground at `/`: one self-contained page (inline CSS and JS, nothing fetched from
elsewhere) that streams completions from this server. Stop aborts the request, which the
server sees as a disconnect: the generation is cancelled and its slot freed."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rnngen playground</title>
<style>
:root { --bg: #f7f7f5; --panel: #fff; --ink: #1d1d1f; --muted: #6b6b70; --line: #dedede;
        --accent: #2f5fd0; --stop: #c0392b; color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
       font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { padding: 14px 20px; border-bottom: 1px solid var(--line); background: var(--panel);
         display: flex; align-items: baseline; gap: 12px; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; }
header span { color: var(--muted); font-size: 14px; }
main { max-width: 1100px; margin: 0 auto; padding: 20px; display: grid; gap: 20px;
       grid-template-columns: 280px minmax(0, 1fr); }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 10px;
         padding: 16px; }
label { display: block; font-size: 13px; color: var(--muted); margin: 12px 0 4px; }
label:first-child { margin-top: 0; }
select, input[type=number], input[type=password], textarea {
  width: 100%; font: inherit; padding: 8px 10px; border: 1px solid var(--line);
  border-radius: 8px; background: #fff; color: var(--ink); }
textarea { min-height: 110px; resize: vertical; font-family: ui-monospace, Menlo, monospace;
           font-size: 14px; }
.range { display: flex; align-items: center; gap: 10px; }
.range input[type=range] { flex: 1; min-width: 0; }
.range output { width: 3.2em; text-align: right; font-variant-numeric: tabular-nums; }
.buttons { display: flex; gap: 10px; margin-top: 14px; }
button { font: inherit; font-weight: 600; padding: 9px 18px; border-radius: 8px;
         border: 0; cursor: pointer; color: #fff; background: var(--accent); }
button.stop { background: var(--stop); }
button:disabled { opacity: .45; cursor: default; }
#output { white-space: pre-wrap; overflow-wrap: anywhere; min-height: 260px; padding: 10px;
          background: #fafafa; border: 1px solid var(--line); border-radius: 8px;
          font-family: ui-monospace, Menlo, monospace; font-size: 14px; margin: 0; }
#output .prompt { color: var(--muted); }
#status { color: var(--muted); font-size: 13px; margin-top: 10px; min-height: 1.4em; }
#status.error { color: var(--stop); }
@media (max-width: 720px) {
  main { grid-template-columns: minmax(0, 1fr); padding: 12px; gap: 12px; }
  main > section[aria-label=settings] { order: 2; }  /* the text first on a phone */
  header { padding: 12px; }
}
</style>
</head>
<body>
<header><h1>rnngen playground</h1><span id="server">a recurrent language model, streamed</span>
</header>
<main>
  <section class="panel" aria-label="settings">
    <label for="model">Model</label>
    <select id="model"></select>
    <label for="temperature">Temperature</label>
    <div class="range"><input id="temperature" type="range" min="0" max="2" step="0.05"
      value="0.8"><output for="temperature" id="temperature-value">0.80</output></div>
    <label for="top_p">Top-p</label>
    <div class="range"><input id="top_p" type="range" min="0.05" max="1" step="0.05"
      value="1"><output for="top_p" id="top_p-value">1.00</output></div>
    <label for="max_tokens">Length (tokens)</label>
    <input id="max_tokens" type="number" min="1" max="100000" value="300">
    <div id="key-field" hidden>
      <label for="api_key">API key</label>
      <input id="api_key" type="password" autocomplete="off">
    </div>
  </section>
  <section class="panel" aria-label="text">
    <label for="prompt">Prompt</label>
    <textarea id="prompt" placeholder="Text for the model to continue">ROMEO:</textarea>
    <div class="buttons">
      <button id="generate">Generate</button>
      <button id="stop" class="stop" disabled>Stop</button>
    </div>
    <div id="status" role="status"></div>
    <label>Output</label>
    <pre id="output" aria-live="polite"></pre>
  </section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let controller = null;

function headers() {
  const h = {"Content-Type": "application/json"};
  const key = $("api_key").value;
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function status(text, error) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

async function loadModels() {
  const response = await fetch("/v1/models", {headers: headers()});
  if (response.status === 401) {
    $("key-field").hidden = false;
    status("This server needs an API key.", true);
    return;
  }
  const body = await response.json();
  const select = $("model");
  select.innerHTML = "";
  for (const m of body.data) {
    const option = document.createElement("option");
    option.value = option.textContent = m.id;
    select.appendChild(option);
  }
  status(body.data.length + " model" + (body.data.length === 1 ? "" : "s") + " served");
}

for (const id of ["temperature", "top_p"]) {
  $(id).addEventListener("input", () => {
    $(id + "-value").textContent = Number($(id).value).toFixed(2);
  });
}
$("api_key").addEventListener("change", loadModels);

function running(on) {
  $("generate").disabled = on;
  $("stop").disabled = !on;
}

async function generate() {
  const output = $("output");
  output.textContent = "";
  const prompt = document.createElement("span");
  prompt.className = "prompt";
  prompt.textContent = $("prompt").value;
  const text = document.createTextNode("");
  output.append(prompt, text);
  controller = new AbortController();
  running(true);
  status("generating…");
  let tokens = 0;
  try {
    const response = await fetch("/v1/completions", {
      method: "POST", headers: headers(), signal: controller.signal,
      body: JSON.stringify({
        model: $("model").value, prompt: $("prompt").value, stream: true,
        temperature: Number($("temperature").value), top_p: Number($("top_p").value),
        max_tokens: Number($("max_tokens").value),
        stream_options: {include_usage: true},
      }),
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error((body.error && body.error.message) || response.statusText);
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "", finish = null;
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\\n\\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        for (const choice of chunk.choices) {
          text.appendData(choice.text);
          if (choice.finish_reason) finish = choice.finish_reason;
        }
        if (chunk.usage) tokens = chunk.usage.completion_tokens;
      }
    }
    status("done: " + tokens + " tokens (" + finish + ")");
  } catch (e) {
    if (e.name === "AbortError") status("stopped");
    else status(e.message, true);
  } finally {
    running(false);
    controller = null;
  }
}

$("generate").addEventListener("click", generate);
$("stop").addEventListener("click", () => { if (controller) controller.abort(); });
loadModels().catch((e) => status("cannot reach the server: " + e.message, true));
</script>
</body>
</html>
"""
