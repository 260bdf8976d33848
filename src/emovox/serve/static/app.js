// emovox page: upload or record, then show the answer, the bars, the spectrogram and the timeline.
// Plain JavaScript, no build step; it talks only to the server that served it.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { model: null, colors: {}, recorder: null, chunks: [], timer: null, busy: false };

const MESSAGES = {
  too_large: "This file is too large for this server.",
  too_long: "This recording is too long for this server.",
  not_audio: "This does not look like audio emovox can read.",
  empty_body: "The file is empty.",
  unsupported_media_type: "Please send an audio file.",
  busy: "The server is busy.",
  timeout: "The server took too long to answer.",
  upload_timeout: "The upload took too long.",
  unauthorized: "This server needs an API key: enter it under \"API key\" and try again.",
  not_ready: "The model is still loading; try again in a moment.",
};

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const key = $("api-key").value.trim();
  if (key) h["X-API-Key"] = key;
  return h;
}

function say(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.classList.toggle("error", !!isError);
}

function pct(p) { return `${Math.round(p * 100)} %`; }
function secs(t) { return t < 60 ? `${t.toFixed(1)} s` : `${Math.floor(t / 60)} min ${Math.round(t % 60)} s`; }

async function loadModel() {
  try {
    const r = await fetch("/v1/model", { headers: headers() });
    if (r.status === 401) { $("key-box").open = true; $("about").textContent = MESSAGES.unauthorized; return; }
    if (!r.ok) { $("about").textContent = (await errorOf(r)).message; return; }
    const m = await r.json();
    state.model = m;
    state.colors = m.colors || {};
    const lim = m.limits;
    $("limits").textContent = `Up to ${secs(lim.max_seconds)} and ${lim.max_upload_mb} MB.`;
    $("model-id").textContent = `model ${m.model_id}`;
    showEmotions(m.labels);
    const card = m.card || {};
    $("about").textContent = [card.what_it_does, card.limits, card.data_licence].filter(Boolean).join(" ")
      || `Emotions: ${m.labels.join(", ")}.`;
  } catch (e) {
    $("about").textContent = "Cannot reach the server.";
  }
}

function showEmotions(labels) {
  // one box per emotion of the model, all ticked (the model's own answer); rebuilt only when the
  // model's labels change, keeping the user's ticks by name
  const box = $("emotions");
  const boxes = [...box.querySelectorAll("input")];
  if (boxes.map((b) => b.value).join(",") === labels.join(",")) return;
  const unticked = new Set(boxes.filter((b) => !b.checked).map((b) => b.value));
  box.querySelectorAll("label").forEach((l) => l.remove());
  for (const label of labels) {
    const input = Object.assign(document.createElement("input"),
      { type: "checkbox", value: label, checked: !unticked.has(label) });
    const item = document.createElement("label");
    item.append(input, label);
    box.appendChild(item);
  }
}

function emotionsQuery() {
  // "" for every emotion, "emotions=a,b" for a label set, null when fewer than two are ticked
  const boxes = [...document.querySelectorAll("#emotions input")];
  const ticked = boxes.filter((b) => b.checked).map((b) => encodeURIComponent(b.value));
  if (ticked.length === boxes.length) return "";
  return ticked.length < 2 ? null : `emotions=${ticked.join(",")}`;
}

function tooFewEmotions() {
  // said before any upload or recording: a recording made with too few ticked would be lost
  if (emotionsQuery() !== null) return false;
  say("Tick two or more emotions under \"Emotions to choose from\".", true);
  $("emotions-box").open = true;
  return true;
}

function withQuery(path, query) {
  return query ? `${path}${path.includes("?") ? "&" : "?"}${query}` : path;
}

async function errorOf(response) {
  try {
    const body = await response.json();
    const err = body.error || {};
    let message = MESSAGES[err.code] || err.message || `Error ${response.status}`;
    if (err.code === "busy" || err.code === "not_ready") {
      const wait = response.headers.get("Retry-After");
      if (wait) message += ` Try again in ${wait} s.`;
    }
    if (err.message && MESSAGES[err.code] && err.code !== "unauthorized") message += ` (${err.message})`;
    return { code: err.code, message };
  } catch (e) {
    return { code: "error", message: `Error ${response.status}` };
  }
}

async function post(path, blob, name) {
  // files go as multipart (field "file"), recordings as a raw body with their audio type
  const init = { method: "POST", headers: headers() };
  if (name) {
    const form = new FormData();
    form.append("file", blob, name);
    init.body = form;
  } else {
    init.body = blob;
    init.headers["Content-Type"] = blob.type || "application/octet-stream";
  }
  const r = await fetch(path, init);
  if (!r.ok) throw await errorOf(r);
  return r.json();
}

async function analyse(blob, name) {
  if (state.busy) return;
  if (tooFewEmotions()) return;
  const emotions = emotionsQuery();
  state.busy = true;
  setButtons(false);
  $("result").hidden = true;
  $("timeline").hidden = true;
  say(`Listening to ${name || "your recording"}…`);
  try {
    const p = await post(withQuery("/v1/predict?spectrogram=true", emotions), blob, name);
    showPrediction(p, name);
    const clip = state.model ? state.model.clip_seconds : 2.5;
    if (p.speech && p.duration > 2 * clip) {
      say("Building the timeline…");
      showTimeline(...await timeline(blob, name, emotions));
    }
    say(p.speech ? "Done." : "No speech heard in this recording.", !p.speech);
  } catch (e) {
    say(e.message || "Something went wrong.", true);
    if (e.code === "unauthorized") { $("key-box").open = true; $("api-key").focus(); }
  } finally {
    state.busy = false;
    setButtons(true);
  }
}

function showPrediction(p, name) {
  $("result").hidden = false;
  const bars = $("bars");
  bars.textContent = "";
  if (!p.speech) {
    $("answer").textContent = "No speech";
    $("confidence").textContent = "";
  } else {
    $("answer").textContent = p.answer;
    $("confidence").textContent = p.uncertain ? `(best guess ${p.label}, ${pct(p.confidence)})` : pct(p.confidence);
    const items = Object.entries(p.probabilities).sort((a, b) => b[1] - a[1]);
    for (const [label, prob] of items) {
      const li = document.createElement("li");
      if (label === p.label) li.className = "top";
      const nameEl = Object.assign(document.createElement("span"), { className: "name", textContent: label });
      const bar = Object.assign(document.createElement("span"), { className: "bar" });
      bar.setAttribute("aria-hidden", "true");
      const fill = Object.assign(document.createElement("span"), { className: "fill" });
      fill.style.background = state.colors[label] || "#1f5fbf";
      bar.appendChild(fill);
      const value = Object.assign(document.createElement("span"), { className: "value", textContent: pct(prob) });
      li.append(nameEl, bar, value);
      bars.appendChild(li);
      requestAnimationFrame(() => { fill.style.width = `${(prob * 100).toFixed(1)}%`; });
    }
  }
  // speech_seconds is null for a speech answer unless the server measures it (--measure-speech)
  const speech = p.speech_seconds == null ? "" : `, ${secs(p.speech_seconds)} of speech`;
  $("meta").textContent = `${secs(p.duration)} of audio${speech}; answered in ${Math.round(p.elapsed_ms)} ms.`;
  const spec = p.spectrogram;
  $("spectrogram").hidden = !spec;
  if (spec) {
    $("spectrogram-img").src = `data:image/png;base64,${spec.png_base64}`;
    $("spectrogram-img").alt = `Mel-spectrogram of ${name || "the recording"}, ${secs(spec.seconds)}`;
  }
  $("result-title").focus();
}

async function timeline(blob, name, emotions) {
  // speaker-adaptive when asked: the recording is its own speaker's reference; with too little
  // speech for one, the plain timeline, and the page says so
  const plain = withQuery("/v1/timeline", emotions);
  if (!$("one-speaker").checked) return [await post(plain, blob, name), ""];
  try {
    return [await post(withQuery("/v1/timeline?speaker_norm=1", emotions), blob, name),
      "Each window judged against this recording's own voice (speaker-adaptive)."];
  } catch (e) {
    if (e.code !== "too_little_speech") throw e;
    return [await post(plain, blob, name),
      "Too little speech to judge against the speaker's own voice: each window judged on its own."];
  }
}

function showTimeline(t, note) {
  $("timeline").hidden = false;
  $("timeline-note").textContent = note;
  const track = $("track");
  const list = $("segments");
  track.textContent = "";
  list.textContent = "";
  for (const s of t.segments) {
    const part = document.createElement("span");
    part.style.flexGrow = String(Math.max(s.end - s.start, 0.01));
    part.style.background = state.colors[s.label] || "#e0e0e0";
    part.title = `${s.label} ${s.start.toFixed(1)}–${s.end.toFixed(1)} s`;
    track.appendChild(part);
    const li = document.createElement("li");
    const sw = Object.assign(document.createElement("span"), { className: "swatch" });
    sw.style.background = part.style.background;
    sw.setAttribute("aria-hidden", "true");
    const conf = s.label === "silence" ? "" : ` (${pct(s.confidence)})`;
    li.append(sw, `${s.start.toFixed(1)}–${s.end.toFixed(1)} s: ${s.label}${conf}`);
    list.appendChild(li);
  }
  $("axis").textContent = "";
  $("axis").append(Object.assign(document.createElement("span"), { textContent: "0 s" }),
    Object.assign(document.createElement("span"), { textContent: secs(t.duration) }));
}

function setButtons(enabled) {
  $("choose").disabled = !enabled;
  $("record").disabled = !enabled && !state.recorder;
}

// ---------------------------------------------------------------- recording
async function toggleRecording() {
  if (state.recorder) { state.recorder.stop(); return; }
  if (tooFewEmotions()) return;
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    say("Recording is not available in this browser (it needs a secure page: https or localhost).", true);
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    say("The microphone is not available or permission was refused.", true);
    return;
  }
  const rec = new MediaRecorder(stream);
  state.recorder = rec;
  state.chunks = [];
  const started = Date.now();
  const limit = Math.min(state.model ? state.model.limits.max_seconds : 60, 120);
  rec.ondataavailable = (ev) => { if (ev.data.size) state.chunks.push(ev.data); };
  rec.onstop = () => {
    stream.getTracks().forEach((t) => t.stop());
    clearInterval(state.timer);
    state.recorder = null;
    $("record").textContent = "Record";
    $("record").setAttribute("aria-pressed", "false");
    $("clock").textContent = "";
    const blob = new Blob(state.chunks, { type: (rec.mimeType || "audio/webm").split(";")[0] });
    analyse(blob, null);
  };
  rec.start(250);
  $("record").textContent = "Stop";
  $("record").setAttribute("aria-pressed", "true");
  say("Recording… press Stop when you are done.");
  state.timer = setInterval(() => {
    const t = (Date.now() - started) / 1000;
    $("clock").textContent = secs(t);
    if (t >= limit) rec.stop();
  }, 200);
}

// ---------------------------------------------------------------- wiring
function init() {
  $("choose").addEventListener("click", () => $("file").click());
  $("file").addEventListener("change", () => {
    const f = $("file").files[0];
    if (f) analyse(f, f.name);
    $("file").value = "";
  });
  $("record").addEventListener("click", toggleRecording);
  $("api-key").addEventListener("change", loadModel);
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const f = e.dataTransfer.files[0];
    if (f) analyse(f, f.name);
  });
  loadModel();
}

init();
