// Chat: chat:send -> chat:chunk... -> chat:complete | chat:error; chat:cancel stops an
// answer. Sessions are stored by the server; reopening one shows its history.
"use strict";

let socket = null;
let session = null;
let answering = null;  // the assistant bubble being filled

const $ = (id) => document.getElementById(id);

function bubble(role, text, complete) {
  const node = el("div", { class: `msg ${role}` + (complete === false ? " incomplete" : "") }, text);
  $("messages").append(node);
  node.scrollIntoView({ block: "end" });
  return node;
}

function setAnswering(node) {
  answering = node;
  $("send").disabled = !!node;
  $("cancel").hidden = !node;
  document.body.dataset.answering = node ? "yes" : "no";
}

async function loadSessions() {
  const reply = await socket.call("chat:sessions", {});
  const list = $("sessions");
  list.replaceChildren();
  for (const s of reply.result.sessions) {
    list.append(el("li", {
      "data-session": s.id, title: s.title,
      class: s.id === session ? "current" : "",
      onclick: () => openSession(s.id),
    }, s.title));
  }
}

async function openSession(id) {
  const reply = await socket.call("chat:open", { session_id: id });
  if (!reply.ok) return;
  session = id;
  setAnswering(null);
  $("messages").replaceChildren();
  for (const m of reply.result.messages) bubble(m.role, m.content, m.complete);
  if (reply.result.model) $("model").value = reply.result.model;
  $("session-label").textContent = reply.result.title;
  loadSessions();
}

function newSession() {
  session = null;
  setAnswering(null);
  $("messages").replaceChildren();
  $("session-label").textContent = "new chat";
  loadSessions();
}

async function send() {
  const text = $("input").value.trim();
  if (!text || answering || !socket) return;
  $("input").value = "";
  bubble("user", text);
  setAnswering(bubble("assistant", ""));
  const data = { model: $("model").value, message: text };
  if (session) data.session_id = session;
  const ack = await socket.call("chat:send", data);
  if (!ack.ok) {
    answering.classList.add("error");
    answering.textContent = ack.error.message;
    setAnswering(null);
    return;
  }
  if (!document.querySelector(`#sessions [data-session="${ack.session_id}"]`)) {
    session = ack.session_id;
    $("session-label").textContent = text.slice(0, 60);
    loadSessions();
  }
}

gzConnect("/clients", async (s) => {
  socket = s;
  // A new session's first chunks may come before chat:send's ack names it.
  const mine = (d) => answering && (session === null || d.session_id === session);
  socket.on("chat:chunk", (d) => {
    if (mine(d)) {
      session = d.session_id;
      answering.textContent += d.token;
      answering.scrollIntoView({ block: "end" });
    }
  });
  socket.on("chat:complete", (d) => {
    if (mine(d)) {
      answering.textContent = d.full_response;
      if (d.cancelled) answering.classList.add("incomplete");
      setAnswering(null);
    }
  });
  socket.on("chat:error", (d) => {
    if (mine(d)) {
      answering.textContent = d.partial;
      answering.classList.add("incomplete");
      bubble("error", `error: ${d.error.message}`).classList.add("error");
      setAnswering(null);
    }
  });
  const models = await socket.call("chat:models", {});
  const select = $("model");
  const current = select.value;
  select.replaceChildren();
  for (const m of [...models.result.models, ...models.result.aliases]) {
    select.append(el("option", { value: m }, m));
  }
  if (current) select.value = current;
  loadSessions();
});

$("composer").addEventListener("submit", (ev) => { ev.preventDefault(); send(); });
$("input").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); send(); }
});
$("cancel").addEventListener("click", () => {
  if (session && socket) socket.emit("chat:cancel", { session_id: session });
});
$("new-session").addEventListener("click", newSession);
document.body.dataset.answering = "no";
