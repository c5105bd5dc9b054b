// OpenMuse web app: chat in three modes over the server's own OpenAI-compatible API.
// Everything it needs is served by the app itself; nothing comes from the network beyond it.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { current: null, history: [], busy: false, key: localStorage.getItem("muse-key") || "" };

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
    if (m.role === "user") box.append(el("div", "msg user", m.content));
    else box.append(renderAssistant(m));
  }
  box.scrollTop = box.scrollHeight;
  document.querySelectorAll("#conversations li").forEach((li) => li.classList.toggle("active", li.dataset.id === id));
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
  const ans = el("div", "answer");
  ans.innerHTML = m.html; // rendered by the server from markdown, raw HTML escaped
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

async function send(text) {
  const mode = document.querySelector("input[name=mode]:checked").value;
  const agents = Math.max(1, Math.min(16, parseInt($("#agents").value, 10) || 4));
  const box = $("#messages");
  box.append(el("div", "msg user", text));
  const div = el("div", "msg assistant");
  const reasoningBox = el("details");
  const reasoningPre = el("pre", "trace");
  reasoningBox.append(el("summary", null, "Reasoning"), reasoningPre);
  reasoningBox.hidden = true;
  const lanes = mode === "contemplating" ? makeLanes(agents) : null;
  const synth = el("div", "synthesis");
  synth.hidden = true;
  const answer = el("div", "answer");
  answer.style.whiteSpace = "pre-wrap";
  div.append(reasoningBox);
  if (lanes) div.append(lanes.lanes, synth);
  div.append(answer);
  box.append(div);
  box.scrollTop = box.scrollHeight;

  state.history.push({ role: "user", content: text });
  const body = {
    model: "muse-" + mode, stream: true, stream_options: { include_usage: true },
    messages: state.history, muse: { conversation_id: state.current },
  };
  if (mode === "contemplating") body.muse.agents = agents;
  setStatus(mode === "instant" ? "answering…" : mode + "…");
  let final = "";
  const res = await api("/v1/chat/completions", { method: "POST", body: JSON.stringify(body) });
  for await (const ev of sseEvents(res)) {
    if (ev.data === "[DONE]") break;
    const data = JSON.parse(ev.data);
    if (data.error) throw new Error(data.error.message);
    if (ev.event === "muse.agent" && lanes) {
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
    } else if (ev.event === "muse.result") {
      state.current = data.conversation_id || state.current;
    } else if (data.choices && data.choices.length) {
      const d = data.choices[0].delta || {};
      if (d.reasoning_content) { reasoningBox.hidden = false; reasoningPre.textContent += d.reasoning_content; }
      if (d.content) { final += d.content; answer.textContent = final; }
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
  if (!text || state.busy) return;
  state.busy = true;
  $("#send").disabled = true;
  $("#prompt").value = "";
  try { await send(text); } catch (err) {
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
loadConversations().catch((e) => setStatus(e.message, true));
$("#prompt").focus();
