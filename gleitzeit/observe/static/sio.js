// A small Socket.IO client (protocol 5 over Engine.IO 4, WebSocket transport only),
// enough for Gleitzeit's pages: connect to one namespace with an auth payload, events
// both ways, acks, the server's pings, and reconnection with backoff. No library, no
// CDN: the pages work offline.
"use strict";

class GzSocket {
  constructor(namespace, auth) {
    this.namespace = namespace;
    this.auth = auth || {};
    this.handlers = {};
    this.acks = {};
    this.nextAck = 1;
    this.connected = false;
    this.stopped = false;
    this.delay = 500;
    this.onstate = () => {};
  }

  on(event, fn) {
    this.handlers[event] = fn;
    return this;
  }

  open() {
    this.stopped = false;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/socket.io/?EIO=4&transport=websocket`);
    this.ws = ws;
    ws.onmessage = (msg) => this._packet(String(msg.data));
    ws.onclose = () => {
      const was = this.connected;
      this.connected = false;
      for (const id of Object.keys(this.acks)) {
        this.acks[id].reject(new Error("disconnected"));
        delete this.acks[id];
      }
      if (was) this.onstate("disconnected");
      if (!this.stopped) {
        setTimeout(() => this.open(), this.delay);
        this.delay = Math.min(this.delay * 2, 5000);
      }
    };
  }

  close() {
    this.stopped = true;
    if (this.ws) this.ws.close();
  }

  _send(text) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(text);
  }

  _prefix() {
    return this.namespace === "/" ? "" : this.namespace + ",";
  }

  _packet(text) {
    const kind = text[0];
    if (kind === "0") {  // Engine.IO open: join our namespace
      this._send("40" + this._prefix() + JSON.stringify(this.auth));
    } else if (kind === "2") {  // ping
      this._send("3");
    } else if (kind === "4") {
      this._message(text.slice(1));
    }
  }

  _message(text) {
    const type = text[0];
    let rest = text.slice(1);
    if (rest.startsWith("/")) {
      const comma = rest.indexOf(",");
      rest = comma < 0 ? "" : rest.slice(comma + 1);
    }
    let id = "";
    while (rest && rest[0] >= "0" && rest[0] <= "9") {
      id += rest[0];
      rest = rest.slice(1);
    }
    const data = rest ? JSON.parse(rest) : null;
    if (type === "0") {
      this.connected = true;
      this.delay = 500;
      this.onstate("connected");
    } else if (type === "4") {  // connect refused
      this.stopped = true;
      this.onstate("refused", (data && data.message) || "refused");
      this.ws.close();
    } else if (type === "2") {
      const fn = this.handlers[data[0]];
      if (fn) fn(data[1]);
    } else if (type === "3") {
      const pending = this.acks[id];
      if (pending) {
        delete this.acks[id];
        pending.resolve(data[0]);
      }
    } else if (type === "1") {
      this.connected = false;
    }
  }

  emit(event, data) {
    this._send("42" + this._prefix() + JSON.stringify([event, data === undefined ? {} : data]));
  }

  call(event, data) {
    const id = this.nextAck++;
    return new Promise((resolve, reject) => {
      this.acks[id] = { resolve, reject };
      this._send("42" + this._prefix() + id + JSON.stringify([event, data === undefined ? {} : data]));
    });
  }
}

// The token is asked for once and kept for the browser session.
const GzToken = {
  key: "gleitzeit-token",
  get() {
    return sessionStorage.getItem(this.key) || "";
  },
  set(value) {
    sessionStorage.setItem(this.key, value);
  },
};

function gzConnect(namespace, onConnected, onState) {
  const form = document.getElementById("token-form");
  const status = document.getElementById("status");
  const socket = new GzSocket(namespace, GzToken.get() ? { token: GzToken.get() } : {});
  socket.onstate = (state, why) => {
    status.textContent = state;
    status.className = "status " + state;
    if (state === "connected") {
      form.hidden = true;
      onConnected(socket);
    } else if (state === "refused") {
      form.hidden = false;
      form.querySelector(".why").textContent = why;
    }
    if (onState) onState(state);
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    GzToken.set(form.querySelector("input").value);
    socket.auth = { token: GzToken.get() };
    socket.open();
  });
  socket.open();
  return socket;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else if (k === "onclick") node.addEventListener("click", v);
    else node[k] = v;
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}
