// OpenMuse web app: chat in three modes over the server's own OpenAI-compatible API.
// Everything it needs is served by the app itself; nothing comes from the network beyond it.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { current: null, history: [], busy: false, files: [], key: localStorage.getItem("muse-key") || "" };

async function api(path, options = {}) {
  const headers = Object.assign({ "content-type": "application/json" }, options.headers || {});
  if (state.key) headers.authorization = "Bearer " + state.key;
  const res = await fetch(path, Object.assign({}, options, { headers }));
  if (res.status === 401) {
    const key = prompt("This server needs an API key:");
    if (key) { state.key = key.trim(); localStorage.setItem("muse-key", state.key); return api(path, options); }
  }
  if (!res.ok) {
    let msg = res.status + " " + res.statusText;
    try { msg = (await res.json()).error.message; } catch (_) { /* keep the status line */ }
    throw new Error(msg);
  }
  return res;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function setStatus(text, isError) {
  const s = $("#status");
  s.textContent = text || "";
  s.classList.toggle("error", !!isError);
}

// -- conversations --------------------------------------------------------------------------
async function loadConversations() {
  const list = (await (await api("/v1/conversations")).json()).data;
  const ul = $("#conversations");
  ul.replaceChildren();
  for (const c of list) {
    const li = el("li");
    li.dataset.id = c.id;
    if (c.id === state.current) li.classList.add("active");
    const open = el("button", "open", c.title);
    open.title = c.title;
    open.addEventListener("click", () => openConversation(c.id));
    const rename = el("button", "icon", "✎");
    rename.setAttribute("aria-label", "Rename " + c.title);
    rename.addEventListener("click", async () => {
      const title = prompt("Rename conversation", c.title);
      if (title && title.trim()) {
        await api("/v1/conversations/" + c.id, { method: "PATCH", body: JSON.stringify({ title: title.trim() }) });
        loadConversations();
      }
    });
    const del = el("button", "icon", "✕");
    del.setAttribute("aria-label", "Delete " + c.title);
    del.addEventListener("click", async () => {
      if (!confirm("Delete “" + c.title + "”?")) return;
      await api("/v1/conversations/" + c.id, { method: "DELETE" });
      if (state.current === c.id) newChat();
      loadConversations();
    });
    li.append(open, rename, del);
    ul.append(li);
  }
}

function newChat() {
  state.current = null;
  state.history = [];
  $("#messages").replaceChildren();
  document.querySelectorAll("#conversations li").forEach((li) => li.classList.remove("active"));
  $("#prompt").focus();
}

async function openConversation(id) {
  const conv = await (await api("/v1/conversations/" + id)).json();
  state.current = id;
  state.history = conv.messages.map((m) => ({ role: m.role, content: m.content }));
  const box = $("#messages");
  box.replaceChildren();
  for (const m of conv.messages) {
    if (m.role === "user") box.append(renderUser(m.content, ((m.extra || {}).media || []).map((r) => r.name)));
    else box.append(renderAssistant(m));
  }
  box.scrollTop = box.scrollHeight;
  document.querySelectorAll("#conversations li").forEach((li) => li.classList.toggle("active", li.dataset.id === id));
}

// -- attachments ----------------------------------------------------------------------------
// Files become OpenAI content parts: images as data URLs, audio as base64 input_audio (wav, mp3,
// ogg, flac; other audio as an audio_url data URL), video as a video_url data URL.
const AUDIO_FORMATS = ["wav", "mp3", "ogg", "flac"];

function fileKind(f) {
  const major = (f.type || "").split("/")[0];
  if (["image", "audio", "video"].includes(major)) return major;
  const ext = f.name.split(".").pop().toLowerCase();
  if (["png", "jpg", "jpeg", "gif", "webp", "bmp"].includes(ext)) return "image";
  if (AUDIO_FORMATS.concat(["m4a", "opus"]).includes(ext)) return "audio";
  if (["mp4", "webm", "mov", "mkv"].includes(ext)) return "video";
  return null;
}

function readDataURL(f) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(new Error("cannot read " + f.name));
    r.readAsDataURL(f);
  });
}

async function addFiles(list) {
  for (const f of list) {
    const kind = fileKind(f);
    if (!kind) { setStatus(f.name + ": not an image, audio or video file", true); continue; }
    let url = await readDataURL(f);
    if (!url.startsWith("data:" + kind) && url.includes(";base64,")) {  // unknown MIME type: name the kind
      url = "data:" + kind + "/" + f.name.split(".").pop().toLowerCase() + url.slice(url.indexOf(";base64,"));
    }
    state.files.push({ name: f.name, kind, size: f.size, url });
  }
  renderChips();
}

function toPart(f) {
  const ext = f.name.split(".").pop().toLowerCase();
  if (f.kind === "image") return { type: "image_url", image_url: { url: f.url } };
  if (f.kind === "audio" && AUDIO_FORMATS.includes(ext)) {
    return { type: "input_audio", input_audio: { data: f.url.slice(f.url.indexOf(",") + 1), format: ext } };
  }
  return f.kind === "audio" ? { type: "audio_url", audio_url: { url: f.url } } : { type: "video_url", video_url: { url: f.url } };
}

function chip(name, onRemove) {
  const c = el("span", "chip", name);
  if (onRemove) {
    const x = el("button", null, "✕");
    x.type = "button";
    x.setAttribute("aria-label", "Remove " + name);
    x.addEventListener("click", onRemove);
    c.append(x);
  }
  return c;
}

function renderChips() {
  const box = $("#chips");
  box.replaceChildren();
  state.files.forEach((f, i) => {
    const kb = f.size < 1048576 ? Math.max(1, Math.round(f.size / 1024)) + " kB" : (f.size / 1048576).toFixed(1) + " MB";
    box.append(chip(`${f.name} · ${kb}`, () => { state.files.splice(i, 1); renderChips(); }));
  });
}

function renderUser(text, names) {
  const div = el("div", "msg user", text);
  if (names && names.length) {
    const row = el("div");
    for (const n of names) row.append(chip(n));
    div.append(row);
  }
  return div;
}

// -- rendering ------------------------------------------------------------------------------
function addCopyButtons(root) {
  root.querySelectorAll("pre").forEach((pre) => {
    const b = el("button", "copy", "Copy");
    b.type = "button";
    b.addEventListener("click", async () => {
      const text = pre.querySelector("code") ? pre.querySelector("code").innerText : pre.innerText;
      try { await navigator.clipboard.writeText(text); } catch (_) {
        const t = el("textarea"); t.value = text; document.body.append(t); t.select(); document.execCommand("copy"); t.remove();
      }
      b.textContent = "Copied";
      setTimeout(() => { b.textContent = "Copy"; }, 1200);
    });
    pre.append(b);
  });
}

function usageLine(m) {
  const u = m.usage || {};
  const r = (u.completion_tokens_details || {}).reasoning_tokens || 0;
  const t = (m.extra && m.extra.timings && m.extra.timings.wall_s) ? ` · ${m.extra.timings.wall_s.toFixed(1)} s` : "";
  return `${m.mode || ""} · ${u.prompt_tokens || 0} prompt · ${u.completion_tokens || 0} completion (${r} reasoning) tokens${t}`;
}

function renderAssistant(m) {
  const div = el("div", "msg assistant");
  if (m.reasoning) {
    const d = el("details");
    d.append(el("summary", null, "Reasoning"), el("pre", "trace", m.reasoning));
    div.append(d);
  }
  if (m.agents && m.agents.length) {
    const d = el("details");
    d.append(el("summary", null, `${m.agents.length} agents`));
    for (const a of m.agents) {
      d.append(el("div", null, `Agent ${a.agent} (${a.approach}) → ${a.answer || "no answer"}`));
      d.append(el("pre", "trace", a.reasoning));
    }
    div.append(d);
  }
  const trace = (m.extra || {}).trace;
  if (trace && trace.type === "agent") div.append(renderAgentTrace(trace));
  const ans = el("div", "answer");
  if (trace && trace.type === "build") div.append(renderBuild(trace));
  else ans.innerHTML = m.html; // rendered by the server from markdown, raw HTML escaped, images as links
  const failed = (m.extra || {}).error;
  if (failed) ans.append(el("p", "error", "No answer: " + failed.message)); // the question is kept
  addCopyButtons(ans);
  div.append(ans, el("div", "meta", usageLine(m)));
  return div;
}

// -- streaming ------------------------------------------------------------------------------
async function* sseEvents(res) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let event = "message"; const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      yield { event, data: data.join("\n") };
    }
  }
}

// The agent mode's stored trace: each sub-agent's task, every call and what came back, sources.
function renderAgentTrace(t) {
  const d = el("details", "agent-trace");
  const calls = t.tool_calls || 0;
  d.append(el("summary", null, `${t.subagents.length} sub-agents · ${calls} tool calls · plan: ${t.planner}`));
  for (const a of t.subagents) {
    d.append(el("div", "sub-agent", `Sub-agent ${a.agent} (${a.tool || "any tool"}): ${a.task} → ${a.answer || "no answer"} [${a.finish}]`));
    for (const s of a.steps) {
      if (!s.call) continue;
      const o = s.observation || {};
      d.append(el("pre", "trace", `${s.step}. ${s.call.name}(${s.call.arguments})\n${o.ok ? "" : "error: "}${(o.text || "").slice(0, 600)}`));
    }
  }
  if (t.sources && t.sources.length) {
    const ul = el("ul", "sources");
    for (const s of t.sources) ul.append(el("li", null, `[${s.id}] ${s.title} (${s.ref})`));
    d.append(ul);
  }
  return d;
}

// A lane for agent mode's sub-agent ``i``, made when its first event arrives.
function agentLane(lanes, i) {
  while (lanes.items.length <= i) {
    const n = lanes.items.length;
    const lane = el("div", "lane");
    const head = el("div", "head");
    const name = el("span", null, `Sub-agent ${n + 1}`);
    const st = el("span", null, "waiting");
    head.append(name, st);
    const tail = el("div", "tail");
    lane.append(head, tail);
    lanes.lanes.append(lane);
    lanes.items.push({ lane, name, st, tail, text: "", pieces: 0 });
  }
  return lanes.items[i];
}

function makeLanes(n) {
  const lanes = el("div", "lanes");
  const items = [];
  for (let i = 0; i < n; i++) {
    const lane = el("div", "lane");
    const head = el("div", "head");
    const name = el("span", null, `Agent ${i + 1}`);
    const st = el("span", null, "waiting");
    head.append(name, st);
    const tail = el("div", "tail");
    lane.append(head, tail);
    lanes.append(lane);
    items.push({ lane, name, st, tail, text: "", pieces: 0 });
  }
  return { lanes, items };
}

async function send(text, files) {
  const mode = document.querySelector("input[name=mode]:checked").value;
  const agents = Math.max(1, Math.min(16, parseInt($("#agents").value, 10) || 4));
  const box = $("#messages");
  box.append(renderUser(text, files.map((f) => f.name)));
  const div = el("div", "msg assistant");
  const reasoningBox = el("details");
  const reasoningPre = el("pre", "trace");
  reasoningBox.append(el("summary", null, "Reasoning"), reasoningPre);
  reasoningBox.hidden = true;
  const lanes = mode === "contemplating" ? makeLanes(agents) : mode === "agent" ? makeLanes(0) : null;
  const synth = el("div", "synthesis");
  synth.hidden = true;
  const answer = el("div", "answer");
  answer.style.whiteSpace = "pre-wrap";
  div.append(reasoningBox);
  if (lanes) div.append(lanes.lanes, synth);
  div.append(answer);
  box.append(div);
  box.scrollTop = box.scrollHeight;

  const content = files.length ? [{ type: "text", text }, ...files.map(toPart)] : text;
  state.history.push({ role: "user", content });
  const body = {
    model: "muse-" + mode, stream: true, stream_options: { include_usage: true },
    messages: state.history, muse: { conversation_id: state.current, events: true },
  };
  if (mode === "contemplating") body.muse.agents = agents;
  if (files.length) body.muse.media_names = files.map((f) => f.name);
  setStatus(mode === "instant" ? "answering…" : mode + "…");
  let final = "";
  let replaced = false; // the safety check replaced the streamed answer (muse.replaced)
  const res = await api("/v1/chat/completions", { method: "POST", body: JSON.stringify(body) });
  for await (const ev of sseEvents(res)) {
    if (ev.data === "[DONE]") break;
    const data = JSON.parse(ev.data);
    if (data.error) throw new Error(data.error.message);
    if (ev.event === "muse.status") {
      setStatus(mode + ": " + data.status); // the file itself comes with the stored result
    } else if (ev.event === "muse.agent" && lanes && mode === "agent") {
      const it = agentLane(lanes, data.agent);
      if (data.status) {
        const sp = data.status.indexOf(" ");
        const word = sp < 0 ? data.status : data.status.slice(0, sp);
        const rest = sp < 0 ? "" : data.status.slice(sp + 1);
        const label = { launched: "running", call: "calling", observed: "running" }[word] || word;
        it.st.textContent = label;
        it.lane.className = "lane " + label;
        if (word === "launched") it.name.textContent = `Sub-agent ${data.agent + 1} · ${rest}`;
        if (word === "call" || word === "observed") it.tail.textContent = rest.slice(-140);
      } else {
        it.text += data.text; it.pieces += 1;
        it.tail.textContent = it.text.slice(-140);
      }
    } else if (ev.event === "muse.agent" && lanes) {
      const it = lanes.items[data.agent];
      if (!it) continue;
      if (data.status) {
        const [word, approach] = data.status.split(" ");
        const label = { launched: "running" }[word] || word;
        it.st.textContent = label;
        it.lane.className = "lane " + label;
        if (approach) it.name.textContent = `Agent ${data.agent + 1} · ${approach}`;
      } else {
        it.text += data.text; it.pieces += 1;
        it.tail.textContent = it.text.slice(-140);
      }
    } else if (ev.event === "muse.synthesis") {
      synth.hidden = false;
      synth.textContent += data.text;
    } else if (ev.event === "muse.replaced") {
      replaced = true; final = data.content; answer.textContent = final;
      reasoningBox.hidden = true; reasoningPre.textContent = "";
    } else if (ev.event === "muse.result") {
      state.current = data.conversation_id || state.current;
    } else if (data.choices && data.choices.length) {
      const d = data.choices[0].delta || {};
      if (d.reasoning_content) { reasoningBox.hidden = false; reasoningPre.textContent += d.reasoning_content; }
      if (d.content && !replaced) { final += d.content; answer.textContent = mode === "build" ? final.split("\n")[0] : final; }
    }
    box.scrollTop = box.scrollHeight;
  }
  state.history.push({ role: "assistant", content: final });
  setStatus("");
  await loadConversations();
  if (state.current) await openConversation(state.current); // the stored, rendered version
}

// -- wiring ---------------------------------------------------------------------------------
$("#composer").addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = $("#prompt").value.trim();
  if ((!text && !state.files.length) || state.busy) return;
  state.busy = true;
  $("#send").disabled = true;
  $("#prompt").value = "";
  const files = state.files;
  state.files = [];
  renderChips();
  try { await send(text, files); } catch (err) {
    setStatus(err.message, true);
    state.history.pop();
  } finally {
    state.busy = false;
    $("#send").disabled = false;
    $("#prompt").focus();
  }
});
$("#prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("#composer").requestSubmit(); }
});
document.addEventListener("keydown", (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "k") { e.preventDefault(); newChat(); }
  if (e.key === "Escape") $("#prompt").focus();
});
document.querySelectorAll("input[name=mode]").forEach((r) => r.addEventListener("change", () => {
  $("#agents-control").hidden = document.querySelector("input[name=mode]:checked").value !== "contemplating";
}));
$("#new-chat").addEventListener("click", newChat);
$("#files").addEventListener("change", async (e) => { await addFiles(e.target.files); e.target.value = ""; });
const mainEl = document.querySelector("main");
mainEl.addEventListener("dragover", (e) => { e.preventDefault(); mainEl.classList.add("dragging"); });
mainEl.addEventListener("dragleave", (e) => { if (e.target === mainEl || !mainEl.contains(e.relatedTarget)) mainEl.classList.remove("dragging"); });
mainEl.addEventListener("drop", async (e) => {
  e.preventDefault();
  mainEl.classList.remove("dragging");
  if (e.dataTransfer && e.dataTransfer.files.length) await addFiles(e.dataTransfer.files);
});
loadConversations().catch((e) => setStatus(e.message, true));
$("#prompt").focus();
